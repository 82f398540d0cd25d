"""Lightning callbacks: record per-sample training dynamics from ``Trainer.fit``
(:class:`RecordDynamics`), and prune inside the same run (:class:`PruneAtCallback`).

``training_step`` returns ``{"loss": loss, "logits": logits}`` (optionally ``"features"`` for
the ``grand`` signal). Batches carry the targets and the sample index: ``(x, y, idx)`` from
:class:`dataprune.WithIndex` (targets second, the index last), ``(item, idx)`` from
``WithIndex`` over a dataset of dict items, or a dict batch; dict keys are ``target_key`` and
``index_key``. Works under ``strategy="ddp"`` like the :class:`~dataprune.Recorder` (every
rank records its own batches; rank 0 writes).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataPruneError
from ..record import DEFAULT_SIGNALS, Recorder, WithIndex
from ..train.prune_at import PruneAt
from . import import_framework
from .prune import InRunPrune, check_epochs, prune_sampler

pl = import_framework("lightning.pytorch", "lightning", __name__)


def _train_dataset(trainer: pl.Trainer) -> Any:
    return getattr(trainer.train_dataloader, "dataset", None)


class RecordDynamics(pl.Callback):
    """Record ``signals`` of every training batch into the dynamics store ``out``.

    The arguments are :class:`~dataprune.Recorder`'s, in its order, with N and C found from
    the run: ``RecordDynamics(out="runs/x/dynamics")``.

    Parameters
    ----------
    num_samples : N; default the length of the train dataloader's dataset.
    out : store directory to create (refused if it holds a store, unless ``force``); required.
    num_classes : C; default the width of the first batch's logits (B, C).
    signals, view, force : as in :class:`~dataprune.Recorder`.
    logits_key : key of the logits (B, C) in the dict ``training_step`` returns.
    target_key, index_key : keys of the targets (B,) and the sample indices (B,) in dict
        batches, or in the dict items of a dataset wrapped in :class:`~dataprune.WithIndex`.
    **recorder_kwargs : further :class:`~dataprune.Recorder` options (``labels``,
        ``nan_policy``, ``keep_history``, ``window``, ``meta``); ``epochs`` defaults to the
        trainer's ``max_epochs``.

    Resuming ``Trainer.fit(ckpt_path=...)`` continues the same store (single process) when
    the checkpoint was saved at the end of a training epoch (e.g. ``ModelCheckpoint`` with
    ``save_on_train_epoch_end=True``); a checkpoint saved mid-epoch, or a resume under
    several processes, is refused with a clear error.
    """

    def __init__(self, num_samples: int | None = None, out: str | os.PathLike | None = None,
                 num_classes: int | None = None, *, signals: Sequence[str] = DEFAULT_SIGNALS,
                 view: str = "train", force: bool = False, logits_key: str = "logits",
                 target_key: str = "target", index_key: str = "index", **recorder_kwargs: Any):
        if isinstance(num_samples, (str, os.PathLike)):  # the old order: RecordDynamics(out, num_samples, num_classes)
            warnings.warn("RecordDynamics(out, num_samples, num_classes) is deprecated; the store path is "
                          "the 2nd argument, as in Recorder: RecordDynamics(out=...)", DeprecationWarning,
                          stacklevel=2)
            num_samples, out = out, num_samples
        if out is None:
            raise DataPruneError("RecordDynamics needs out=, the store directory to create")
        self.out, self.num_samples, self.num_classes = out, num_samples, num_classes
        self.signals, self.view, self.force = list(signals), view, force
        self.logits_key, self.target_key, self.index_key = logits_key, target_key, index_key
        self.recorder_kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self._pending = False  # batches recorded since the last end_epoch
        self._resume: Mapping[str, Any] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is not None:
            return
        if self._resume is not None:
            self.recorder = self._resumed_recorder(trainer)
            return
        if self.num_samples is None:
            dataset = _train_dataset(trainer)
            try:
                self.num_samples = len(dataset)
            except TypeError:
                raise DataPruneError(
                    f"num_samples=None and the train dataloader's dataset ({type(dataset).__name__}) has "
                    "no length; expected RecordDynamics(..., num_samples=N)") from None
        self._epochs = trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None
        if self.num_classes is not None:  # else at the first batch, from the logits' width
            self._start(self.num_classes)

    def _start(self, num_classes: int) -> None:
        kwargs = {"epochs": self._epochs, **self.recorder_kwargs}
        self.recorder = Recorder(self.num_samples, self.out, num_classes, signals=self.signals,
                                 view=self.view, force=self.force, **kwargs)

    def _resumed_recorder(self, trainer: pl.Trainer) -> Recorder:
        state, epoch = self._resume, trainer.current_epoch
        if state["pending"]:
            raise DataPruneError(
                f"cannot resume recording dynamics into {self.out}: the checkpoint was saved "
                f"mid-epoch (epoch {epoch}, after some batches were recorded); resume from a "
                "checkpoint saved at the end of a training epoch "
                "(ModelCheckpoint(save_on_train_epoch_end=True)) or start over with force=True")
        if state["epochs"] != epoch:
            raise DataPruneError(
                f"cannot resume recording dynamics into {self.out}: the checkpoint's store had "
                f"{state['epochs']} epochs but training resumes at epoch {epoch}; expected equal")
        if trainer.world_size > 1:
            raise DataPruneError(
                f"cannot resume recording dynamics into {self.out} with {trainer.world_size} "
                "processes; expected 1 (resume single-process, or start over with force=True)")
        rec = Recorder.resume(self.out, epochs=state["epochs"], fingerprint=state["fingerprint"],
                              nan_policy=self.recorder_kwargs.get("nan_policy", "raise"))
        rec.load_state_dict(state["recorder"])
        return rec

    def _targets_and_indices(self, trainer: pl.Trainer, batch: Any) -> tuple[Any, Any]:
        """(targets (B,), sample indices (B,)) of a training batch; a one-line error naming
        what the batch lacks."""
        keys = (self.target_key, self.index_key)
        if isinstance(batch, Mapping):
            if all(k in batch for k in keys):
                return batch[self.target_key], batch[self.index_key]
            raise DataPruneError(f"RecordDynamics needs dict batches with keys {list(keys)} (target_key, "
                                 f"index_key); got keys {sorted(batch)}")
        n = len(batch) if isinstance(batch, Sequence) else None
        if n == 2 and isinstance(batch[0], Mapping):  # WithIndex over dict items: (item, idx)
            if self.target_key in batch[0]:
                return batch[0][self.target_key], batch[1]
            raise DataPruneError(f"RecordDynamics needs the dataset's dict items to hold target_key="
                                 f"{self.target_key!r}; got keys {sorted(batch[0])}")
        if n is not None and n >= 3:
            return batch[1], batch[-1]
        got = f"{type(batch).__name__} of length {n if n is not None else '?'}"
        if isinstance(_train_dataset(trainer), WithIndex):
            raise DataPruneError(f"RecordDynamics needs batches (x, y, idx); got {got}: the items of the "
                                 "dataset inside dp.WithIndex carry no target, expected items (x, y)")
        raise DataPruneError("RecordDynamics needs batches (x, y, idx) with the sample index last "
                             f"(wrap the dataset in dataprune.WithIndex) or dict batches; got {got}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not isinstance(outputs, Mapping) or self.logits_key not in outputs:
            got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise DataPruneError(f"RecordDynamics needs training_step to return a dict with "
                                 f"{self.logits_key!r} (B, C); got {got}")
        y, idx = self._targets_and_indices(trainer, batch)
        logits = outputs[self.logits_key]
        if self.recorder is None:
            self._start(logits.shape[-1])
        self.recorder.update(idx, logits, y, features=outputs.get("features"))
        self._pending = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is None:
            raise DataPruneError(f"epoch {trainer.current_epoch} ended before any training batch; "
                                 "nothing to record")
        self.recorder.end_epoch()
        self._pending = False

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints (from rank 0): what a resume must match."""
        rec = self.recorder
        if rec is None:
            return {}
        return {"epochs": rec.recordings, "pending": self._pending, "recorder": rec.state_dict(),
                "fingerprint": rec.fingerprint if rec.rank == 0 else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict) or None


