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
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_write_text, read_json, refuse_overwrite
from .integrity import file_bytes_digest
from .logs import get_logger
from .store import FORMAT, Dynamics, StoreWriter

_log = get_logger("interop")

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
    try:
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
    except UnicodeDecodeError as e:
        raise DataPruneError(f"file list {path} is not UTF-8 text (byte {e.object[e.start]:#04x}); "
                             "expected 'relative/path label' lines in UTF-8") from None
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
    known = np.asarray(dyn.labels) >= 0
    differ = np.flatnonzero(known & (labels != np.asarray(dyn.labels)))
    if differ.size:  # the list was edited or belongs to other data: its lines would be wrong
        i = int(differ[0])
        raise DataPruneError(f"{src} line {i + 1} has label {int(labels[i])} but the store's labels.npy "
                             f"has {int(dyn.labels[i])} ({differ.size} such lines); expected the store's "
                             "own file list")
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
    found: dict[int, Path] = {}
    for f in sorted(src.iterdir()):
        if (m := _PROB_FILE.match(f.name)):
            epoch = int(m.group(1))
            if epoch in found:  # prob_1.txt and prob_01.txt: which is epoch 1?
                raise DataPruneError(f"{src} holds both {found[epoch].name} and {f.name} for epoch {epoch}; "
                                     "expected one prob_{epoch}.txt per epoch (remove the stray one)")
            found[epoch] = f
    if not found:
        raise DataPruneError(f"no prob_{{epoch}}.txt files in {src}; expected the official code's "
                             "pred_prob_history/")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise DataPruneError(f"{src} lacks prob_{missing[0]}.txt (epochs present: {min(found)}.."
                             f"{max(found)}, {len(missing)} missing); expected epochs 0..K-1")
    return [found[e] for e in range(len(found))]


def _read_prob_file(path: Path, n: int | None) -> np.ndarray:
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused below
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise DataPruneError(f"{path} is not one number per line ({e})") from None
    if values.size == 0:
        raise DataPruneError(f"{path} is empty; expected one probability per sample, one per line")
    if values.ndim != 1 or (n is not None and len(values) != n):
        raise DataPruneError(f"{path} holds {values.size} values; expected {n} (one per sample)")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataPruneError(f"{path} holds values outside [0, 1]; expected probabilities")
    return values


def check_import_out(out: Path, force: bool) -> None:
    """Refuse the store folder ``out`` unless it is absent, an empty folder, or a dataprune store (its
    ``meta.json`` says so; without ``force`` the store writer then refuses it): a folder of
    the user's, even one holding files named like a store's arrays (``labels.npy``,
    ``prob.npy``), is never written into or deleted, ``--force`` or not."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataPruneError(f"{out} is a file; expected a new directory for the store")
    entries = sorted(e.name for e in out.iterdir())
    if not entries:
        return
    try:
        meta = read_json(out / "meta.json")
    except DataPruneError:
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT):
        names = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise DataPruneError(f"{out} is not a dataprune store (it holds {names}, no store meta.json); "
                             f"refusing to write into it{' even with force' if force else ''}: choose a new "
                             "folder, or empty it yourself")


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
    num_classes : C; default max label + 1 from ``file_list`` (the official lists number
        the classes 0..C-1 in lexicographic order). Without a file list it is required.
    view : the view the probabilities came from (the official code records ``clean``).

    A value of exactly 0 means "not observed" there (a sample its sampler dropped) and becomes
    NaN; everything else is stored as float16. Reads one epoch at a time: memory O(N).
    Everything checkable up front (file names, the file list, C, the first file) is checked
    before anything is written; a later file that turns out bad removes the partial store.

    The store plans one epoch per file and is finished when it holds them all (and the file
    list). An import that was killed leaves an unfinished store: the same import run again
    (same ``src``, same file names and contents, same labels and C) resumes it after its last
    written epoch; ``force`` starts over instead.
    """
    check_import_out(Path(out), force)
    files = official_prob_files(src)
    paths, labels = read_file_list(file_list) if file_list is not None else (None, None)
    num_classes = _resolve_num_classes(num_classes, labels)
    first = _read_prob_file(files[0], None if labels is None else len(labels))
    n = len(first)
    out = Path(out)
    source = {"imported_from": str(Path(src).resolve()), "source_format": "official pred_prob_history",
              "source_files": [[f.name, file_bytes_digest(str(f))] for f in files]}
    writer = None if force else _resumable(out, source, n, num_classes, labels)
    if writer is None:
        # what was in ``out`` before (None: nothing of it survives the StoreWriter, all is ours)
        before = set(os.listdir(out)) if out.is_dir() and not force else None
        # planned: one epoch per file; the file list is written before the last epoch, so a
        # store holding every epoch has it
        writer = StoreWriter(out, num_samples=n, num_classes=num_classes, signals=["prob"],
                             capacity=len(files), view=view, labels=labels, force=force,
                             planned_epochs=len(files), extra_meta=source)
    else:
        before = set(os.listdir(out))  # a resumed import keeps what it had written
        _log.info(f"resuming the unfinished import in {out} after epoch {writer.meta['epochs']} "
                  f"of {len(files)}")
    try:
        for e in range(int(writer.meta["epochs"]), len(files)):
            values = first if e == 0 else _read_prob_file(files[e], n)
            if e + 1 < len(files) or paths is None:
                writer.write_epoch({"prob": np.where(values == 0, np.nan, values)})
            else:  # the last epoch: the file list first, then the epoch that finishes the store
                atomic_write_text(writer.path / FILE_LIST, format_file_list(paths, labels))
                writer.write_epoch({"prob": np.where(values == 0, np.nan, values)})
    except BaseException:
        _remove_partial(writer.path, before)
        raise
    if paths is not None and not (writer.path / FILE_LIST).exists():
        atomic_write_text(writer.path / FILE_LIST, format_file_list(paths, labels))
    writer.finish()
    return Dynamics.open(writer.path)


