"""User-facing errors: the CLI prints their message on one line, without a traceback."""


class OvsegError(Exception):
    """A problem with the user's input, files or settings (not a bug in ovseg)."""