class PruneAtCallback(RecordDynamics):
    """Prune inside one ``Trainer.fit``: record the first T epochs into ``out``, score them
    at the end of epoch T-1 with ``method`` and train the remaining epochs on the kept
    ``1 - prune_ratio`` of the samples.

    ``sampler`` is the :class:`~dataprune.PruneAt` (T = ``sampler.prune_at``) that the train
    dataloader draws from (``DataLoader(dp.WithIndex(ds), sampler=sampler, ...)``); the
    Trainer needs ``reload_dataloaders_every_n_epochs=1`` (Lightning counts an epoch's
    batches when it loads the dataloader, and from T there are fewer) and, with several
    devices, ``use_distributed_sampler=False`` (the sampler shards itself by rank, with the
    same seeded order on every rank). ``params`` are the method's (defaults as
    ``dataprune train --prune-at``: window J = min(10, T-1)); ``signals`` default to
    ``prob``, ``correct`` and what the method reads; other keywords go to
    :class:`RecordDynamics`. The keep indices (ascending) are :attr:`keep` after epoch T-1.

    Resuming ``Trainer.fit(ckpt_path=...)``: before T as :class:`RecordDynamics` (single
    process, end-of-epoch checkpoints); after T from any checkpoint, also under DDP (the keep
    is saved in the checkpoint).
    """

    def __init__(self, sampler: PruneAt, out: str | os.PathLike, *, method: str, prune_ratio: float,
                 params: Mapping[str, Any] | None = None, signals: Sequence[str] | None = None,
                 **record_kwargs: Any):
        self.plan = InRunPrune.checked(sampler, method, prune_ratio, params, signals)
        record_kwargs.setdefault("epochs", sampler.prune_at)  # the store's capacity: T epochs
        super().__init__(sampler.num_samples, out, signals=self.plan.signals, **record_kwargs)
        self.sampler = sampler
        self.keep: np.ndarray | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        s = self.sampler
        if (s.rank, s.world_size) != (trainer.global_rank, trainer.world_size):
            if s.world_size != 1:
                raise DataPruneError(f"the PruneAt sampler has rank {s.rank} of {s.world_size}, the trainer "
                                     f"rank {trainer.global_rank} of {trainer.world_size}; expected the same")
            # built before Lightning started the process group: shard by Lightning's ranks
            s.rank, s.world_size = trainer.global_rank, trainer.world_size

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_epochs(self.sampler, trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None, "max_epochs")
        every = trainer.reload_dataloaders_every_n_epochs
        if every != 1:
            raise DataPruneError(f"reload_dataloaders_every_n_epochs={every}; expected Trainer("
                                 "reload_dataloaders_every_n_epochs=1): Lightning counts an epoch's batches "
                                 "when it loads the train dataloader, and after pruning there are fewer")
        dataset = _train_dataset(trainer)
        if dataset is not None and len(dataset) != self.sampler.num_samples:
            raise DataPruneError(f"the train dataloader's dataset has {len(dataset)} samples, the PruneAt "
                                 f"sampler {self.sampler.num_samples}; expected the same N")
        if self.keep is None:  # a resume after T records nothing
            super().on_train_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dl = trainer.train_dataloader
        drawn = (getattr(dl, "sampler", None), getattr(getattr(dl, "batch_sampler", None), "sampler", None))
        if not any(s is self.sampler for s in drawn):
            raise DataPruneError(
                f"the train dataloader draws from {type(drawn[0]).__name__}, not the callback's PruneAt; "
                "expected DataLoader(..., sampler=sampler) and, with several devices, "
                "Trainer(use_distributed_sampler=False) (the sampler shards itself)")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.sampler.recording:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.sampler.recording:
            return
        super().on_train_epoch_end(trainer, pl_module)
        if self.recorder.recordings == self.sampler.prune_at:
            self.keep = prune_sampler(self.sampler, self.recorder, self.plan)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.keep is not None:
            state["keep"] = torch.from_numpy(self.keep)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        keep = state_dict.get("keep")
        if keep is None:
            super().load_state_dict(state_dict)
            return
        # before Lightning loads the train dataloader and counts its batches (every rank
        # loads the checkpoint)
        self.sampler.set_keep(keep.numpy())
        self.keep = self.sampler.keep
