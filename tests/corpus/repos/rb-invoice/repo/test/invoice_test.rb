require 'minitest/autorun'
require_relative '../lib/invoice'

class InvoiceTest < Minitest::Test
  def test_total
    assert_equal 6, Invoice.new([{ price: 3, qty: 2 }]).total
  end

  def test_a_line_without_a_price_costs_nothing
    assert_equal 6, Invoice.new([{ price: 3, qty: 2 }, { qty: 1 }]).total
  end
end
