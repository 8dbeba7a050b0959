require 'minitest/autorun'
require_relative '../lib/config'

class ConfigTest < Minitest::Test
  def test_given
    assert_equal 5, AppConfig.timeout({ 'timeout' => '5' })
  end

  def test_default
    assert_equal 30, AppConfig.timeout({})
  end
end
