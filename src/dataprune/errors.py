"""Exceptions users can cause. All are ``ValueError`` subclasses, so
``except ValueError`` catches every bad-value error the library raises."""


class DataPruneError(ValueError):
    """A bad value or input: the message names the value and what was expected."""


class StoreError(DataPruneError):
    """A dynamics store that is missing, incomplete, corrupted or of the wrong shape."""


class MissingSignalError(DataPruneError):
    """A scoring method needs a signal the dynamics store did not record."""
