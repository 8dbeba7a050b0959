module Bill
  def self.share(total_cents, people)
    total_cents / people
  end
end
