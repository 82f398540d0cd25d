"""Keep files: kept sample indices (ascending) as ``.txt`` (one per line) or ``.npy`` (int64),
with a ``<name>.json`` manifest beside them."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ._version import __version__
from .errors import DataPruneError
from .fileio import (atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json,
                     refuse_overwrite, writing)
from .integrity import int64_digest

SUFFIXES = (".txt", ".npy")
#: one index per line: ASCII digits only (``int()`` would also take "1_000", "+3" or
#: full-width digits), a minus sign allowed so that negative indices get their own error
_INDEX_LINE = re.compile(r"-?[0-9]+")


def manifest_path(path: str | os.PathLike) -> Path:
    """``keep.txt`` -> ``keep.json``."""
    return Path(path).with_suffix(".json")


def labels_digest(labels: Any) -> str:
    """Hash of (N,) integer training labels (blake2b-128 of their int64 bytes): a keep file's
    manifest records the labels it was selected on, so it is refused on other data."""
    return int64_digest(labels)


def source_info(labels: Any, data_dir: str | os.PathLike | None) -> dict[str, Any]:
    """Manifest fields naming the data a keep file was selected on: ``data_dir`` (resolved,
    or None) and ``labels_digest`` (None when some labels are unknown, -1)."""
    labels = np.asarray(labels)
    known = labels.size > 0 and bool((labels >= 0).all())
    return {"data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
            "labels_digest": labels_digest(labels) if known else None}


def keep_manifest(method: str, params: Mapping[str, Any], prune_ratio: float | None, num_samples: int, *,
                  dataset: str | None, selection: Mapping[str, Any] | None = None, labels: Any = None,
                  data_dir: str | os.PathLike | None = None, **fields: Any) -> dict[str, Any]:
    """The manifest of a keep file selected from ``num_samples`` samples of ``dataset`` by
    ``method`` (``params``) at ``prune_ratio``: those fields, ``selection`` (how the subset
    was drawn from the scores, when given), :func:`source_info` of ``labels`` (N,) and
    ``data_dir`` (when ``labels`` are given), the caller's ``fields`` and the dataprune
    version. :func:`write_keep` adds ``kept``, ``keep_file`` and ``keep_digest``."""
    info: dict[str, Any] = {"method": method, "params": dict(params), "prune_ratio": prune_ratio,
                            "num_samples": num_samples, "dataset": dataset}
    if selection is not None:
        info["selection"] = dict(selection)
    if labels is not None:
        info.update(source_info(labels, data_dir))
    return {**info, **fields, "dataprune": __version__}


def check_suffix(path: str | os.PathLike) -> None:
    """Raise unless ``path`` ends in .txt or .npy."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DataPruneError(f"keep file {path} ends in {path.suffix!r}; expected .txt or .npy")


def orphan_outputs(path: str | os.PathLike) -> set[Path]:
    """Resolved paths that a write of keep file ``path`` killed before the keep file itself
    left behind: its manifest (only if dataprune wrote it for this keep file: ``keep_file``
    names it and it has a ``keep_digest``) and the file list that manifest names. With no
    keep file they describe nothing, so a rerun may replace them without ``--force``."""
    path = Path(path)
    manifest = manifest_path(path)
    if path.exists() or not manifest.is_file():
        return set()
    try:
        info = read_json(manifest)
    except DataPruneError:
        return set()
    if not isinstance(info, dict) or info.get("keep_file") != path.name or "keep_digest" not in info:
        return set()
    found = {manifest.resolve()}
    if isinstance(info.get("file_list"), str):
        found.add(Path(info["file_list"]).resolve())
    return found


def refuse_keep_overwrite(path: str | os.PathLike, outputs: Iterable[str | os.PathLike], force: bool) -> None:
    """Raise if one of ``outputs`` (the keep file ``path``, its manifest, ...) exists without
    ``force``, unless it is an :func:`orphan_outputs` of ``path``."""
    orphans = orphan_outputs(path)
    for p in outputs:
        refuse_overwrite(p, force or Path(p).resolve() in orphans)


def write_keep(path: str | os.PathLike, indices: np.ndarray, manifest: Mapping[str, Any], *,
               force: bool = False, file_list: tuple[str | os.PathLike, str] | None = None) -> Path:
    """Write ascending ``indices`` to keep file ``path`` and ``manifest`` beside it, complete or absent.

    The manifest is written first, then ``file_list`` if given, the keep file last. A kill in
    between leaves no keep file and an orphan manifest that a rerun replaces
    (:func:`orphan_outputs`); the ``keep_digest`` tells a new manifest from an older keep file
    (``force``) left by a crash. Each file is renamed into place from a temp file; temps left
    by a killed earlier write are removed first (:func:`~dataprune.fileio.writing`).

    Parameters
    ----------
    path : str | os.PathLike
        The keep file: ``.txt`` (one index per line) or ``.npy``.
    indices : np.ndarray
        (kept,) ascending sample indices.
    manifest : Mapping[str, Any]
        Provenance written to the JSON manifest beside ``path`` (``kept``, ``keep_file`` and
        ``keep_digest`` are added).
    force : bool
        Overwrite existing outputs (default False: refused).
    file_list : tuple[str | os.PathLike, str] | None
        ``(path, text)`` of a file list to write too; its path is recorded in the manifest.

    Returns
    -------
    Path
        ``path``, the keep file written after its manifest.

    Raises
    ------
    DataPruneError
        A suffix other than ``.txt``/``.npy``, or an existing output without ``force``.
    """
    path = Path(path)
    check_suffix(path)
    indices = np.asarray(indices, dtype=np.int64)
    info = {**manifest, "kept": int(len(indices)), "keep_file": path.name,
            "keep_digest": int64_digest(np.sort(indices))}
    outputs = [path, manifest_path(path)]
    if file_list is not None:
        outputs.append(Path(file_list[0]))
        info["file_list"] = str(Path(file_list[0]).resolve())
    with writing(outputs):
        refuse_keep_overwrite(path, outputs, force)
        atomic_write_json(outputs[1], info)
        if file_list is not None:
            atomic_write_text(outputs[2], file_list[1])
        if path.suffix == ".npy":
            atomic_save_npy(path, indices)
        else:
            atomic_write_bytes(path, "".join(f"{i}\n" for i in indices.tolist()).encode())
    return path


