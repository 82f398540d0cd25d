"""Shared test helpers: a tiny IDX writer and a synthetic IDX dataset; hypothesis profiles."""
from __future__ import annotations

import json

import gzip
import os
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import settings

# Hypothesis profiles. "ci" (default): derandomized (the same examples on every machine and
# run), no example database, failing examples printed with a reproduction blob - CI never
# fails by chance. "explore": fresh random examples, 20x more of them, for a separate slower
# job that hunts for new counterexamples: HYPOTHESIS_PROFILE=explore python -m pytest tests/test_properties.py
settings.register_profile("ci", derandomize=True, database=None, print_blob=True,
                          max_examples=60, deadline=None)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True,
                          max_examples=1200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``cuda`` on a machine without a CUDA GPU."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write uint8 ``array`` (any shape) as an IDX file; gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Noisy images (N, size, size) with a bright 6x6 square at a class-specific place."""
    images = rng.integers(0, 60, size=(len(labels), size, size))
    for c in np.unique(labels):
        r, col = 3 + 6 * (c // 4), 3 + 6 * (c % 4)
        images[labels == c, r:r + 6, col:col + 6] += 180
    return images.astype(np.uint8)


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    """A folder with 300 train / 100 test 28x28 images of 10 learnable classes (train gzipped)."""
    rng = np.random.default_rng(0)
    for split, n, gz in (("train", 300, ".gz"), ("t10k", 100, "")):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{gz}", make_images(labels, rng))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{gz}", labels)
    return tmp_path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """60 train / 20 test 28x28 images of 10 classes."""
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    for split, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n) % 10
        write_idx(d / f"{split}-images-idx3-ubyte", make_images(labels, rng))
        write_idx(d / f"{split}-labels-idx1-ubyte", labels)
    return d


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir) -> Path:
    """A finished `dataprune record` run (mlp, 2 epochs, 60 samples, prob + correct)."""
    from dataprune.train import runs
    from dataprune.train.loop import TrainConfig
    out = tmp_path_factory.mktemp("runs") / "run"
    runs.score_run(out, runs.DataSpec("idx", str(data_dir)), model="mlp",
                   cfg=TrainConfig(epochs=2, batch_size=32), signals=("prob", "correct"))
    return out


def cli_error(capsys, *args) -> str:
    """Run the CLI; expect exit code 2 and exactly one line on stderr (returned)."""
    from dataprune.cli import main
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dataprune "), err
    return err


def pytest_collection_modifyitems(config, items) -> None:
    """Skip tests marked ``@pytest.mark.cuda`` when torch sees no CUDA device."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


def redigest(run: Path) -> None:
    """Re-record a run's digests after a test edited its files on purpose, as someone who also
    rewrites digests.json would: the checks behind the digests must still catch the edit."""
    from dataprune.train.rundir import config_digest, sha256_file
    digests = {"config.json": [config_digest(json.loads((run / "config.json").read_text()))]}
    for name in ("state.pt", "checkpoint.pt"):
        if (run / name).exists():
            digests[name] = [sha256_file(run / name)]
    (run / "digests.json").write_text(json.dumps(digests))


@contextmanager
def killed_at_epoch(monkeypatch, epoch: int) -> Iterator[None]:
    """Inside the block, a run is killed as it starts training epoch ``epoch`` (the training
    path raises KeyboardInterrupt there, as a SIGINT would); the real training is back after."""
    from dataprune.train import training
    real = training.train

    def dying(*args, **kwargs):
        if kwargs["start_epoch"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(training, "train", dying)
    try:
        yield
    finally:
        monkeypatch.setattr(training, "train", real)


def subprocess_env() -> dict[str, str]:
    """The environment of a dataprune process a test starts: this checkout's src/ first on
    PYTHONPATH, one thread, and no inherited WORLD_SIZE (the test sets up its own ranks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    return env
