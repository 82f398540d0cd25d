"""Hugging Face ``Trainer``: record per-sample training dynamics from ``Trainer.train()``.

HF callbacks never see the logits, so recording hooks ``compute_loss`` (the supported
override point) through :class:`RecordDynamicsMixin`; :func:`with_index` adds the sample
index column, which the mixin keeps through ``remove_unused_columns`` and removes before
the model's forward::

    trainer = RecordDynamicsTrainer(model=model, args=args, train_dataset=with_index(train),
                                    out="runs/hf/dynamics")
    trainer.train()

Works under ``torchrun`` (DDP) like the :class:`~dataprune.Recorder`: every rank records its
own batches, rank 0 writes. :class:`PruneAtTrainer` (:class:`PruneAtMixin`) also prunes inside
the run, around a :class:`~dataprune.PruneAt` train sampler.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataPruneError
from ..fileio import atomic_write_json, read_json
from ..record import DEFAULT_SIGNALS, Recorder
from ..train.prune_at import PruneAt
from . import import_framework
from .prune import InRunPrune, check_epochs, prune_sampler

transformers = import_framework("transformers", "transformers", __name__)
import_framework("accelerate", "transformers", __name__)  # the Trainer's own dependency
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint  # noqa: E402

#: name of the sample index column :func:`with_index` adds
INDEX_KEY = "sample_index"


class _WithIndexDict(torch.utils.data.Dataset):
    """Items ``{**base[i], INDEX_KEY: i}`` of a dataset whose items are dicts."""

    def __init__(self, base: Sequence[Mapping[str, Any]]):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], INDEX_KEY: i}


def with_index(dataset: Any) -> Any:
    """``dataset`` with a ``sample_index`` column 0..N-1: a ``datasets.Dataset`` gets the
    column (``add_column``); any other dataset of dict items is wrapped."""
    if hasattr(dataset, "add_column"):
        return dataset.add_column(INDEX_KEY, list(range(len(dataset))))
    return _WithIndexDict(dataset)


#: file the mixins add to each checkpoint folder: what resuming the recording must match
CHECKPOINT_STATE = "dataprune_dynamics.json"


class _EndEpoch(transformers.TrainerCallback):
    def __init__(self, trainer: "RecordDynamicsMixin"):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._begin_dynamics()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._end_dynamics_epoch(state)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.trainer.dynamics_recorder is not None:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            atomic_write_json(folder / CHECKPOINT_STATE, self.trainer._dynamics_state())


class RecordDynamicsMixin:
    """Mix into a ``transformers.Trainer`` subclass (before it) to record dynamics.

    Keyword arguments, the rest going to the Trainer:
    ``out`` (store directory, the keyword of :class:`~dataprune.Recorder`; ``dynamics_out`` is
    its deprecated spelling), ``num_classes`` (default ``model.config.num_labels``),
    ``signals``, ``view``, ``force`` and any other :class:`~dataprune.Recorder` option in
    ``recorder_kwargs``. N is ``len(train_dataset)``, whose items need the
    ``sample_index`` column (:func:`with_index`) and ``labels``. The recorder is
    ``self.dynamics_recorder``.

    ``train(resume_from_checkpoint=...)`` continues the store from a checkpoint saved at the
    end of an epoch (``save_strategy="epoch"``; each checkpoint folder gets a
    ``dataprune_dynamics.json``), single process; a mid-epoch checkpoint, several processes
    or the ``tdds_d`` signal (its state is not in the checkpoint) are refused.
    """

    def __init__(self, *args: Any, out: str | os.PathLike | None = None, num_classes: int | None = None,
                 signals: Sequence[str] = DEFAULT_SIGNALS, view: str = "train", force: bool = False,
                 recorder_kwargs: Mapping[str, Any] | None = None, **kwargs: Any):
        if "dynamics_out" in kwargs:  # the old keyword
            warnings.warn("dynamics_out= is deprecated; the store path is out=, as in Recorder",
                          DeprecationWarning, stacklevel=2)
            if out is not None:
                raise DataPruneError("both out= and dynamics_out= given; expected out= only")
            out = kwargs.pop("dynamics_out")
        if out is None:
            raise DataPruneError(f"{type(self).__name__} needs out=, the store directory to create")
        super().__init__(*args, **kwargs)
        self.dynamics_out = out
        self._recorder_options = dict(num_classes=num_classes, signals=list(signals), view=view,
                                      force=force, **(recorder_kwargs or {}))
        self.dynamics_recorder: Recorder | None = None
        self._pending = False  # batches recorded since the last end_epoch
        self.add_callback(_EndEpoch(self))

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if resume_from_checkpoint:
            if resume_from_checkpoint is True:  # as the Trainer finds it
                resume_from_checkpoint = get_last_checkpoint(self.args.output_dir) or True
            self.dynamics_recorder = self._resumed_recorder(resume_from_checkpoint)
        else:
            opts = dict(self._recorder_options)
            num_classes = opts.pop("num_classes") or getattr(getattr(self.model, "config", None),
                                                             "num_labels", None)
            if num_classes is None:
                raise DataPruneError("num_classes=None and the model has no config.num_labels; "
                                     "expected RecordDynamicsTrainer(..., num_classes=C)")
            opts.setdefault("epochs", int(self.args.num_train_epochs))
            self.dynamics_recorder = Recorder(len(self.train_dataset), self.dynamics_out, num_classes, **opts)
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            self.dynamics_recorder.close()

    def _checkpoint_state(self, checkpoint: str | os.PathLike | bool) -> dict[str, Any]:
        """The checkpoint's :data:`CHECKPOINT_STATE`; a one-line error when it cannot be resumed."""
        what = f"cannot resume recording dynamics into {self.dynamics_out} from {checkpoint}"
        if checkpoint is True:
            raise DataPruneError(f"{what}: no checkpoint in {self.args.output_dir}; expected a "
                                 "checkpoint-<step> folder (save_strategy='epoch')")
        if self.args.world_size > 1:
            raise DataPruneError(f"{what} with {self.args.world_size} processes; expected 1 (resume "
                                 "single-process, or start over with force=True)")
        if "tdds_d" in self._recorder_options["signals"]:
            raise DataPruneError(f"{what}: the tdds_d signal carries state a Trainer checkpoint does not "
                                 "hold; expected signals without tdds_d, or start over with force=True")
        if not (Path(checkpoint) / CHECKPOINT_STATE).is_file():
            raise DataPruneError(f"{what}: it holds no {CHECKPOINT_STATE}; expected a checkpoint saved "
                                 "while recording, by this Trainer class")
        state = read_json(Path(checkpoint) / CHECKPOINT_STATE)
        if state["pending"]:
            raise DataPruneError(f"{what}: it was saved mid-epoch, after some batches were recorded; "
                                 "expected a checkpoint saved at the end of an epoch (save_strategy='epoch')")
        return state

    def _resumed_recorder(self, checkpoint: str | os.PathLike | bool) -> Recorder:
        state = self._checkpoint_state(checkpoint)
        return Recorder.resume(self.dynamics_out, epochs=state["epochs"], fingerprint=state["fingerprint"],
                               nan_policy=self._recorder_options.get("nan_policy", "raise"))

    def _dynamics_state(self) -> dict[str, Any]:
        """What :data:`CHECKPOINT_STATE` holds (rank 0)."""
        rec = self.dynamics_recorder
        return {"epochs": rec.recordings, "pending": self._pending, "fingerprint": rec.fingerprint}

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()  # keep the index through remove_unused_columns
        if INDEX_KEY not in self._signature_columns:
            self._signature_columns.append(INDEX_KEY)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any],
                     return_outputs: bool = False, num_items_in_batch: Any = None):
        idx = inputs.pop(INDEX_KEY, None)
        if not model.training or not self._recording():  # evaluation / prediction: nothing to record
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if idx is None or "labels" not in inputs:
            raise DataPruneError(f"training batch has keys {sorted(inputs)}; expected "
                                 f"{INDEX_KEY!r} (wrap train_dataset in with_index) and 'labels'")
        labels = inputs["labels"]
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[1]
        self.dynamics_recorder.update(idx, logits, labels)
        self._pending = True
        return (loss, outputs) if return_outputs else loss

    def _recording(self) -> bool:
        """Whether this training batch is recorded."""
        return True

    def _begin_dynamics(self) -> None:
        """Called when training begins (every rank)."""

    def _end_dynamics_epoch(self, state: Any) -> None:
        """Called at the end of each training epoch (every rank; ``state`` the TrainerState)."""
        self.dynamics_recorder.end_epoch()
        self._pending = False


