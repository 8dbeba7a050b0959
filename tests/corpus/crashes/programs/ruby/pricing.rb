require "json"

class PricingError < StandardError; end

class Pricing
  def parse(text)
    JSON.parse(text)
  end

  def load(text, chained)
    return parse(text) unless chained

    begin
      parse(text)
    rescue JSON::ParserError => e
      raise PricingError, "price list unreadable: #{e.message[0, 20]}"
    end
  end
end
