"""A tiny Hugging Face Trainer app for tests/test_integration_transformers.py; also run per
rank under ``torchrun`` (``python -m torch.distributed.run --standalone --nproc_per_node 2
_transformers_app.py OUT``): gloo on CPU, nothing downloaded.

Each rank saves the (epoch, idx, logits, y) its recorder was fed to OUT/batches_rank<r>.pt,
so the test can replay them into a plain Recorder and compare the stores byte for byte.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

import dataprune as dp  # noqa: E402
from dataprune.integrations.transformers import (INDEX_KEY, PruneAtTrainer, RecordDynamicsTrainer,  # noqa: E402
                                                  with_index)
from helpers_record import finish_ddp  # noqa: E402  (the script's folder is on sys.path)

N, C, L = 10, 3, 8  # N=10, batch 4, 2 ranks: accelerate pads the last batches with repeats
SIGNALS = ["prob", "correct", "el2n"]


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, num_labels=C,
                                  max_position_embeddings=L)
    return transformers.BertForSequenceClassification(cfg)


def tiny_dataset() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 32, (N, L), generator=g)
    # "text" is not a forward argument: remove_unused_columns drops it, not the index
    return [{"input_ids": ids[i], "attention_mask": torch.ones(L, dtype=torch.long),
             "labels": i % C, "text": f"sample {i}"} for i in range(N)]


PRUNE = dict(prune_at=2, method="el2n", prune_ratio=0.3)  # what prune_train scores at T


class SpyPruneAtTrainer(PruneAtTrainer):
    """PruneAtTrainer noting the (epoch, sample indices) of every training batch in ``trained``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trained = []

    def compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            self.trained.append((self.prune_sampler.epoch, inputs[INDEX_KEY].clone()))
        return super().compute_loss(model, inputs, *args, **kwargs)


def make_trainer(out: Path, cls: type = RecordDynamicsTrainer, epochs: int = 2, args: dict | None = None,
                 **kwargs) -> RecordDynamicsTrainer:
    """A trainer of ``epochs`` recording into out/dynamics (DDP with gloo when run under torchrun)."""
    torchrun = "LOCAL_RANK" in os.environ  # ddp_backend without torchrun: accelerate wants a group
    args = transformers.TrainingArguments(**{
        "output_dir": str(out / "hf"), "num_train_epochs": epochs, "per_device_train_batch_size": 4,
        "learning_rate": 1e-3, "report_to": [], "save_strategy": "no", "logging_strategy": "no",
        "use_cpu": True, "ddp_backend": "gloo" if torchrun else None, "disable_tqdm": True, "seed": 0,
        **(args or {})})
    return cls(model=tiny_model(), args=args, train_dataset=with_index(tiny_dataset()),
               out=out / "dynamics", **kwargs)


def train(out: Path, resume: str | None = None, **kwargs) -> RecordDynamicsTrainer:
    """Train :func:`make_trainer` ``(out, **kwargs)`` (from checkpoint ``resume`` if given);
    the (epoch, idx, logits, y) batches its recorder was fed go to out/batches_rank<r>.pt.
    Returns the trainer."""
    seen, update = [], dp.Recorder.update

    def spy(self, indices, logits, targets, **kw):
        seen.append((self.recordings, indices.clone(), logits.detach().clone(), targets.clone()))
        return update(self, indices, logits, targets, **kw)

    trainer = make_trainer(out, **kwargs)
    dp.Recorder.update = spy
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        dp.Recorder.update = update
    torch.save(seen, out / f"batches_rank{trainer.args.process_index}.pt")
    return trainer


def prune_train(out: Path, **kwargs) -> SpyPruneAtTrainer:
    """Train 4 epochs pruned after 2 (:data:`PRUNE`) as :func:`train` does; each rank also
    saves the (epoch, idx) it trained on to out/trained_rank<r>.pt and its keep to
    out/keep_rank<r>.pt. Returns the trainer."""
    trainer = train(out, cls=SpyPruneAtTrainer, epochs=4, **{**PRUNE, **kwargs})
    r = trainer.args.process_index
    torch.save(trainer.trained, out / f"trained_rank{r}.pt")
    torch.save(torch.from_numpy(trainer.prune_keep), out / f"keep_rank{r}.pt")
    return trainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[2:] == ["prune"]:
        prune_train(Path(sys.argv[1]))
    else:
        train(Path(sys.argv[1]), signals=SIGNALS)
    finish_ddp()
