"""The registry of scoring methods (``score(name, dynamics, **params)``).

Each method is a function ``fn(dynamics, *, param: type = default, ...)``: its parameters are
keyword-only, typed and defaulted, so its signature (:attr:`Method.parameters`,
``help(get_method(name).fn)``) is where they are documented and checked.
"""
from __future__ import annotations

import difflib
import inspect
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import DataPruneError, MissingSignalError, StoreError
from .. import run_outputs
from ..logs import get_logger
from ._common import check_nan_scores, need_epochs


@dataclass(frozen=True)
class Method:
    """A registered scoring method: ``fn(dynamics, **params) -> (N,) float64``, higher = keep.

    Parameters
    ----------
    name : str
        The name it is registered under (:func:`list_methods`).
    fn : Callable[..., np.ndarray]
        The scoring function; its keyword-only parameters are the method's
        (:attr:`parameters`).
    summary : str
        One line describing the method.
    needs : tuple[str, ...]
        Store signals it reads.
    files : tuple[str, ...]
        Run-directory files it reads by default (``features.npy``, ``final_logits.npy``; see
        :mod:`dataprune.run_outputs`).
    """

    name: str
    fn: Callable[..., np.ndarray]
    summary: str
    needs: tuple[str, ...] = field(default_factory=tuple)
    files: tuple[str, ...] = field(default_factory=tuple)

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The method's parameters (keyword-only, after ``dynamics``) by name, with their type
        annotation and default, from the signature of :attr:`fn`.
        """
        return {p.name: p for p in inspect.signature(self.fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, summary: str, needs: tuple[str, ...] = (),
             files: tuple[str, ...] = ()) -> Callable:
    """Decorator registering a scoring function under ``name``.

    Parameters
    ----------
    name : str
        The method's name, e.g. ``"dyn-unc"``.
    summary : str
        One line describing it (:attr:`Method.summary`).
    needs : tuple[str, ...]
        Store signals it reads.
    files : tuple[str, ...]
        Run-directory files it reads by default.

    Returns
    -------
    Callable
        The decorator; it returns the function unchanged.

    Raises
    ------
    RuntimeError
        ``name`` is already registered.
    """
    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if name in _REGISTRY:
            raise RuntimeError(f"scoring method {name!r} registered twice")
        _REGISTRY[name] = Method(name, fn, summary, tuple(needs), tuple(files))
        return fn
    return deco


def list_methods() -> list[str]:
    """Names of all registered scoring methods.

    Returns
    -------
    list[str]
        The names, sorted.
    """
    return sorted(_REGISTRY)


def get_method(name: str) -> Method:
    """The :class:`Method` registered as ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_methods`.

    Returns
    -------
    Method
        The registered method.

    Raises
    ------
    DataPruneError
        Unknown name; the message lists the valid ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataPruneError(f"unknown method {name!r}; expected one of {', '.join(list_methods())}") from None


#: the short names the package's own modules use (``from ..methods import get, methods``)
methods, get = list_methods, get_method


def check_params(method: Method, params: dict[str, Any]) -> None:
    """Refuse a parameter ``method`` does not take, naming the method and its parameters
    (from its signature, not from the text of a TypeError) and the closest valid name:
    ``window`` misspelled ``windw``."""
    sig = inspect.signature(method.fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in sig):
        return  # the function takes any keyword itself
    valid = list(method.parameters)
    unknown = [k for k in params if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataPruneError(f"method {method.name!r} has no parameter {unknown[0]!r}{hint}; it takes "
                             f"{', '.join(valid) if valid else 'no parameters'}")


def input_digests(name: str, dynamics: Any, **params: Any) -> dict[str, str]:
    """Digests of the run-directory files (``features.npy``, ``final_logits.npy``, or the
    files given for them) method ``name`` reads with ``params``, by path; each is checked
    against the digest recorded when it was written (see :func:`~dataprune.run_outputs.file_digest`).
    Empty for methods that read only the store."""
    return run_outputs.input_digests(dynamics, list(get_method(name).parameters), params)


#: (store path, epochs) already reported unfinished by :func:`_note_unfinished`
_REPORTED: set[tuple[str, int]] = set()


def _note_unfinished(dynamics: Any) -> None:
    """Warn once per store state (``dataprune`` logger) when scoring an unfinished store."""
    note = getattr(dynamics, "unfinished_note", None)
    text = note() if callable(note) else None
    key = (str(getattr(dynamics, "path", "")), int(getattr(dynamics, "epochs", 0)))
    if text and key not in _REPORTED:
        _REPORTED.add(key)
        get_logger("methods").warning(f"warning: {text}")


def score(name: str, dynamics: Any, **params: Any) -> np.ndarray:
    """Score every sample with method ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_methods`.
    dynamics : Any
        A :class:`~dataprune.Dynamics` (or anything with the signals the method needs), or a
        list/tuple of them: several scoring runs, see :func:`score_runs`.
    **params : Any
        Method parameters, e.g. ``window=10`` for ``dyn-unc``.

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more worth keeping.

    Raises
    ------
    DataPruneError
        Unknown method or parameter, or a bad parameter value.
    MissingSignalError
        The store did not record a signal the method needs.
    StoreError
        The store holds no epoch, or (``keep_history="window"``) cannot answer this method.
    """
    if isinstance(dynamics, (list, tuple)):
        return score_runs(name, dynamics, **params)
    method = get_method(name)
    history = getattr(dynamics, "history", None)  # a Dynamics store (not a bare array)
    if history is not None and not history.per_epoch:
        if not history.answers(name, method.needs):
            raise StoreError(dynamics.unavailable(f"method {name!r}"))
        recorded = None  # the running sums stand in for the prob history
    else:
        recorded = getattr(dynamics, "signals", None)
    if recorded is not None:
        lacking = [s for s in method.needs if s not in recorded]
        if lacking:
            raise MissingSignalError(
                f"method {name!r} needs signal(s) {lacking} which the store at "
                f"{getattr(dynamics, 'path', '?')} did not record (it has {list(recorded)}); "
                f"record them in the scoring run: Recorder(signals=[..., {', '.join(map(repr, lacking))}])")
    check_params(method, params)
    _note_unfinished(dynamics)
    if method.needs and getattr(dynamics, "epochs", None) == 0:
        raise StoreError(f"store {getattr(dynamics, 'path', '?')}: {need_epochs(name, 1, 0)}")
    scores = np.asarray(method.fn(dynamics, **params), dtype=np.float64)
    for s in method.needs if recorded is not None else ():
        check_nan_scores(scores, dynamics[s], f"signal {s!r}")
    return scores


def score_runs(name: str, runs: Any, **params: Any) -> np.ndarray:
    """Mean of the raw scores of method ``name`` over several scoring runs of the same data.

    A sample's score is the mean over the runs where it is not NaN, and NaN only if it is NaN
    in every run. Raw scores are averaged (no standardisation), so mix only runs of comparable
    scale (same method, same epochs).

    Parameters
    ----------
    name : str
        A name from :func:`list_methods`.
    runs : Any
        A list/tuple of :class:`~dataprune.Dynamics` (e.g. EL2N over independent
        initialisations, as Paul et al. average 10 runs). Every run must have the same N and
        the same labels where both saw a label.
    **params : Any
        Method parameters, as in :func:`score`.

    Returns
    -------
    np.ndarray
        (N,) float64 mean over the runs, higher = more worth keeping.

    Raises
    ------
    DataPruneError
        No runs, a nested list, or runs over different data (N or labels differ).
    """
    runs = list(runs)
    if not runs:
        raise DataPruneError("no runs given; expected at least one Dynamics")
    if any(isinstance(r, (list, tuple)) for r in runs):
        raise DataPruneError("runs must be a flat list of Dynamics")
    first = runs[0]
    n = getattr(first, "num_samples", None)
    total = count = None
    for r in runs:
        if getattr(r, "num_samples", n) != n:
            raise DataPruneError(f"runs have different num_samples ({n} and {r.num_samples}); "
                                 "expected runs over the same training set")
        la, lb = getattr(first, "labels", None), getattr(r, "labels", None)
        if la is not None and lb is not None:
            both = (np.asarray(la) >= 0) & (np.asarray(lb) >= 0)
            if np.any(np.asarray(la)[both] != np.asarray(lb)[both]):
                raise DataPruneError(f"runs {getattr(first, 'path', '?')} and {getattr(r, 'path', '?')} "
                                     "disagree on labels; expected runs over the same training set")
        s = score(name, r, **params)
        if total is None:
            total, count = np.zeros_like(s), np.zeros(len(s), dtype=np.int64)
        elif len(s) != len(total):
            raise DataPruneError(f"runs give {len(total)} and {len(s)} scores; expected the same N")
        ok = ~np.isnan(s)
        total[ok] += s[ok]
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def param_flags(params: dict[str, Any]) -> str:
    """Method parameters as command-line flags: {"window": 10} -> "--window 10"."""
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v).lower() if isinstance(v, bool) else str(v))}"
                    for k, v in params.items())
