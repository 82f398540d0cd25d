"""Final-model outputs saved beside the dynamics store of a run directory (NumPy only).

Layout inside a run directory ``RUN/`` (the parent of ``RUN/dynamics/``)::

    features.npy       (N, D) float16: penultimate-layer features (the input of the last
                       linear layer) of the final model, clean view, eval mode
    final_logits.npy   (N, C) float32: logits of the final model, same pass
    final_outputs.json {"format": "dataprune-final-outputs", "version": 1,
                        "digests": {"final_logits.npy": "...", "features.npy": "..."}}

``dataprune record`` writes them at the end of the scoring run with
:func:`save_final_outputs`; the ``entropy``, ``moderate`` and ``ssp`` methods read them with
:func:`load_final_logits` / :func:`load_features`. Every ``.npy`` file read is checked
against the digest recorded for it in ``final_outputs.json`` beside it
(:func:`file_digest`), so a changed row is refused, as in the dynamics store; a run's file
with no recorded digest (written by an older dataprune) is read with a one-time warning, a
``FILE.npy`` passed explicitly without one is read as it is. ``dataprune select`` records the digests of the files a
method read in the keep file's manifest.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_save_npy, atomic_write_json, read_json, refuse_overwrite
from .integrity import array_digest
from .logs import get_logger

FEATURES_FILE = "features.npy"
LOGITS_FILE = "final_logits.npy"
OUTPUTS_FILE = "final_outputs.json"
#: every file :func:`save_final_outputs` writes (each with a temp name and a rename)
OUTPUT_FILES = (LOGITS_FILE, FEATURES_FILE, OUTPUTS_FILE)
_FORMAT = "dataprune-final-outputs"
#: method parameter -> the run-directory file it defaults to
DEFAULT_FILES = {"features": FEATURES_FILE, "logits": LOGITS_FILE}
_log = get_logger("run_outputs")


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device (no torch import here)
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataPruneError(f"{name} have shape {arr.shape}; expected (N, {'C' if name == 'logits' else 'D'})")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataPruneError(f"{name} have dtype {arr.dtype}; expected real numbers")
    return arr


def save_final_outputs(run_dir: str | os.PathLike, logits: Any, features: Any, *,
                       force: bool = False) -> tuple[Path, Path]:
    """Write ``final_logits.npy`` (float32) and ``features.npy`` (float16) into ``run_dir``.

    Parameters
    ----------
    run_dir : str | os.PathLike
        The run directory (the parent of ``dynamics/``).
    logits : Any
        (N, C) logits of the final model on every training sample, row i = sample i.
    features : Any
        (N, D) penultimate features of the same pass, row i = sample i.
    force : bool
        Overwrite existing files (default False: refused).

    Returns
    -------
    tuple[Path, Path]
        The two paths written. Each file goes to a temp name first and is renamed into
        place, so a crash never leaves a half-written file under the final name; their
        digests go to ``final_outputs.json`` (first: files that do not match it are refused
        when read).

    Raises
    ------
    DataPruneError
        Non-numeric input, different row counts, features beyond the float16 range, or an
        existing file without ``force``.
    """
    run_dir = Path(run_dir)
    logits = _to_numpy(logits, "logits").astype(np.float32, copy=False)
    features = _to_numpy(features, "features")
    if logits.shape[0] != features.shape[0]:
        raise DataPruneError(f"logits have {logits.shape[0]} rows and features {features.shape[0]}; "
                             "expected one row per training sample in both")
    finite = np.isfinite(features)
    big = float(np.abs(features[finite]).max()) if finite.any() else 0.0
    if big > float(np.finfo(np.float16).max):
        raise DataPruneError(f"features exceed the float16 range (max |value| {big:.4g} > 65504); "
                             "rescale them before saving")
    f16 = features.astype(np.float16)
    paths = run_dir / LOGITS_FILE, run_dir / FEATURES_FILE
    for p in paths:
        refuse_overwrite(p, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / OUTPUTS_FILE, {"format": _FORMAT, "version": 1, "digests": {
        LOGITS_FILE: array_digest(logits), FEATURES_FILE: array_digest(f16)}})
    atomic_save_npy(paths[0], logits)
    atomic_save_npy(paths[1], f16)
    return paths


def recorded_digests(folder: Path) -> dict[str, str] | None:
    """The ``digests`` of ``folder/final_outputs.json`` (file name -> digest), or None if
    there is none; a malformed one is refused."""
    file = Path(folder) / OUTPUTS_FILE
    if not file.exists():
        return None
    data = read_json(file)
    digests = data.get("digests") if isinstance(data, dict) and data.get("format") == _FORMAT else None
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise DataPruneError(f"{file} is not a dataprune final-outputs record (expected format {_FORMAT!r} "
                             "with a 'digests' mapping)")
    return digests


#: files already reported as unverified in this process
_UNVERIFIED_REPORTED: set[str] = set()


def file_digest(file: str | os.PathLike, arr: np.ndarray | None = None, *, warn: bool = True) -> str:
    """The digest (:func:`~dataprune.integrity.array_digest`) of the ``.npy`` ``file``,
    checked against ``final_outputs.json`` beside it: a mismatch raises
    :class:`~dataprune.errors.DataPruneError`; a file it does not list is reported once
    (warning, unless ``warn`` is false: a file the user chose) as unverified. ``arr``: the
    file already memory-mapped. Reads the whole file (no cache: a file rewritten within the
    file system's timestamp granularity would keep its size and mtime)."""
    file = Path(file)
    digest = array_digest(_map(file) if arr is None else arr)
    recorded = recorded_digests(file.parent)
    if recorded is not None and file.name in recorded:
        if recorded[file.name] != digest:
            raise DataPruneError(f"{file} does not match its digest in {file.parent / OUTPUTS_FILE} "
                                 "(changed or corrupted after it was written); write it again "
                                 "(`dataprune record`, or dataprune.save_final_outputs)")
    elif warn and str(file.resolve()) not in _UNVERIFIED_REPORTED:
        _UNVERIFIED_REPORTED.add(str(file.resolve()))
        _log.warning(f"warning: {file} has no recorded digest ({OUTPUTS_FILE} beside it does not list "
                     "it): read unverified")
    return digest


def _map(file: Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        raise DataPruneError(f"{file} is not a readable .npy file ({e})") from None


def verify_final_outputs(run_dir: str | os.PathLike, *, required: bool) -> str:
    """Check the run directory's ``final_logits.npy`` and ``features.npy`` (those present)
    against ``final_outputs.json``; raise on a mismatch, and with ``required`` (a run that
    wrote digests) also for a file without one. Returns "" or a note naming unverified files."""
    run_dir = Path(run_dir)
    recorded = recorded_digests(run_dir) or {}
    unverified = []
    for name in (LOGITS_FILE, FEATURES_FILE):
        if not (run_dir / name).exists():
            continue
        if name not in recorded:
            if required:
                raise DataPruneError(f"{run_dir / name} has no digest in {run_dir / OUTPUTS_FILE} (removed or "
                                     "replaced after the run wrote it); write it again")
            unverified.append(name)
            continue
        file_digest(run_dir / name, warn=False)
    return (f"{', '.join(unverified)} unverified (no {OUTPUTS_FILE}: written by an older dataprune)"
            if unverified else "")


def input_digests(dynamics: Any, takes: Any, params: dict[str, Any]) -> dict[str, str]:
    """Digests of the final-output files a method reads: for each of its parameters
    ``takes`` that names one (``features``, ``logits``), the file given in ``params`` or
    the run directory's default, by path (verified, see :func:`file_digest`); an array
    given instead of a file is named ``<given features>`` etc."""
    out = {}
    for name, default in DEFAULT_FILES.items():
        if name not in takes:
            continue
        given = params.get(name)
        if given is not None and not isinstance(given, (str, os.PathLike)):
            out[f"<given {name}>"] = array_digest(_to_numpy(given, name))
            continue
        file = Path(given) if given is not None else run_dir_of(dynamics) / default
        if file.exists():  # a missing file is refused by the method itself, with its advice
            out[str(file.resolve())] = file_digest(file, warn=given is None)
    return out


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory of ``dataprune record`` (its ``config.json`` says so)."""
    try:
        config = read_json(path / "config.json")
    except DataPruneError:
        return False
    return isinstance(config, dict) and config.get("command") == "score"


def run_dir_of(dynamics_or_path: Any) -> Path:
    """The run directory of a :class:`~dataprune.Dynamics`, a store path or a run path."""
    if isinstance(dynamics_or_path, (str, os.PathLike)):
        p = Path(dynamics_or_path)
        if (p / "meta.json").exists() and not (p / "dynamics").is_dir():
            return p.parent  # a store directory: the run directory is its parent
        return p
    path = getattr(dynamics_or_path, "path", None)
    if path is None:
        raise DataPruneError(f"{type(dynamics_or_path).__name__} has no path to find the run "
                             "directory from; pass the file explicitly (features=/logits=FILE.npy)")
    return Path(path).parent


def _load(dynamics_or_path: Any, given: Any, default_name: str, what: str, param: str,
          num_samples: int | None) -> np.ndarray:
    if given is not None and not isinstance(given, (str, os.PathLike)):
        arr = _to_numpy(given, what)
        source = f"the given {what}"
    else:
        file = Path(given) if given is not None else run_dir_of(dynamics_or_path) / default_name
        if not file.exists():
            how = ("`dataprune record` writes it at the end of the scoring run (final model, "
                   "clean view) via dataprune.run_outputs.save_final_outputs")
            raise DataPruneError(f"{file} not found: {what} are needed here; {how}, "
                                 f"or pass {param}=FILE.npy")
        arr = _map(file)
        file_digest(file, arr, warn=given is None)  # refuses a file changed since it was recorded
        source = str(file)
        if arr.ndim != 2:
            raise DataPruneError(f"{file} has shape {arr.shape}; expected (N, D) {what}")
    if num_samples is None:
        num_samples = getattr(dynamics_or_path, "num_samples", None)
    if num_samples is not None and arr.shape[0] != int(num_samples):
        raise DataPruneError(f"{source} has {arr.shape[0]} rows; expected one per training sample "
                             f"({num_samples})")
    return arr


def load_features(dynamics_or_path: Any, features: Any = None, *,
                  num_samples: int | None = None) -> np.ndarray:
    """(N, D) features: ``features`` (an array or a ``.npy`` path) or ``RUN/features.npy``.

    Parameters
    ----------
    dynamics_or_path : Any
        A :class:`~dataprune.Dynamics` (its run directory is the parent of its store) or a
        run/store path.
    features : Any
        An (N, D) array or ``.npy`` path (default None: the run's ``features.npy``).
    num_samples : int | None
        N, the rows expected (default None: the store's N, when known).

    Returns
    -------
    np.ndarray
        (N, D) features; files are memory-mapped.

    Raises
    ------
    DataPruneError
        The file is missing, changed since it was recorded, not 2-D, or has a row count
        other than N.
    """
    return _load(dynamics_or_path, features, FEATURES_FILE, "features", "features", num_samples)


def load_final_logits(dynamics_or_path: Any, logits: Any = None, *,
                      num_samples: int | None = None) -> np.ndarray:
    """(N, C) final-model logits: ``logits`` (array or ``.npy`` path) or ``RUN/final_logits.npy``.

    Parameters
    ----------
    dynamics_or_path : Any
        A :class:`~dataprune.Dynamics` or a run/store path, as in :func:`load_features`.
    logits : Any
        An (N, C) array or ``.npy`` path (default None: the run's ``final_logits.npy``).
    num_samples : int | None
        As in :func:`load_features`.

    Returns
    -------
    np.ndarray
        (N, C) logits, memory-mapped when read from a file.

    Raises
    ------
    DataPruneError
        As :func:`load_features`.
    """
    return _load(dynamics_or_path, logits, LOGITS_FILE, "final logits", "logits", num_samples)
