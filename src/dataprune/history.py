"""History modes (``keep_history``): what a dynamics store keeps of the recorded epochs.

The one place that knows what each mode keeps and can answer; the recorder, the store, the
methods, the runs and the CLI ask it instead of comparing strings.

- ``"full"`` keeps every epoch: one (K, N) array per signal; every method can score it.
- ``"window"`` keeps a ring of the last J+1 epochs of ``prob`` and running per-sample sums
  of the window stds: O(N*J) memory and disk whatever K becomes; it answers only Dyn-Unc
  with the window J it was recorded with (and methods that read no signal).

``"none"``, the old name of ``"window"``, is still accepted with a DeprecationWarning, and
it is the spelling stored in ``meta.json`` and a run's ``config.json`` (:attr:`HistoryMode.stored`),
so stores and runs are written byte for byte as before and old ones open unchanged.
"""
from __future__ import annotations

import enum
import warnings
from typing import Any

from .errors import DataPruneError, StoreError

#: the deprecated public name of ``"window"`` (still the stored spelling)
_OLD_WINDOW_NAME = "none"


class HistoryMode(str, enum.Enum):
    """A ``keep_history`` mode; equal to its public name (``"full"``, ``"window"``)."""

    FULL = "full"
    WINDOW = "window"

    def __str__(self) -> str:
        return self.value

    def __eq__(self, other: object) -> bool:
        """Equal to the public name; the old name ``"none"`` still matches ``WINDOW`` (deprecated)."""
        if isinstance(other, str) and not isinstance(other, HistoryMode) and str.__eq__(other, _OLD_WINDOW_NAME):
            _warn_old_name("comparing keep_history with 'none'", 1)
            return self is HistoryMode.WINDOW
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__

    @classmethod
    def parse(cls, value: Any, what: str = "keep_history", depth: int = 1) -> "HistoryMode":
        """The mode a user named (``"full"``, ``"window"``; ``"none"`` with a DeprecationWarning
        attributed to the caller ``depth`` frames above this call)."""
        if isinstance(value, HistoryMode):
            return value
        if value == _OLD_WINDOW_NAME:
            _warn_old_name(f"{what}='none'", depth)
            return cls.WINDOW
        if value in ("full", "window"):
            return cls(value)
        raise DataPruneError(f"{what}={value!r}; expected 'full' or 'window'")

    @classmethod
    def stored_names(cls) -> tuple[str, ...]:
        """The ``keep_history`` values a ``meta.json`` or ``config.json`` may hold."""
        return tuple(m.stored for m in cls)

    @classmethod
    def from_stored(cls, value: Any, where: str = "meta.json") -> "HistoryMode":
        """The mode of a stored ``keep_history`` value (no warning: files keep their spelling)."""
        for mode in cls:
            if value == mode.stored:
                return mode
        raise DataPruneError(f"{where} has keep_history={value!r}; expected one of {cls.stored_names()}")

    @property
    def stored(self) -> str:
        """The spelling written to ``meta.json`` and ``config.json`` (``"none"`` for ``WINDOW``)."""
        return _OLD_WINDOW_NAME if self is HistoryMode.WINDOW else self.value

    @property
    def per_epoch(self) -> bool:
        """Whether the store holds a (K, N) array per signal (every epoch)."""
        return self is HistoryMode.FULL

    @property
    def kept_signals(self) -> tuple[str, ...] | None:
        """The only signals this mode can record, or None (any)."""
        return None if self.per_epoch else ("prob",)

    def check_signals(self, signals: list[str], default: tuple[str, ...]) -> list[str]:
        """The signals to record: ``signals`` in full mode; ``["prob"]`` in window mode, which
        accepts only that or the ``default`` list (which it narrows to ``prob``)."""
        kept = self.kept_signals
        if kept is None:
            return signals
        if signals != list(kept) and tuple(signals) != tuple(default):
            raise DataPruneError(f"signals={signals} with keep_history='{self}'; that mode "
                                 f"records only {', '.join(repr(s) for s in kept)} (what Dyn-Unc needs)")
        return list(kept)

    def check_window(self, window: Any) -> int | None:
        """The window J this mode keeps (an integer >= 2), or None in full mode (ignored)."""
        if self.per_epoch:
            return None
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise DataPruneError(f"window={window!r}; expected an integer >= 2 "
                                 f"(the Dyn-Unc window J kept by keep_history='{self}')")
        return window

    def answers(self, method: str, needs: tuple[str, ...]) -> bool:
        """Whether a store of this mode can feed ``method`` (reading signals ``needs``);
        full mode: if the store recorded them (checked by the caller)."""
        return self.per_epoch or not needs or method == "dyn-unc"

    def check_resumable(self, path: Any) -> None:
        """Raise unless a store of this mode at ``path`` can be resumed (only full ones can)."""
        if not self.per_epoch:
            raise StoreError(f"store {path} was recorded with keep_history='{self}'; only full-history "
                                 "stores can be resumed (record it again, or with keep_history='full')")

    def unavailable(self, path: Any, window: int | None, what: str) -> str:
        """Message: ``what`` cannot be answered by the store at ``path`` of this mode."""
        return (f"store {path} was recorded with keep_history='{self}' (window {window}): "
                f"it keeps no per-epoch history, so {what} is not available; only "
                f"dyn-unc with window={window} can be scored. Record with "
                "keep_history='full' (the default) for other methods or windows")


def _warn_old_name(what: str, depth: int) -> None:
    warnings.warn(f"{what} is deprecated: the mode that keeps the last J+1 epochs is now called "
                  "'window' (keep_history='window'); 'none' still works", DeprecationWarning, stacklevel=2 + depth)
