"""The registry of scoring methods (``score(name, dynamics, **params)``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import DataPruneError, MissingSignalError, StoreError


@dataclass(frozen=True)
class Method:
    """A registered scoring method: ``fn(dynamics, **params) -> (N,) float64``, higher = keep."""

    name: str
    fn: Callable[..., np.ndarray]
    summary: str
    needs: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, summary: str, needs: tuple[str, ...] = ()) -> Callable:
    """Decorator registering a scoring function under ``name``; ``needs`` lists store signals."""
    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if name in _REGISTRY:
            raise RuntimeError(f"scoring method {name!r} registered twice")
        _REGISTRY[name] = Method(name, fn, summary, tuple(needs))
        return fn
    return deco


def methods() -> list[str]:
    """Names of all registered scoring methods, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Method:
    """The :class:`Method` registered as ``name``; a clear error lists valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataPruneError(f"unknown method {name!r}; expected one of {', '.join(methods())}") from None


def score(name: str, dynamics: Any, **params: Any) -> np.ndarray:
    """Score every sample with method ``name``.

    Parameters
    ----------
    name : a name from :func:`methods`.
    dynamics : a :class:`~dataprune.Dynamics` (or anything with the signals the method needs).
    **params : method parameters, e.g. ``window=10`` for ``dyn-unc``.

    Returns
    -------
    (N,) float64 array, higher = more worth keeping.
    """
    method = get(name)
    if getattr(dynamics, "keep_history", "full") == "none":
        if name != "dyn-unc" and method.needs:
            raise StoreError(dynamics._history_error(f"method {name!r}"))
        recorded = None  # the running sums stand in for the prob history
    else:
        recorded = getattr(dynamics, "signals", None)
    if recorded is not None:
        lacking = [s for s in method.needs if s not in recorded]
        if lacking:
            raise MissingSignalError(
                f"method {name!r} needs signal(s) {lacking} which the store at "
                f"{getattr(dynamics, 'path', '?')} did not record (it has {list(recorded)}); "
                f"record them with `dataprune score --signals all` or Recorder(signals=...)")
    try:
        return np.asarray(method.fn(dynamics, **params), dtype=np.float64)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise DataPruneError(f"method {name!r}: {e}") from None
        raise
