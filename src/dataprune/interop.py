"""Interoperability with the official Dyn-Unc code (BAAI-DCAI/Dataset-Pruning, ImageNet).

- Its training run writes ``pred_prob_history/prob_{epoch}.txt``: one line per sample (in
  ``file_list.txt`` order), the labelled-class probability, ``0`` where the sample was not
  seen that epoch. :func:`import_official` turns those files into a dynamics store.
- Its data lists are ``file_list.txt`` files: one ``relative/path label`` line per sample,
  the line number being the sample index. :func:`read_file_list` / :func:`write_file_list`
  read them and write the kept subset in the same format.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_write_text, refuse_overwrite
from .store import Dynamics, StoreWriter

FILE_LIST = "file_list.txt"
_PROB_FILE = re.compile(r"^prob_(\d+)\.txt$")


def read_file_list(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a ``relative/path label`` list: returns (paths (N,), int64 labels (N,)).

    The label is the last whitespace-separated field, so paths may contain spaces.
    """
    path = Path(path)
    if not path.is_file():
        raise DataPruneError(f"file list {path} does not exist")
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            head, _, label = line.rstrip().rpartition(" ")
            try:
                if not head:
                    raise ValueError
                labels.append(int(label))
            except ValueError:
                raise DataPruneError(f"{path} line {lineno} is {line[:60]!r}; expected "
                                     "'relative/path label'") from None
            paths.append(head)
    if not paths:
        raise DataPruneError(f"file list {path} is empty; expected one 'path label' line per sample")
    return paths, np.asarray(labels, dtype=np.int64)


def store_file_list(dyn: Dynamics) -> tuple[list[str], np.ndarray] | None:
    """The store's ``file_list.txt`` as (paths (N,), int64 labels (N,)), or None if it has none.

    Stores of image-folder runs and stores imported with a file list have one; paths are
    relative to the training split's folder (``ROOT/train``), line i = sample i.
    """
    src = Path(dyn.path) / FILE_LIST
    if not src.exists():
        return None
    paths, labels = read_file_list(src)
    if len(paths) != dyn.num_samples:
        raise DataPruneError(f"{src} lists {len(paths)} samples but the store has {dyn.num_samples}")
    return paths, labels


def format_file_list(paths: Sequence[str], labels: Sequence[int] | np.ndarray) -> str:
    """``relative/path label`` lines (newline-terminated) for parallel paths and labels."""
    labels = np.asarray(labels)
    if len(paths) != len(labels):
        raise DataPruneError(f"{len(paths)} paths but {len(labels)} labels; expected equal counts")
    return "".join(f"{p} {int(y)}\n" for p, y in zip(paths, labels.tolist()))


def write_file_list(out: str | os.PathLike, paths: Sequence[str], labels: Sequence[int] | np.ndarray,
                    keep: np.ndarray | None = None, *, force: bool = False) -> Path:
    """Write the samples ``keep`` (ascending indices; default all) as a file list.

    The output is in the official code's ``file_list.txt`` format (``relative/path label``
    per line, kept samples in index order), so it can replace the full list in its training.
    """
    out = Path(out)
    refuse_overwrite(out, force)
    labels = np.asarray(labels)
    if keep is not None:
        keep = np.asarray(keep, dtype=np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= len(paths)):
            raise DataPruneError(f"keep indices span [{keep.min()}, {keep.max()}] but the file list "
                                 f"has {len(paths)} samples")
        paths = [paths[i] for i in keep.tolist()]
        labels = labels[keep]
    atomic_write_text(out, format_file_list(paths, labels))
    return out


def official_prob_files(src: str | os.PathLike) -> list[Path]:
    """The ``prob_{epoch}.txt`` files of ``src`` (or ``src/pred_prob_history``), by epoch.

    Epochs must run 0..K-1 without gaps (a gap would silently shift the windows).
    """
    src = Path(src)
    if (src / "pred_prob_history").is_dir():
        src = src / "pred_prob_history"
    if not src.is_dir():
        raise DataPruneError(f"{src} is not a directory; expected the official run's output folder "
                             "or its pred_prob_history/")
    found = {int(m.group(1)): src / f.name for f in src.iterdir() if (m := _PROB_FILE.match(f.name))}
    if not found:
        raise DataPruneError(f"no prob_{{epoch}}.txt files in {src}; expected the official code's "
                             "pred_prob_history/")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise DataPruneError(f"{src} lacks prob_{missing[0]}.txt (epochs present: {min(found)}.."
                             f"{max(found)}, {len(missing)} missing); expected epochs 0..K-1")
    return [found[e] for e in range(len(found))]


def _read_prob_file(path: Path, n: int | None) -> np.ndarray:
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise DataPruneError(f"{path} is not one number per line ({e})") from None
    if values.ndim != 1 or (n is not None and len(values) != n):
        raise DataPruneError(f"{path} holds {values.size} values; expected {n} (one per sample)")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataPruneError(f"{path} holds values outside [0, 1]; expected probabilities")
    return values


def import_official(src: str | os.PathLike, out: str | os.PathLike, *,
                    file_list: str | os.PathLike | None = None, num_classes: int | None = None,
                    view: str = "clean", force: bool = False) -> Dynamics:
    """Read the official code's per-epoch probability files into a dynamics store.

    Parameters
    ----------
    src : the official run's output folder (holding ``pred_prob_history/``) or that folder.
    out : store directory to create.
    file_list : optional ``file_list.txt`` of the run: gives labels (and is copied into the
        store, so ``dataprune select --file-list`` can write the kept subset).
    num_classes : C; default max label + 1 from ``file_list`` (0 = unknown without one).
    view : the view the probabilities came from (the official code records ``clean``).

    A value of exactly 0 means "not observed" there (a sample its sampler dropped) and becomes
    NaN; everything else is stored as float16. Reads one epoch at a time: memory O(N).
    """
    files = official_prob_files(src)
    paths, labels = read_file_list(file_list) if file_list is not None else (None, None)
    first = _read_prob_file(files[0], None if labels is None else len(labels))
    n = len(first)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels is not None and labels.size else 0
    writer = StoreWriter(out, num_samples=n, num_classes=int(num_classes), signals=["prob"],
                         capacity=len(files), view=view, labels=labels, force=force,
                         extra_meta={"imported_from": str(Path(src).resolve()),
                                     "source_format": "official pred_prob_history"})
    for e, f in enumerate(files):
        values = first if e == 0 else _read_prob_file(f, n)
        writer.write_epoch({"prob": np.where(values == 0, np.nan, values)})
    if paths is not None:
        atomic_write_text(writer.path / FILE_LIST, format_file_list(paths, labels))
    return Dynamics.open(writer.path)