def keep_source(path: str | os.PathLike) -> dict[str, Any]:
    """What the manifest beside keep file ``path`` says about the data it was selected on:
    ``dataset`` (name or None), ``data_dir`` (resolved folder or None) and ``num_samples``
    (N or None); empty when there is no manifest."""
    manifest = manifest_path(path)
    if not Path(path).exists() or not manifest.exists():
        return {}
    info = read_json(manifest)
    if not isinstance(info, dict):
        raise DataPruneError(f"manifest {manifest} is not a JSON object")
    source = {key: info.get(key) for key in ("dataset", "data_dir", "num_samples")}
    for key, kind in (("dataset", str), ("data_dir", str), ("num_samples", int)):
        value = source[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise DataPruneError(f"manifest {manifest} has {key}={value!r}; expected a "
                                 f"{'name' if kind is str else 'sample count'} or null")
    return source


def read_keep(path: str | os.PathLike, num_samples: int | None = None, *,
              dataset: str | None = None, labels: Any = None,
              data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Read and validate a keep file: integers, no duplicates, within 0..num_samples-1.

    If a manifest lies beside it, its ``num_samples``, ``dataset``, ``kept`` count and
    ``labels_digest`` must agree with what is known here (a shorter file was truncated; a keep
    file selected on one folder is refused on another of the same N; a moved copy of the same
    data, same labels, is accepted). Manifests without these fields (older versions, other
    tools) are read as before.

    Parameters
    ----------
    path : str | os.PathLike
        The keep file, ``.txt`` or ``.npy``.
    num_samples : int | None
        N, the size of the training set (checked against the indices and the manifest).
    dataset : str | None
        The dataset name, checked against the manifest's when both are known.
    labels : Any
        (N,) training labels about to be used, checked against the manifest's
        ``labels_digest`` when both are known.
    data_dir : str | os.PathLike | None
        This data's folder; it only names both folders in the labels mismatch error.

    Returns
    -------
    np.ndarray
        (kept,) int64 indices, ascending.

    Raises
    ------
    DataPruneError
        A missing, unreadable, empty or invalid file, or one that disagrees with its
        manifest.
    """
    path = Path(path)
    check_suffix(path)
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
            if not _INDEX_LINE.fullmatch(ln):
                raise DataPruneError(f"keep file {path} line {lineno} is {ln[:40]!r}; "
                                     "expected one integer sample index per line (ASCII digits 0-9)")
            vals.append(int(ln))
        try:
            idx = np.array(vals, dtype=np.int64)
        except OverflowError:
            raise DataPruneError(f"keep file {path} holds an index beyond int64; expected sample "
                                 "indices 0..N-1") from None
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
    if manifest.exists():
        info = read_json(manifest)
        if not isinstance(info, dict):
            raise DataPruneError(f"manifest {manifest} is not a JSON object")
        for key in ("num_samples", "kept"):
            value = info.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise DataPruneError(f"manifest {manifest} has {key}={value!r}; expected a non-negative integer")
        if not isinstance(info.get("dataset", ""), (str, type(None))):
            raise DataPruneError(f"manifest {manifest} has dataset={info['dataset']!r}; expected a name")
        n = info.get("num_samples")
        if num_samples is not None and n is not None and int(n) != num_samples:
            raise DataPruneError(f"keep file {path} was selected from N={n} samples (see {manifest.name}) "
                                 f"but this dataset has N={num_samples}")
        kept = info.get("kept")
        if kept is not None and int(kept) != idx.size:
            raise DataPruneError(f"keep file {path} holds {idx.size} indices but {manifest.name} says "
                                 f"{kept} were kept; the file is truncated or was edited")
        if info.get("keep_digest") not in (None, int64_digest(uniq)):
            raise DataPruneError(f"keep file {path} does not match {manifest.name} (keep_digest): it was "
                                 "edited, or a crash left an older keep file; select again")
        name = info.get("dataset")
        if dataset is not None and name is not None and name != dataset:
            raise DataPruneError(f"keep file {path} was selected on dataset {name!r} (see {manifest.name}) "
                                 f"but this run trains on {dataset!r}")
        digest = info.get("labels_digest")
        if labels is not None and isinstance(digest, str) and digest != labels_digest(labels):
            here = "" if data_dir is None else f" at {Path(data_dir).resolve()}"
            raise DataPruneError(f"keep file {path} was selected on other training labels (data "
                                 f"{info.get('data_dir') or '?'}, see {manifest.name}) than this "
                                 f"dataset's{here}; expected the data its scoring run used")
    return uniq
