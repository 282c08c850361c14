"""User-facing storage errors: the CLI prints their message on one line, without a traceback."""


class StorageError(Exception):
    """A problem with the store's contents or a user's query (not a bug in ovseg)."""
