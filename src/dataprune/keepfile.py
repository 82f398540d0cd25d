"""Keep files: kept sample indices (ascending) as ``.txt`` (one per line) or ``.npy`` (int64),
with a ``<name>.json`` manifest beside them."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_write_bytes, atomic_write_json, read_json, refuse_overwrite

SUFFIXES = (".txt", ".npy")


def manifest_path(path: str | os.PathLike) -> Path:
    """``keep.txt`` -> ``keep.json``."""
    return Path(path).with_suffix(".json")


def _check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise DataPruneError(f"keep file {path} ends in {path.suffix!r}; expected .txt or .npy")


def write_keep(path: str | os.PathLike, indices: np.ndarray, manifest: Mapping[str, Any], *,
               force: bool = False) -> Path:
    """Atomically write ascending ``indices`` (kept,) to ``path`` and ``manifest`` beside it."""
    path = Path(path)
    _check_suffix(path)
    for p in (path, manifest_path(path)):
        refuse_overwrite(p, force)
    indices = np.asarray(indices, dtype=np.int64)
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, indices)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_bytes(path, "".join(f"{i}\n" for i in indices.tolist()).encode())
    atomic_write_json(manifest_path(path), {**manifest, "kept": int(len(indices)),
                                            "keep_file": path.name})
    return path


def read_keep(path: str | os.PathLike, num_samples: int | None = None) -> np.ndarray:
    """Read and validate a keep file: integers, no duplicates, within 0..num_samples-1.

    If a manifest lies beside it, its ``num_samples`` must equal ``num_samples``.
    Returns ascending int64 indices (kept,).
    """
    path = Path(path)
    _check_suffix(path)
    if not path.exists():
        raise DataPruneError(f"keep file {path} does not exist")
    if path.suffix == ".npy":
        try:
            idx = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataPruneError(f"keep file {path} is not a readable .npy ({e})") from None
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataPruneError(f"keep file {path} holds {idx.dtype} {idx.shape}; expected 1-D integers")
    else:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        vals = []
        for lineno, ln in enumerate(lines, 1):
            if not ln:
                continue
            try:
                vals.append(int(ln))
            except ValueError:
                raise DataPruneError(f"keep file {path} line {lineno} is {ln[:40]!r}; "
                                     "expected one integer sample index per line") from None
        idx = np.array(vals, dtype=np.int64)
    idx = idx.astype(np.int64)
    if idx.size == 0:
        raise DataPruneError(f"keep file {path} is empty; expected at least one sample index")
    uniq = np.unique(idx)
    if uniq.size != idx.size:
        raise DataPruneError(f"keep file {path} repeats {idx.size - uniq.size} sample indices; "
                             "expected each index once")
    if uniq[0] < 0 or (num_samples is not None and uniq[-1] >= num_samples):
        raise DataPruneError(f"keep file {path} holds indices {uniq[0]}..{uniq[-1]}; expected "
                             f"0..{'N-1' if num_samples is None else num_samples - 1}")
    manifest = manifest_path(path)
    if num_samples is not None and manifest.exists():
        n = read_json(manifest).get("num_samples")
        if n is not None and int(n) != num_samples:
            raise DataPruneError(f"keep file {path} was selected from N={n} samples (see {manifest.name}) "
                                 f"but this dataset has N={num_samples}")
    return uniq
