module AppConfig
  DEFAULTS = { 'timeout' => 30 }.freeze

  def self.timeout(settings)
    Integer(settings.fetch('timeout'))
  end
end
