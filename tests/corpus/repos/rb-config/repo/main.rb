require_relative 'lib/config'

puts AppConfig.timeout({})
