"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input (data, config, flags, checkpoint) and how to fix it.

    The command-line interface prints the message alone, without a traceback, and exits with
    status 2. Library users catch it like any other exception.
    """
