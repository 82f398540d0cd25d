"""Hugging Face ``Trainer``: record per-sample training dynamics from ``Trainer.train()``.

HF callbacks never see the logits, so recording hooks ``compute_loss`` (the supported
override point) through :class:`RecordDynamicsMixin`; :func:`with_index` adds the sample
index column, which the mixin keeps through ``remove_unused_columns`` and removes before
the model's forward::

    trainer = RecordDynamicsTrainer(model=model, args=args, train_dataset=with_index(train),
                                    dynamics_out="runs/hf/dynamics")
    trainer.train()

Works under ``torchrun`` (DDP) like the :class:`~dataprune.Recorder`: every rank records its
own batches, rank 0 writes. :class:`PruneAtTrainer` (:class:`PruneAtMixin`) also prunes inside
the run, around a :class:`~dataprune.PruneAt` train sampler.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataPruneError
from ..record import DEFAULT_SIGNALS, Recorder
from ..train.prune_at import PruneAt
from . import import_framework
from .prune import InRunPrune, check_epochs, prune_sampler

transformers = import_framework("transformers", "transformers", __name__)
import_framework("accelerate", "transformers", __name__)  # the Trainer's own dependency

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


class _EndEpoch(transformers.TrainerCallback):
    def __init__(self, trainer: "RecordDynamicsMixin"):
        self.trainer = trainer

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._end_dynamics_epoch()


class RecordDynamicsMixin:
    """Mix into a ``transformers.Trainer`` subclass (before it) to record dynamics.

    Keyword arguments, the rest going to the Trainer:
    ``dynamics_out`` (store directory), ``num_classes`` (default ``model.config.num_labels``),
    ``signals``, ``view``, ``force`` and any other :class:`~dataprune.Recorder` option in
    ``recorder_kwargs``. N is ``len(train_dataset)``, whose items need the
    ``sample_index`` column (:func:`with_index`) and ``labels``. The recorder is
    ``self.dynamics_recorder``. Resuming ``train(resume_from_checkpoint=...)`` is refused.
    """

    def __init__(self, *args: Any, dynamics_out: str | os.PathLike, num_classes: int | None = None,
                 signals: Sequence[str] = DEFAULT_SIGNALS, view: str = "train", force: bool = False,
                 recorder_kwargs: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.dynamics_out = dynamics_out
        self._recorder_options = dict(num_classes=num_classes, signals=list(signals), view=view,
                                      force=force, **(recorder_kwargs or {}))
        self.dynamics_recorder: Recorder | None = None
        self.add_callback(_EndEpoch(self))

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if resume_from_checkpoint:
            raise DataPruneError(
                f"resume_from_checkpoint={resume_from_checkpoint!r}: resuming is not supported "
                f"while recording dynamics into {self.dynamics_out}; expected a fresh run "
                "(force=True starts the store over)")
        opts = dict(self._recorder_options)
        num_classes = opts.pop("num_classes") or getattr(getattr(self.model, "config", None),
                                                         "num_labels", None)
        if num_classes is None:
            raise DataPruneError("num_classes=None and the model has no config.num_labels; "
                                 "expected RecordDynamicsTrainer(..., num_classes=C)")
        opts.setdefault("epochs", int(self.args.num_train_epochs))
        self.dynamics_recorder = Recorder(len(self.train_dataset), self.dynamics_out, num_classes, **opts)
        try:
            return super().train(None, *args, **kwargs)
        finally:
            self.dynamics_recorder.close()

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
        return (loss, outputs) if return_outputs else loss


    def _recording(self) -> bool:
        """Whether this training batch is recorded."""
        return True

    def _end_dynamics_epoch(self) -> None:
        """Called at the end of each training epoch (every rank)."""
        self.dynamics_recorder.end_epoch()


class RecordDynamicsTrainer(RecordDynamicsMixin, transformers.Trainer):
    """``transformers.Trainer`` that records dynamics (see :class:`RecordDynamicsMixin`)."""


class PruneAtMixin(RecordDynamicsMixin):
    """Mix into a ``transformers.Trainer`` subclass (before it) to prune inside one
    ``train()``: record the first ``prune_at`` (T) epochs into ``dynamics_out``, score them at
    the end of epoch T-1 with ``method`` and train the remaining epochs on the kept
    ``1 - prune_ratio`` of the samples.

    The Trainer's train sampler becomes a :class:`~dataprune.PruneAt` (``self.prune_sampler``,
    seeded by ``args.data_seed`` or ``args.seed``); the keep indices (ascending) are
    ``self.prune_keep`` after epoch T-1. ``method_params`` default as in ``dataprune train
    --prune-at`` (window J = min(10, T-1)); ``signals`` to ``prob``, ``correct`` and what the
    method reads; the other keywords are :class:`RecordDynamicsMixin`'s. Refused: resuming
    (the Trainer finds the epoch to resume from ``global_step`` and the steps of a full
    epoch, which pruned epochs do not have), ``gradient_accumulation_steps`` > 1 (the
    Trainer sizes the last accumulation of an epoch for the full set) and ``max_steps``.
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

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        a = self.args
        if not resume_from_checkpoint:
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

    def _get_train_sampler(self, train_dataset: Any = None) -> PruneAt:
        return self.prune_sampler

    def _recording(self) -> bool:
        return self.prune_sampler.recording

    def _end_dynamics_epoch(self) -> None:
        if not self.prune_sampler.recording:
            return
        super()._end_dynamics_epoch()
        if self.dynamics_recorder.epoch == self.prune_sampler.prune_at:
            self.prune_keep = prune_sampler(self.prune_sampler, self.dynamics_recorder, self.prune_plan)


class PruneAtTrainer(PruneAtMixin, transformers.Trainer):
    """``transformers.Trainer`` that prunes inside one run (see :class:`PruneAtMixin`)."""
