"""The run folder of ``dataprune record`` and ``dataprune train`` (pruned, dynamic or budget
runs): its layout, lock, typed and versioned config, checkpoints with every RNG state and
their digests, per-epoch log, and what ``--force`` and ``--resume`` may do with it.

Layout of ``RUN/``::

    config.json     RunConfig (typed, versioned; its digest is in digests.json)
    digests.json    sha256 of config.json's settings, state.pt and checkpoint.pt
    log.jsonl       one JSON row per finished epoch
    state.pt        after every epoch: model, optimizer, schedule, counters, every RNG state
    checkpoint.pt   final weights (score runs)
    dynamics/       the store (score runs; the T scoring epochs of --prune-at)
    keep.txt/.json  the kept subset and its manifest (--prune-at)
    metrics.json    a train run's results, once finished
    features.npy, final_logits.npy   a score run's final outputs

A folder holding anything else is never written into, ``--force`` or not, and ``--force``
deletes only these names.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pickle
import platform
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .. import __version__
from ..errors import DataPruneError
from ..history import HistoryMode
from ..fileio import (LOCK_FILE, atomic_output, atomic_write_json, atomic_write_text, exclusive_lock, read_json,
                      remove_stale_temps)
from ..integrity import file_bytes_digest
from ..run_outputs import OUTPUT_FILES
from .loop import VIEWS, TrainConfig
from .plan import PrunePlan
from .schedule import check_budget

CONFIG_FILE, DIGESTS_FILE, LOG_FILE = "config.json", "digests.json", "log.jsonl"
STATE_FILE, CHECKPOINT_FILE, STORE_DIR = "state.pt", "checkpoint.pt", "dynamics"
KEEP_FILE, METRICS_FILE = "keep.txt", "metrics.json"
#: every file a run folder may hold (``--force`` deletes these and ``dynamics/``, nothing else)
RUN_FILES = (CONFIG_FILE, DIGESTS_FILE, LOG_FILE, STATE_FILE, CHECKPOINT_FILE, KEEP_FILE, "keep.json",
             METRICS_FILE, *OUTPUT_FILES)
#: store files written with a temp name and a rename (crash leftovers removed on start)
STORE_FILES = ("meta.json", "file_list.txt")
#: config.json format; older folders are refused by --resume
CONFIG_VERSION = 2
STATE_FORMAT, STATE_VERSION = "dataprune-run-state", 2
#: the command line that makes each kind of run (config.json's "command"; a "score" run is
#: made by `dataprune record`, called `dataprune score` before)
COMMAND_LINE = {"score": "dataprune record", "train": "dataprune train"}
#: the person-readable name of each command's run
WHAT = {kind: f"`{line}` run" for kind, line in COMMAND_LINE.items()}
#: config.json entries that change while a run goes on (outside its digest)
VOLATILE = ("finished", "train_seconds")


def _msg(value: Any) -> str:
    return " ".join(repr(value).split())[:60]


# --- the typed config ---------------------------------------------------------------------
@dataclass
class RunConfig:
    """Everything a run needs to be resumed, as ``config.json`` holds it.

    ``score`` runs (``dataprune record``) set ``record_view``, ``signals``, ``keep_history`` (its
    stored spelling, see :attr:`~dataprune.history.HistoryMode.stored`; and ``window`` when it is
    ``"none"``); ``train`` runs set ``plan`` and/or ``budget`` (exclusive).
    """

    command: str
    dataset: str
    data_dir: str
    limit: int | None
    image_size: int | None
    num_samples: int
    num_classes: int
    train_labels_digest: str
    model: str
    train: TrainConfig
    threads: int
    workers: int = 0
    world_size: int = 1
    record_view: str | None = None
    signals: list[str] | None = None
    keep_history: str | None = None
    window: int | None = None
    plan: PrunePlan | None = None
    budget: float | None = None
    version: int = CONFIG_VERSION
    dataprune: str = __version__
    torch: str = torch.__version__
    python: str = platform.python_version()
    finished: bool = False
    train_seconds: float | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self, where: str = "config") -> None:
        """One-line error on a contradiction between fields."""
        c = self.command
        score_only = {"record_view": self.record_view, "signals": self.signals, "keep_history": self.keep_history}
        train_only = {"plan": self.plan, "budget": self.budget}
        if c not in WHAT:
            raise DataPruneError(f"{where} has command={_msg(c)}; expected one of {sorted(WHAT)}")
        wrong = [k for k, v in (train_only if c == "score" else score_only).items() if v is not None]
        if c == "train" and self.window is not None:
            wrong.append("window")
        if wrong:
            raise DataPruneError(f"{where} sets {', '.join(wrong)}, which a {WHAT[c]} does not have")
        for key in ("num_samples", "num_classes", "threads", "world_size", "version"):
            if getattr(self, key) < 1:
                raise DataPruneError(f"{where} has {key}={getattr(self, key)}; expected at least 1")
        if self.version != CONFIG_VERSION:
            raise DataPruneError(f"{where} has version={self.version}; this dataprune reads version "
                                 f"{CONFIG_VERSION} (start the run again with --force)")
        if c == "score":
            check_score_settings(self.train, self.record_view, self.signals, self.keep_history, self.window, where)
        else:
            check_train_settings(self.train, self.plan, self.budget, where)

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` object (unset optional fields left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["train"] = self.train.to_dict()
        out["plan"] = self.plan.to_dict() if self.plan is not None else None
        return {k: v for k, v in out.items() if v is not None or k in ("limit", "image_size")}

    def digest(self) -> str:
        """sha256 of the settings (``config.json`` without :data:`VOLATILE` entries)."""
        return config_digest(self.to_json())

    @classmethod
    def from_json(cls, path: Path, obj: Any) -> "RunConfig":
        """Parse ``config.json`` (read from ``path``): one-line errors on a missing, unknown,
        mistyped or contradictory field."""
        if not isinstance(obj, dict) or obj.get("command") not in WHAT:
            raise DataPruneError(f"{path} does not describe a dataprune run (expected 'command': "
                                 f"{' or '.join(map(repr, WHAT))})")
        if "version" not in obj:
            raise DataPruneError(f"{path} has no 'version': it was written by an older dataprune, whose runs "
                                 "cannot be resumed or checked by this one (start the run again with --force)")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - set(fields))
        if unknown:
            raise DataPruneError(f"{path} has unknown field(s) {unknown}; expected only {sorted(fields)}")
        for name, f in fields.items():
            if name not in obj:
                if f.default is dataclasses.MISSING and name not in ("image_size",):
                    raise DataPruneError(f"{path} lacks the entry {name!r}; it is not a complete run config")
                continue
            kinds = FIELD_TYPES[name]
            value = obj[name]
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise DataPruneError(f"{path} has {name}={_msg(value)}; expected {names}")
        if any(not isinstance(s, str) for s in obj.get("signals") or []):
            raise DataPruneError(f"{path} has signals={_msg(obj['signals'])}; expected a list of names")
        values = {**obj, "image_size": obj.get("image_size"), "train": _dataclass_from(path, TrainConfig,
                                                                                       obj["train"], "train")}
        if obj.get("plan") is not None:
            values["plan"] = _dataclass_from(path, PrunePlan, obj["plan"], "plan")
        try:
            return cls(**values)
        except DataPruneError as e:
            raise DataPruneError(f"{path}: {e}") from None


def config_digest(obj: dict[str, Any]) -> str:
    """sha256 of a ``config.json`` object's settings (all but :data:`VOLATILE` entries)."""
    settings = {k: v for k, v in obj.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def check_score_settings(cfg: TrainConfig, record_view: Any, signals: Any, keep_history: Any, window: Any,
                         where: str = "score") -> None:
    """One-line error on settings a scoring run cannot have (e.g. a Dyn-Unc window that
    ``--epochs`` can never fill with ``keep_history="window"``, stored as ``"none"``)."""
    if record_view not in VIEWS:
        raise DataPruneError(f"{where} has record_view={_msg(record_view)}; expected one of {VIEWS}")
    if not signals:
        raise DataPruneError(f"{where} has signals={_msg(signals)}; expected a non-empty list")
    if keep_history not in HistoryMode.stored_names():
        raise DataPruneError(f"{where} has keep_history={_msg(keep_history)}; expected 'full' or 'none'")
    if HistoryMode.from_stored(keep_history).per_epoch != (window is None):
        raise DataPruneError(f"{where} has keep_history={keep_history!r} and window={window}; "
                             "expected a window exactly when keep_history is 'none'")
    ok = isinstance(window, int) and not isinstance(window, bool) and 2 <= window < cfg.epochs
    if window is not None and not ok:  # Dyn-Unc's K-J windows must be at least one
        raise DataPruneError(f"--window {window} with --keep-history window and --epochs {cfg.epochs}; expected "
                             f"2 <= J < {cfg.epochs} (such a run scores only dyn-unc with this window, which "
                             f"needs at least J+1 epochs)")


def check_train_settings(cfg: TrainConfig, plan: PrunePlan | None, budget: Any, where: str = "train") -> None:
    """One-line error on settings a training run cannot have (a budget with pruning, ...)."""
    if budget is not None:
        check_budget(budget)
        if plan is not None and plan.prunes:
            raise DataPruneError(f"{where} sets budget={budget} and a pruning plan; expected one "
                                 "of them (--budget trains on all data, unpruned)")
    if plan is not None:
        plan.resolved(cfg.epochs, cfg.seed)


FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "command": (str,), "dataset": (str,), "data_dir": (str,), "limit": (int, type(None)),
    "image_size": (int, type(None)), "num_samples": (int,), "num_classes": (int,),
    "train_labels_digest": (str,), "model": (str,), "train": (dict,), "threads": (int,), "workers": (int,),
    "world_size": (int,), "record_view": (str, type(None)), "signals": (list, type(None)),
    "keep_history": (str, type(None)), "window": (int, type(None)), "plan": (dict, type(None)),
    "budget": (int, float, type(None)), "version": (int,), "dataprune": (str,), "torch": (str,),
    "python": (str,), "finished": (bool,), "train_seconds": (int, float, type(None))}


