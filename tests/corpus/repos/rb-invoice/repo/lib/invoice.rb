class Invoice
  def initialize(lines)
    @lines = lines
  end

  def total
    @lines.sum { |line| line[:price] * line[:qty] }
  end
end
