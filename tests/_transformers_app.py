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
from dataprune.integrations.transformers import RecordDynamicsTrainer, with_index  # noqa: E402
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


def make_trainer(out: Path, **kwargs) -> RecordDynamicsTrainer:
    """A 2-epoch trainer recording into out/dynamics (DDP with gloo when run under torchrun)."""
    torchrun = "LOCAL_RANK" in os.environ  # ddp_backend without torchrun: accelerate wants a group
    args = transformers.TrainingArguments(
        output_dir=str(out / "hf"), num_train_epochs=2, per_device_train_batch_size=4,
        learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
        use_cpu=True, ddp_backend="gloo" if torchrun else None, disable_tqdm=True, seed=0)
    return RecordDynamicsTrainer(model=tiny_model(), args=args, train_dataset=with_index(tiny_dataset()),
                                 dynamics_out=out / "dynamics", **kwargs)


def train(out: Path, **kwargs) -> RecordDynamicsTrainer:
    """Train :func:`make_trainer` ``(out, **kwargs)``; the (epoch, idx, logits, y) batches
    its recorder was fed go to out/batches_rank<r>.pt. Returns the trainer."""
    seen, update = [], dp.Recorder.update

    def spy(self, indices, logits, targets, **kw):
        seen.append((self.epoch, indices.clone(), logits.detach().clone(), targets.clone()))
        return update(self, indices, logits, targets, **kw)

    trainer = make_trainer(out, **kwargs)
    dp.Recorder.update = spy
    try:
        trainer.train()
    finally:
        dp.Recorder.update = update
    torch.save(seen, out / f"batches_rank{trainer.args.process_index}.pt")
    return trainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    train(Path(sys.argv[1]), signals=SIGNALS)
    finish_ddp()
