"""Lightning callback: record per-sample training dynamics from ``Trainer.fit``.

``training_step`` returns ``{"loss": loss, "logits": logits}`` (optionally ``"features"`` for
the ``grand`` signal) and batches are ``(x, y, idx)``, e.g. from :class:`dataprune.WithIndex`
(targets second, the sample index last). Works under ``strategy="ddp"`` like the
:class:`~dataprune.Recorder` (every rank records its own batches; rank 0 writes).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataPruneError
from ..record import DEFAULT_SIGNALS, Recorder, _dist_rank_world
from . import import_framework

pl = import_framework("lightning.pytorch", "lightning", __name__)


class RecordDynamics(pl.Callback):
    """Record ``signals`` of every training batch into the dynamics store ``out``.

    Parameters
    ----------
    out : store directory to create (refused if it holds a store, unless ``force``).
    num_samples, num_classes : N and C of the training set.
    signals, view, force : as in :class:`~dataprune.Recorder`.
    logits_key : key of the logits (B, C) in the dict ``training_step`` returns.
    **recorder_kwargs : further :class:`~dataprune.Recorder` options (``labels``,
        ``nan_policy``, ``keep_history``, ``window``, ``meta``); ``epochs`` defaults to the
        trainer's ``max_epochs``.

    Resuming ``Trainer.fit(ckpt_path=...)`` continues the same store (single process) when
    the checkpoint was saved at the end of a training epoch (e.g. ``ModelCheckpoint`` with
    ``save_on_train_epoch_end=True``); a checkpoint saved mid-epoch, or a resume under
    several processes, is refused with a clear error.
    """

    def __init__(self, out: str | os.PathLike, num_samples: int, num_classes: int, *,
                 signals: Sequence[str] = DEFAULT_SIGNALS, view: str = "train",
                 force: bool = False, logits_key: str = "logits", **recorder_kwargs: Any):
        self.out, self.num_samples, self.num_classes = out, num_samples, num_classes
        self.signals, self.view, self.force = list(signals), view, force
        self.logits_key = logits_key
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
        kwargs = {"epochs": trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None,
                  **self.recorder_kwargs}
        self.recorder = Recorder(self.num_samples, self.out, self.num_classes, signals=self.signals,
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
        if _dist_rank_world()[1] > 1:
            raise DataPruneError(
                f"cannot resume recording dynamics into {self.out} with {trainer.world_size} "
                "processes; expected 1 (resume single-process, or start over with force=True)")
        rec = Recorder.resume(self.out, epochs=state["epochs"], fingerprint=state["fingerprint"],
                              nan_policy=self.recorder_kwargs.get("nan_policy", "raise"))
        rec.load_state_dict(state["recorder"])
        return rec

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not isinstance(outputs, Mapping) or self.logits_key not in outputs:
            got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise DataPruneError(f"RecordDynamics needs training_step to return a dict with "
                                 f"{self.logits_key!r} (B, C); got {got}")
        if not isinstance(batch, Sequence) or len(batch) < 3:
            raise DataPruneError("RecordDynamics needs batches (x, y, idx) with the sample index "
                                 "last (wrap the dataset in dataprune.WithIndex); got "
                                 f"{type(batch).__name__} of length {len(batch) if isinstance(batch, Sequence) else '?'}")
        self.recorder.update(batch[-1], outputs[self.logits_key], batch[1],
                             features=outputs.get("features"))
        self._pending = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
        return {"epochs": rec.epoch, "pending": self._pending, "recorder": rec.state_dict(),
                "fingerprint": rec.fingerprint if rec.rank == 0 else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict) or None
