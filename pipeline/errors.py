"""The one exception type that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Something the user can fix: a bad path, a wrong config key, a model that does not match an artifact."""
