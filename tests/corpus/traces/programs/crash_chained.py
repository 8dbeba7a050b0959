# A config loader that wraps a KeyError in its own error: a chained traceback.
class ConfigError(Exception):
    pass


def load(settings, key):
    try:
        return settings[key]
    except KeyError as error:
        raise ConfigError(f"missing setting {key}") from error


def handle():
    try:
        load({}, "database_url")
    except ConfigError:
        # An error while handling the first one: "During handling of the above exception"
        undefined_function()  # noqa: F821


print("2026-01-01 12:00:01,000 INFO loader starting", flush=True)
handle()
