"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input (data, config, flags, checkpoint) and how to fix it.

    The command-line interface prints the message alone, without a traceback, and exits with
    status 2. Library users catch it like any other exception.
    """


class ArgumentError(UserError):
    """A constructor argument its declaration does not allow (mnist_pl.rules), named with the
    class, e.g. "CNNClassifier(lr=-1): lr must be above 0."."""


class ArgumentValueError(ArgumentError, ValueError):
    """An argument of the right type whose value is not allowed (out of range, not a choice)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (text for a number, a number for a list, ...)."""
