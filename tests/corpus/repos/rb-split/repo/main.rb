require_relative 'lib/bill'

puts Bill.share(1000, 0)