class RecordDynamicsTrainer(RecordDynamicsMixin, transformers.Trainer):
    """``transformers.Trainer`` that records dynamics (see :class:`RecordDynamicsMixin`)."""


class PruneAtMixin(RecordDynamicsMixin):
    """Mix into a ``transformers.Trainer`` subclass (before it) to prune inside one
    ``train()``: record the first ``prune_at`` (T) epochs into ``out``, score them at
    the end of epoch T-1 with ``method`` and train the remaining epochs on the kept
    ``1 - prune_ratio`` of the samples.

    The Trainer's train sampler becomes a :class:`~dataprune.PruneAt` (``self.prune_sampler``,
    seeded by ``args.data_seed`` or ``args.seed``); the keep indices (ascending) are
    ``self.prune_keep`` after epoch T-1. ``method_params`` default as in ``dataprune train
    --prune-at`` (window J = min(10, T-1)); ``signals`` to ``prob``, ``correct`` and what the
    method reads; the other keywords are :class:`RecordDynamicsMixin`'s.

    ``train(resume_from_checkpoint=...)`` works as in :class:`RecordDynamicsMixin` from a
    checkpoint saved at the end of an epoch up to T (at T the keep is scored again from the
    same store); later checkpoints are refused: the Trainer finds the epoch to resume from
    ``global_step`` and the steps of a full epoch, which pruned epochs do not have. Also
    refused: ``gradient_accumulation_steps`` > 1 (the Trainer sizes the last accumulation of
    an epoch for the full set) and ``max_steps``.
    """

    def __init__(self, *args: Any, prune_at: int, method: str, prune_ratio: float,
                 method_params: Mapping[str, Any] | None = None, signals: Sequence[str] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.train_dataset is None:
            raise DataPruneError("train_dataset=None; expected the dataset to prune, with_index(...)")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # rank 0 of 1 on every rank: accelerate hands each rank its share of the sampler's
        # batches, so every rank iterates the whole epoch (the same seeded order everywhere)
        self.prune_sampler = PruneAt(len(self.train_dataset), prune_at, seed=seed, rank=0, world_size=1)
        self.prune_plan = InRunPrune.checked(self.prune_sampler, method, prune_ratio, method_params, signals)
        self._recorder_options.update(signals=self.prune_plan.signals, epochs=prune_at)
        self.prune_keep: np.ndarray | None = None
        self._pruned_at_step: int | None = None  # the Trainer's global_step when it pruned

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        a = self.args
        if a.gradient_accumulation_steps != 1:
            raise DataPruneError(f"gradient_accumulation_steps={a.gradient_accumulation_steps} while pruning "
                                 "inside the run; expected 1 (the Trainer sizes an epoch's last accumulation "
                                 "for the full set)")
        if a.max_steps > 0:
            raise DataPruneError(f"max_steps={a.max_steps} while pruning inside the run; expected "
                                 "num_train_epochs (the Trainer counts steps of full epochs)")
        check_epochs(self.prune_sampler, math.ceil(a.num_train_epochs), "num_train_epochs")
        if len(self.train_dataset) != self.prune_sampler.num_samples:
            raise DataPruneError(f"train_dataset has {len(self.train_dataset)} samples, the PruneAt sampler "
                                 f"{self.prune_sampler.num_samples}; expected the same N")
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _resumed_recorder(self, checkpoint: str | os.PathLike | bool) -> Recorder:
        pruned_at = self._checkpoint_state(checkpoint).get("pruned_at_step")
        if pruned_at is not None:
            step = read_json(Path(checkpoint) / "trainer_state.json")["global_step"]
            if step != pruned_at:
                raise DataPruneError(
                    f"cannot resume from {checkpoint}: it was saved at step {step}, after pruning at step "
                    f"{pruned_at}; the Trainer would find the epoch to resume from the steps of a full "
                    "epoch. Expected a checkpoint saved at or before the end of epoch prune_at - 1")
        self._pruned_at_step = pruned_at  # if set, _begin_dynamics scores the same store again
        return super()._resumed_recorder(checkpoint)

    def _begin_dynamics(self) -> None:
        # here, after the Trainer has counted the steps of a full epoch from the sampler's length
        if self._pruned_at_step is not None and self.prune_keep is None:
            self.prune_keep = prune_sampler(self.prune_sampler, self.dynamics_recorder, self.prune_plan)

    def _dynamics_state(self) -> dict[str, Any]:
        return {**super()._dynamics_state(), "pruned_at_step": self._pruned_at_step}

    def _get_train_sampler(self, train_dataset: Any = None) -> PruneAt:
        return self.prune_sampler

    def _recording(self) -> bool:
        return self.prune_sampler.recording

    def _end_dynamics_epoch(self, state: Any) -> None:
        if not self.prune_sampler.recording:
            return
        super()._end_dynamics_epoch(state)
        if self.dynamics_recorder.recordings == self.prune_sampler.prune_at:
            self.prune_keep = prune_sampler(self.prune_sampler, self.dynamics_recorder, self.prune_plan)
            self._pruned_at_step = state.global_step


class PruneAtTrainer(PruneAtMixin, transformers.Trainer):
    """``transformers.Trainer`` that prunes inside one run (see :class:`PruneAtMixin`)."""
