require_relative "pricing"

class CartError < StandardError; end

class Cart
  def initialize(id)
    @id = id
    @lines = []
  end

  def quantity(text)
    Integer(text)
  end

  def add_line(text, chained)
    return @lines << quantity(text) unless chained

    begin
      @lines << quantity(text)
    rescue ArgumentError
      raise CartError, "cart #{@id} has an unreadable line"
    end
  end

  def reprice(price_list, chained)
    Pricing.new.load(price_list, chained)
  end
end
