"""Reading settings from environment variables without ever failing at import.

A value that cannot be read is not a traceback: the default is used, the problem (naming the
variable and the fix) is kept in ``problems``, and settings.py hands them to the system check
``backups.E020``, which every management command and the server start report."""

from backups_app.parsing import comma_list, parse_bool


class Environment:
    def __init__(self, environ):
        self.environ = environ
        self.problems = []

    def get(self, name, default=None):
        value = self.environ.get(name)
        return default if value in (None, "") else value

    def str(self, name, default=""):
        return self.get(name, default)

    def list(self, name, default=""):
        return comma_list(self.get(name, default))

    def bool(self, name, default=False):
        value = self.get(name)
        if value is None:
            return default
        try:
            return parse_bool(value)
        except ValueError:
            self.problems.append(f"{name}={value!r} is not true or false; using {default}. Set it to 1 or 0.")
            return default

    def int(self, name, default, low=None, high=None, fix=None):
        value = self.get(name)
        if value is None:
            return default
        try:
            number = int(value)
            if (low is not None and number < low) or (high is not None and number > high):
                raise ValueError
        except ValueError:
            fix = fix or (f"use a whole number from {low} to {high}" if low is not None and high is not None
                          else "use a whole number")
            self.problems.append(f"{name}={value!r}: {fix}; using {default} until it is fixed.")
            return default
        return number