def _resumable(out: Path, source: dict, n: int, num_classes: int,
               labels: np.ndarray | None) -> StoreWriter | None:
    """A writer continuing the unfinished import of the same source in ``out``, or None when
    ``out`` holds no store (a finished or different store is refused by the StoreWriter,
    without ``force``); an unfinished import of other data is refused here."""
    if not (out / "meta.json").exists():
        return None
    try:
        dyn = Dynamics.open(out)
    except DataPruneError:
        return None  # not a readable store: the StoreWriter refuses or replaces it
    if dyn.finished is not False or "imported_from" not in dyn.meta:
        return None
    same = (dyn.meta.get("imported_from") == source["imported_from"]
            and dyn.meta.get("source_files") == source["source_files"]
            and dyn.num_samples == n and dyn.num_classes == num_classes and dyn.signals == ["prob"]
            and (labels is None or np.array_equal(np.asarray(dyn.labels), labels)))
    if not same:
        raise DataPruneError(f"{out} holds an unfinished import ({dyn.epochs} of {dyn.planned_epochs} "
                             "epochs) of other files, labels or C; pass force=True to replace it")
    del dyn
    return StoreWriter.open_existing(out)  # verifies the epochs written so far


def _resolve_num_classes(num_classes: int | None, labels: np.ndarray | None) -> int:
    """C from ``num_classes`` or the file list's labels (max + 1); refuses what the store
    would refuse (C < 2, a label >= C) before anything is written."""
    if labels is not None and labels.min() < 0:
        raise DataPruneError(f"the file list has label {int(labels.min())}; expected labels 0..C-1")
    if num_classes is None:
        if labels is None:
            raise DataPruneError("import_official needs the run's file list (file_list=FILE: labels, "
                                 "and C = max label + 1) or num_classes=C; the prob files hold no labels")
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise DataPruneError(f"the file list's labels are all {int(labels.max())}, so C would be "
                                 f"{num_classes}; pass num_classes=C (at least 2)")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise DataPruneError(f"num_classes={num_classes!r}; expected an integer >= 2")
    if labels is not None and labels.max() >= num_classes:
        raise DataPruneError(f"the file list has label {int(labels.max())} but num_classes={num_classes}; "
                             f"expected labels 0..{num_classes - 1}")
    return int(num_classes)


def _remove_partial(path: Path, before: set[str] | None) -> None:
    """Remove what a failed import wrote: the folder if it made it, else the files that were
    not there before (``before``), so nothing blocks the corrected rerun."""
    if before is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in set(os.listdir(path)) - before:
        p = path / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