def _dataclass_from(path: Path, cls: type, obj: dict[str, Any], where: str) -> Any:
    """``cls(**obj)`` with unknown keys refused and each value typed like its default."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise DataPruneError(f"{path} has unknown training setting(s) {unknown} under {where!r}; "
                             f"expected only {sorted(known)}")
    for name, value in obj.items():
        default = known[name].default
        if default is dataclasses.MISSING:
            default = known[name].default_factory()  # type: ignore[misc]
        kinds: tuple[type, ...] = ((int, float) if isinstance(default, float) else
                                   (type(None), str, int) if default is None else (type(default),))
        if (isinstance(value, bool) and not isinstance(default, bool)) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds if k is not type(None))
            raise DataPruneError(f"{path} has {name}={_msg(value)}; expected {names} (under {where!r})")
    try:
        return cls(**obj)
    except DataPruneError as e:
        raise DataPruneError(f"{path} under {where!r}: {e}") from None


# --- checkpoints ------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """The sha256 a run records of its checkpoints (``digests.json``)."""
    return file_bytes_digest(path, new=hashlib.sha256)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint or training state written by dataprune (tensors and primitives only,
    ``torch.load(weights_only=True)``), with a one-line error on a missing or corrupted file."""
    path = Path(path)
    if not path.is_file():
        raise DataPruneError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise DataPruneError(f"checkpoint {path} is truncated or corrupted ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise DataPruneError(f"checkpoint {path} is not a dataprune checkpoint (no 'model' entry)")
    return obj


def rng_states() -> dict[str, Any]:
    """Every RNG state a run draws from: torch CPU, CUDA (when available), NumPy's global
    generator and Python's ``random`` (as tensors and primitives, for ``weights_only`` loads)."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "numpy_pos": int(np_state["state"]["pos"]), "numpy_has_gauss": int(np_state["has_gauss"]),
            "numpy_gauss": float(np_state["gauss"]), "python_version": int(py_version),
            "python_state": torch.tensor(py_state, dtype=torch.int64),
            "python_gauss": py_gauss if py_gauss is None else float(py_gauss)}


def set_rng_states(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": state["numpy_pos"]},
                         "has_gauss": state["numpy_has_gauss"], "gauss": state["numpy_gauss"]})
    random.setstate((state["python_version"], tuple(int(x) for x in state["python_state"].tolist()),
                     state["python_gauss"]))


#: state.pt entries every run writes, with their types
STATE_TYPES: dict[str, Any] = {"epoch": int, "store_epochs": int, "store_fingerprint": str,
                               "seconds": (int, float), "model": dict, "optimizer": dict, "schedule": dict,
                               "rng": dict, "config_digest": str, "sample_passes": int,
                               "optimizer_steps": int, "samples_per_epoch": list}


def check_entries(path: Path, obj: dict[str, Any], types: dict[str, Any], what: str) -> None:
    """One-line error unless every key of ``types`` is in ``obj`` with that type (no bools)."""
    for key, kind in types.items():
        if key not in obj:
            raise DataPruneError(f"{path} lacks the entry {key!r}; it is not a complete {what}")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise DataPruneError(f"{path} has {key}={_msg(value)}; expected {names}")


# --- the folder -------------------------------------------------------------------------------
def run_command(path: Path) -> str | None:
    """The command whose run ``path`` holds (``config.json``'s ``command``), else None."""
    try:
        config = read_json(Path(path) / CONFIG_FILE)
    except (DataPruneError, OSError):
        return None
    command = config.get("command") if isinstance(config, dict) else None
    return command if command in WHAT else None


def inside_run(path: str | os.PathLike) -> Path | None:
    """The run folder or store that ``path`` (a file to write) lies in, if any."""
    p = Path(path).resolve().parent
    for folder in (p, *p.parents):
        if run_command(folder) is not None or _is_store(folder):
            return folder
    return None


def _is_store(folder: Path) -> bool:
    try:
        meta = read_json(folder / "meta.json") if (folder / "meta.json").is_file() else None
    except (DataPruneError, OSError):
        return False
    return isinstance(meta, dict) and "num_samples" in meta and "signals" in meta


def _foreign(path: Path) -> list[str]:
    """Names in ``path``, a folder that holds no dataprune run, other than a lock and the temp
    files a run killed before its config.json was written leaves (empty: absent or empty)."""
    if not path.is_dir():
        return []
    return sorted(e.name for e in path.iterdir() if e.name != LOCK_FILE and not _is_temp(e.name))


def _is_temp(name: str) -> bool:
    return any(name.startswith(f".{own}.") and name.endswith(".tmp") and len(name) == len(own) + 14
               for own in RUN_FILES)


class RunDir:
    """A run folder (see the module docstring); create with :meth:`claim`, reopen with :meth:`reopen`."""

    def __init__(self, path: str | os.PathLike, command: str) -> None:
        self.path, self.command = Path(path), command
        self.user = f"`{COMMAND_LINE[command]}` process"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def what(self) -> str:
        return WHAT[self.command]

    # --- start / reopen ---------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def claim(cls, path: str | os.PathLike, command: str, *, force: bool = False) -> Iterator["RunDir"]:
        """Lock ``path`` for a new run of ``command`` (created if missing). Refused: a file; a
        non-empty folder that is not a dataprune run (``--force`` or not: never a user's own
        files); another command's run; an existing run of this command unless ``force``, which
        then deletes only :data:`RUN_FILES` and ``dynamics/`` (a user's own file stays)."""
        run = cls(path, command)
        run._refuse_to_claim(force)  # before the lock: a refused folder gets no .lock
        with exclusive_lock(run.path, run.user):
            run._refuse_to_claim(force)  # again, now that no other process can change it
            if force:  # config.json last: a kill half-way leaves a folder still known as a run
                if (run / STORE_DIR).is_dir() and not (run / STORE_DIR).is_symlink():
                    shutil.rmtree(run / STORE_DIR)
                else:
                    (run / STORE_DIR).unlink(missing_ok=True)
                for name in [*RUN_FILES[1:], CONFIG_FILE]:
                    (run / name).unlink(missing_ok=True)
            yield run

    def _refuse_to_claim(self, force: bool) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise DataPruneError(f"{p} is a file; expected a folder for the {self.what}")
        other = run_command(p)
        foreign = _foreign(p)
        if other is None and foreign:
            names = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise DataPruneError(f"{p} exists and is not a dataprune run folder (it holds {names}); refusing to "
                                 "write into it, --force or not: choose a new or empty folder")
        if other is not None and other != self.command:
            raise DataPruneError(f"{p} holds a {WHAT[other]}; --out of `{COMMAND_LINE[self.command]}` must be a "
                                 "new or empty folder, or one of its own runs (with --force)")
        if other is not None and not force:
            finished = read_json(p / CONFIG_FILE).get("finished")
            hint = ("pass --force to overwrite it" if finished else
                    f"continue it with `{COMMAND_LINE[self.command]} --resume {p}`, or pass --force to start over")
            raise DataPruneError(f"{p} already holds {'a finished' if finished else 'an unfinished'} "
                                 f"{self.what}; {hint}")

    def start(self, config: RunConfig) -> None:
        """Write a new run's ``config.json`` and digests; start its log afresh."""
        self.prepare(0)
        atomic_write_json(self / CONFIG_FILE, config.to_json())
        atomic_write_json(self / DIGESTS_FILE, {CONFIG_FILE: [config.digest()]})

    @classmethod
    @contextlib.contextmanager
    def reopen(cls, path: str | os.PathLike, command: str) -> Iterator[tuple["RunDir", RunConfig]]:
        """Lock the existing run of ``command`` at ``path`` and read its config, checked against
        its digest (an edited ``config.json`` is refused)."""
        run = cls(path, command)
        if not (run / CONFIG_FILE).is_file():
            raise DataPruneError(f"no {run.what} to resume at {run.path} ({CONFIG_FILE} missing); "
                                 f"start one with `{COMMAND_LINE[command]} --out {run.path}`")
        with exclusive_lock(run.path, run.user):
            yield run, run.read_config()

    def read_config(self) -> RunConfig:
        path = self / CONFIG_FILE
        obj = read_json(path)
        if isinstance(obj, dict) and obj.get("command") in WHAT and obj["command"] != self.command:
            raise DataPruneError(f"{path} describes a {WHAT[obj['command']]}, not a {self.what}")
        config = RunConfig.from_json(path, obj)
        recorded = self.digests().get(CONFIG_FILE)
        if recorded is None:
            raise DataPruneError(f"{self / DIGESTS_FILE} records no digest of {path} (was the run killed while "
                                 "starting, or the file deleted?); start the run again with --force")
        if config.digest() not in recorded:
            raise DataPruneError(f"{path} was edited after the run started (its settings no longer match "
                                 f"{self / DIGESTS_FILE}); restore it, or start the run again with --force")
        return config

    def prepare(self, log_rows: int) -> None:
        """Remove temp files a crash left, and cut ``log.jsonl`` to its first ``log_rows`` rows
        (0: a fresh run starts its own log). A symbolic link there is refused, never followed."""
        remove_stale_temps(self.path, RUN_FILES)
        remove_stale_temps(self / STORE_DIR, STORE_FILES)
        path = self / LOG_FILE
        if path.is_symlink():
            raise DataPruneError(f"{path} is a symbolic link; refusing to write the run's log through it "
                                 "(remove it)")
        if path.exists():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if len(lines) > log_rows:  # an unfinished last line counts as one
                atomic_write_text(path, "".join(line + "\n" for line in lines[:log_rows]))
        self.read_log(log_rows)  # the rows kept must be readable before any training

    # --- log ----------------------------------------------------------------------------------
    def append_log(self, row: dict[str, Any]) -> None:
        fd = os.open(self / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with open(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def read_log(self, lines: int | None = None) -> list[dict[str, Any]]:
        return read_log(self / LOG_FILE, lines)

    # --- digests, state, checkpoint -------------------------------------------------------
    def digests(self) -> dict[str, list[str]]:
        path = self / DIGESTS_FILE
        if not path.exists():
            return {}
        obj = read_json(path)
        if not isinstance(obj, dict) or not all(isinstance(v, list) for v in obj.values()):
            raise DataPruneError(f"{path} is not a dataprune digest record")
        return obj

    def save_torch(self, name: str, obj: dict[str, Any]) -> None:
        """``torch.save(obj)`` to ``name`` through a temp file and a rename; its sha256 goes to
        digests.json before the rename (with the previous file's, valid until then)."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        with atomic_output(self / name) as f:
            f.write(data)
            digests = self.digests()
            digests[name] = [digest] + [d for d in digests.get(name, [])[:1] if d != digest]
            atomic_write_json(self / DIGESTS_FILE, digests)

    def verify(self, name: str) -> None:
        """One-line error unless ``name`` matches its recorded digest."""
        path = self / name
        recorded = self.digests().get(name)
        if not recorded:
            raise DataPruneError(f"{self / DIGESTS_FILE} records no digest of {name}; {path} cannot be trusted "
                                 "(start the run again with --force)")
        if not path.is_file():
            raise DataPruneError(f"{path} is missing, though {self / DIGESTS_FILE} records it")
        if sha256_file(path) not in recorded:
            raise DataPruneError(f"{path} does not match its sha256 in {self / DIGESTS_FILE}: the file was "
                                 "changed or corrupted (restore it, or start the run again with --force)")

    def save_state(self, config: RunConfig, state: dict[str, Any]) -> None:
        """Checkpoint everything the next epoch depends on, with every RNG state."""
        self.save_torch(STATE_FILE, {"format": STATE_FORMAT, "version": STATE_VERSION,
                                     "config_digest": config.digest(), "rng": rng_states(), **state})

    def has_state(self) -> bool:
        return (self / STATE_FILE).exists() or STATE_FILE in self.digests()

    def load_state(self, config: RunConfig) -> dict[str, Any]:
        """``state.pt``, verified: its digest, format, entries and the config it belongs to."""
        path = self / STATE_FILE
        if not path.exists():
            raise DataPruneError(f"{path} is missing, though the run wrote it (digests.json records it); "
                                 "--resume cannot continue without it and deletes nothing: restore it, "
                                 f"or start the run again with --force")
        self.verify(STATE_FILE)
        state = load_checkpoint(path)
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise DataPruneError(f"{path} is not a dataprune run state of version {STATE_VERSION}")
        check_entries(path, state, STATE_TYPES, "run state")
        if state["config_digest"] != config.digest():
            raise DataPruneError(f"{path} belongs to other settings than {self / CONFIG_FILE}; was config.json "
                                 "edited? (restore it, or start the run again with --force)")
        return state

    def finish(self, config: RunConfig, **volatile: Any) -> RunConfig:
        """Mark the run finished in ``config.json`` (with ``train_seconds`` etc.)."""
        done = dataclasses.replace(config, finished=True, **volatile)
        atomic_write_json(self / CONFIG_FILE, done.to_json())
        return done


def read_log(path: Path, lines: int | None = None) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``log.jsonl`` (the first ``lines`` of them), with a
    one-line error on a row that is not a JSON object."""
    if not path.exists():
        return []
    rows = []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(text[:lines], 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise DataPruneError(f"{path} line {i} is {line[:40]!r}; expected one JSON object per "
                                 "finished epoch (repair or delete the file)")
        rows.append(row)
    return rows
