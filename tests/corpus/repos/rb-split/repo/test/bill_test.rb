require 'minitest/autorun'
require_relative '../lib/bill'

class BillTest < Minitest::Test
  def test_share
    assert_equal 250, Bill.share(1000, 4)
  end

  def test_nobody_pays_the_whole
    assert_equal 1000, Bill.share(1000, 0)
  end
end
