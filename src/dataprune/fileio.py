"""Atomic, no-clobber file output: write to a temp name, then rename into place."""
from __future__ import annotations

import errno
import fcntl
import glob
import io
import json
import os
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np

from .errors import DataPruneError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode of files we write: what ``open()`` would give (mkstemp alone makes them 0600).
_FILE_MODE = 0o666 & ~_current_umask()


def refuse_overwrite(path: str | os.PathLike, force: bool) -> None:
    """Raise if ``path`` exists and ``force`` is false."""
    if Path(path).exists() and not force:
        raise DataPruneError(f"{path} already exists; pass force=True to overwrite it")


#: the lock file :func:`exclusive_lock` holds in a directory (kept by :func:`clear_for_force`)
LOCK_FILE = ".lock"

#: descriptors of the locks this process holds. A forked child (a DataLoader worker, which
#: may outlive the run: persistent workers) would otherwise share them, and an ``flock`` lives
#: until every copy is closed: the run's folder would stay locked after the run. Children
#: close their copies at once (``os.register_at_fork``); exec'ed processes never get them
#: (descriptors are opened close-on-exec).
_HELD: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextmanager
def _held(fd: int) -> Iterator[None]:
    """Register ``fd`` as a held lock for the block, then close it."""
    _HELD.add(fd)
    try:
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)


@contextmanager
def exclusive_lock(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory/.lock`` (created, with ``directory``, if
    missing) while the block runs; another process already holding it gets a one-line
    error naming its pid. The kernel drops the lock when the holder exits, even killed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, _FILE_MODE)
    with _held(fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DataPruneError(f"{directory} is in use by another {what} (pid {pid}); wait for it "
                                 "to finish or stop it, then try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


@contextmanager
def directory_lock(directory: str | os.PathLike) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``directory`` itself (created if missing) while the block
    runs, waiting for another holder; yields whether the lock is held. It puts no lock file
    into a user's folder (unlike :func:`exclusive_lock`), so it is for short critical sections
    in output folders: removing stale temps (:func:`remove_stale_temps`, only when locked) and
    then writing. Where a directory cannot be locked (some network file systems refuse
    ``flock`` on a read-only descriptor) it yields False rather than fail the write."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False
        return
    with _held(fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        yield locked


@contextmanager
def writing(paths: Iterable[str | os.PathLike]) -> Iterator[None]:
    """Around writing the files ``paths`` (atomically) into output folders: hold
    :func:`directory_lock` on their folders (in one order: no deadlock) and first remove the
    temps a killed earlier write of these names left there (:func:`remove_stale_temps`),
    where the folder could be locked."""
    paths = [Path(p) for p in paths]
    with ExitStack() as stack:
        locked = {d for d in sorted({p.parent.resolve() for p in paths}) if stack.enter_context(directory_lock(d))}
        for p in paths:
            if p.parent.resolve() in locked:
                remove_stale_temps(p.parent, [p.name])
        yield


def clear_for_force(path: str | os.PathLike, owned: Callable[[Path], bool], what: str,
                    keep: Iterable[str] = ()) -> None:
    """``--force``: delete everything in the directory ``path`` except the names in ``keep``,
    but only if it is empty (``keep`` aside) or ``owned(path)`` says dataprune made it (a
    ``what``); anything else is refused, so --force never deletes a user's own folder."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise DataPruneError(f"force=True: {path} is a file, not a {what}; expected a directory")
    keep = set(keep)
    entries = [e for e in path.iterdir() if e.name not in keep]
    if entries and not owned(path):
        names = ", ".join(sorted(e.name for e in entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise DataPruneError(f"force=True: refusing to delete {path}: it is not a {what} (it holds {names}); "
                             "delete it yourself or choose another output directory")
    for e in entries:
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


def remove_stale_temps(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temp files ``.<name>.XXXXXXXX.tmp`` that :func:`atomic_write_bytes` leaves
    in ``directory`` when killed mid-write, for each of ``names``; returns those removed.
    Call it only while no other process writes there (e.g. holding :func:`exclusive_lock` or
    :func:`directory_lock`)."""
    directory, removed = Path(directory), []
    if not directory.is_dir():
        return removed
    for name in names:
        for tmp in directory.glob(f".{glob.escape(name)}.*.tmp"):
            if len(tmp.name) == len(name) + 14 and not tmp.is_dir():  # "." name "." 8 chars ".tmp"
                tmp.unlink()
                removed.append(tmp)
    return removed


def check_writable(path: str | os.PathLike) -> None:
    """Raise a one-line error now, before any long work, if a file could not be written at
    ``path`` later: its folder cannot be created, is read-only, or ``path`` is a directory."""
    path = Path(path)
    if path.is_dir():
        raise DataPruneError(f"cannot write {path}: it is a directory; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DataPruneError(f"cannot write {path}: {e.strerror or e}") from None


def no_space_error(size: int | None, path: str | os.PathLike) -> DataPruneError:
    """The one-line error for a full disk: what was needed (when known), where, what is free."""
    path = Path(path)
    try:
        free = f"; {shutil.disk_usage(path.parent).free} bytes free"
    except OSError:
        free = ""
    need = f"needs {size} bytes at {path}" if size is not None else f"writing {path}"
    return DataPruneError(f"no space left on device ({need}{free}); free some space, then resume or rerun")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a temp file in the same folder, renamed into
    place with ``os.replace`` when the block ends without error (deleted otherwise; a full
    disk is a one-line :func:`no_space_error`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space_error(None, path) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    with atomic_output(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON to ``path``."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON from ``path`` with a one-line error on a missing or unparsable file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataPruneError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataPruneError(f"{path} is not valid JSON ({e})") from None


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    """Atomically write ``array`` as a ``.npy`` file."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
