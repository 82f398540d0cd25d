"""The ``dataprune`` logger. Library code never prints: it logs to ``dataprune`` or a child
(``get_logger("bench")`` -> ``dataprune.bench``), or calls the ``log=`` callback it was given.
The CLI attaches one stderr handler with :func:`configure`; a library user configures
``logging`` as usual (unconfigured, Python shows warnings and errors on stderr)."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "dataprune"


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``dataprune`` logger, or its child ``dataprune.<name>``."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes bare messages to whatever ``sys.stderr`` is when a record is emitted, so a
    redirected or captured stderr (tests, notebooks) gets them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; sys.stderr wins
        pass


def configure(verbosity: int = 0) -> logging.Logger:
    """Send ``dataprune`` log records to stderr: ``verbosity`` -1 (``--quiet``) shows warnings
    and errors, 0 also progress (info), >= 1 (``-v``) also debug. Calling it again replaces
    the handler of the previous call. Returns the ``dataprune`` logger."""
    log = get_logger()
    for h in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(h)
    log.addHandler(_StderrHandler())
    log.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)
    return log
