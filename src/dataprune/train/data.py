"""Image datasets stored as IDX files (MNIST layout), an in-memory batch loader and evaluation.

Images stay uint8 in memory, ``(N, 1, H, W)``; batches are normalised (and optionally
augmented) on the fly, vectorised over the whole batch.
"""
from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataPruneError
from .order import epoch_order, epoch_seed, shard_size

if TYPE_CHECKING:  # imports point one way: imagefolder never imports this module
    from .imagefolder import FolderData

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_MAX_SHIFT = 2
#: third part of the augmentation seed ``(seed, epoch, AUGMENT_STREAM, rank)``: not the order's
AUGMENT_STREAM = 1


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: where it lives by default and how a user gets it."""

    default_dir: Path | None
    hint: str


_PUT_FILES = "put the four IDX files (train/t10k images/labels) there"

DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(Path("/usr/share/datasets/fashion-mnist"),
                                 "install them with `apt-get install dataset-fashion-mnist`"),
    "mnist": DatasetInfo(None, _PUT_FILES),
}
"""Named datasets. Any other IDX directory loads as ``name="idx"`` with ``data_dir``."""


@dataclass
class ImageData:
    """A loaded image-classification dataset.

    Attributes
    ----------
    train_x, test_x : Tensor
        uint8 images, shape (N, 1, H, W) and (M, 1, H, W).
    train_y, test_y : Tensor
        int64 labels, shape (N,) and (M,).
    num_classes : int
        Max label + 1 over all labels (train before ``limit``, and test), at least 2.
    mean, std : float
        Pixel statistics of ``train_x`` scaled to [0, 1], used by :func:`normalize`.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    name: str
    data_dir: Path
    mean: float
    std: float

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def train_images(self) -> np.ndarray:
        """uint8 (N, C, H, W) training images (for figures)."""
        return self.train_x.numpy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped or not.

    Returns
    -------
    np.ndarray
        uint8 array with the dimensions stored in the header, e.g. (N, H, W) or (N,).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DataPruneError(f"{path} is not a readable IDX file (truncated or corrupt gzip?): {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataPruneError(f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'}")
    if raw[2] != _UBYTE:
        raise DataPruneError(f"{path} has IDX dtype code 0x{raw[2]:02x}; expected 0x08 (unsigned byte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataPruneError(f"{path} is truncated or corrupt: IDX header with {ndim} dims does not fit")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataPruneError(f"{path} is truncated or corrupt: {len(raw)} bytes for dims {dims}; "
                             f"expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_idx(data_dir: str | Path, split: str, kind: str, *, hint: str = _PUT_FILES) -> Path:
    """Find ``{split}-{kind}-idx{3|1}-ubyte`` (also ``.gz`` and the ``{split}-{kind}.idx*`` spelling).

    ``split`` is "train" or "t10k", ``kind`` is "images" or "labels"; ``hint`` ends the error
    message raised when no file matches.
    """
    if split not in ("train", "t10k"):
        raise DataPruneError(f"split {split!r} is not valid; expected 'train' or 't10k'")
    if kind not in ("images", "labels"):
        raise DataPruneError(f"kind {kind!r} is not valid; expected 'images' or 'labels'")
    data_dir = Path(data_dir)
    rank = 3 if kind == "images" else 1
    names = [f"{split}-{kind}{sep}idx{rank}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for name in names:
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(f"no {split} {kind} IDX file in {data_dir} (looked for {', '.join(names)}); {hint}")


def _load_split(data_dir: Path, split: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = find_idx(data_dir, split, "images", hint=hint)
    labels_path = find_idx(data_dir, split, "labels", hint=hint)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataPruneError(f"{images_path} has shape {images.shape}; expected (N, H, W) images")
    if labels.ndim != 1:
        raise DataPruneError(f"{labels_path} has shape {labels.shape}; expected (N,) labels")
    if len(images) != len(labels):
        raise DataPruneError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                             f"{len(labels)} labels; expected equal counts")
    if len(images) == 0:
        raise DataPruneError(f"{images_path} holds no samples; expected a non-empty {split} split")
    return images, labels


def _pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and std of ``images / 255`` from a 256-bin histogram."""
    counts = np.bincount(images.reshape(-1), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float((counts * values).sum() / n)
    var = float((counts * (values - mean) ** 2).sum() / n)
    return mean, max(math.sqrt(var), 1e-6)


def load_dataset(name: str, data_dir: str | Path | None = None, limit: int | None = None,
                 image_size: int | None = None, workers: int = 0) -> ImageData | FolderData:
    """Load a named IDX dataset (see ``DATASETS``), any IDX directory (``name="idx"``), or
    list an image folder (``name="imagefolder"``: a streaming :class:`FolderData`).

    ``data_dir`` overrides the dataset's default directory. ``limit`` keeps the first
    ``limit`` training samples of IDX files (MNIST-style files are already shuffled), and a
    seeded class-stratified sample of an image folder. IDX images come back as uint8
    (N, 1, H, W), labels as int64 (N,); ``image_size`` and ``workers`` apply to image folders.
    """
    if name == "imagefolder":  # ROOT/train/<class>/..., optional val/ or test/ (torchvision extra)
        if data_dir is None:
            raise DataPruneError("dataset 'imagefolder' needs --data-dir ROOT (data_dir=) holding "
                                 "train/<class>/<image> (and optionally val/ or test/)")
        from .imagefolder import DEFAULT_IMAGE_SIZE, load_imagefolder
        return load_imagefolder(data_dir, image_size=image_size or DEFAULT_IMAGE_SIZE, limit=limit,
                                workers=workers)
    if name == "idx":
        info = DatasetInfo(None, _PUT_FILES)
    elif name in DATASETS:
        info = DATASETS[name]
    else:
        raise DataPruneError(f"unknown dataset {name!r}; expected one of "
                             f"{sorted([*DATASETS, 'idx', 'imagefolder'])}")
    if data_dir is None:
        if info.default_dir is None:
            raise DataPruneError(f"dataset {name!r} has no default directory; pass --data-dir (data_dir=) "
                                 f"naming the folder with its four IDX files")
        data_dir = info.default_dir
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} for dataset {name!r} does not exist; {info.hint}")
    train_x, train_y = _load_split(data_dir, "train", info.hint)
    test_x, test_y = _load_split(data_dir, "t10k", info.hint)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataPruneError(f"train images are {train_x.shape[1:]} but test images are {test_x.shape[1:]} "
                             f"in {data_dir}; expected the same size")
    num_classes = max(int(train_y.max()), int(test_y.max())) + 1
    if limit is not None:
        if not 1 <= limit <= len(train_x):
            raise DataPruneError(f"limit {limit} is out of range; expected 1 <= limit <= {len(train_x)} "
                                 f"(training samples in {name!r})")
        train_x, train_y = train_x[:limit], train_y[:limit]
    mean, std = _pixel_stats(train_x)

    def images(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).unsqueeze(1)

    def labels(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return ImageData(train_x=images(train_x), train_y=labels(train_y), test_x=images(test_x),
                     test_y=labels(test_y), num_classes=max(num_classes, 2), name=name,
                     data_dir=data_dir, mean=mean, std=std)


def normalize(x_uint8: Tensor, mean: float, std: float) -> Tensor:
    """Map uint8 images (B, C, H, W) to float32 ``(x / 255 - mean) / std`` of the same shape."""
    return x_uint8.float().mul_(1.0 / (255.0 * std)).sub_(mean / std)


def _random_shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each image of uint8 ``x`` (B, C, H, W) by up to ``_MAX_SHIFT`` pixels, zero fill."""
    b, c, h, w = x.shape
    pw = w + 2 * _MAX_SHIFT
    padded = nn.functional.pad(x, (_MAX_SHIFT,) * 4).reshape(b, c, -1)      # (B, C, (H+4)*(W+4))
    offsets = torch.randint(0, 2 * _MAX_SHIFT + 1, (2, b), generator=generator, device=x.device)
    window = (torch.arange(h, device=x.device)[:, None] * pw + torch.arange(w, device=x.device)).reshape(-1)
    flat = (offsets[0] * pw + offsets[1])[:, None] + window                  # (B, H*W) crop positions
    return padded.gather(2, flat[:, None, :].expand(b, c, -1)).reshape(b, c, h, w)


class InMemoryLoader:
    """Batches of ``(x, y, idx)`` from uint8 images held in memory, without per-sample Python.

    Parameters
    ----------
    x_uint8 : Tensor
        uint8 images, shape (N, C, H, W).
    y : Tensor
        Labels, shape (N,).
    mean, std : float
        Normalisation statistics (``ImageData.mean`` / ``ImageData.std``).
    indices : np.ndarray, optional
        Sample indices to iterate (e.g. a keep file); default all N.
    batch_size, shuffle, augment, seed, drop_last
        The order is :func:`~dataprune.train.order.epoch_order` of ``indices`` for ``(seed,
        epoch)``, augmentation (random shifts of up to 2 pixels) is seeded by ``(seed, epoch,
        rank)``; call :meth:`set_epoch` before each epoch.
    rank, world_size
        Data-parallel training: iterate this rank's shard of every epoch (DistributedSampler
        style, padded with duplicates); ``indices`` stays the whole set.

    Each batch is ``x`` float32 (B, C, H, W) normalised, ``y`` (B,), and ``idx`` int64 (B,)
    sample indices into the full dataset.
    """

    def __init__(self, x_uint8: Tensor, y: Tensor, *, mean: float, std: float,
                 indices: np.ndarray | None = None, batch_size: int = 256, shuffle: bool = True,
                 augment: bool = False, seed: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1) -> None:
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise DataPruneError(f"images have dtype {x_uint8.dtype} and shape {tuple(x_uint8.shape)}; "
                                 f"expected uint8 (N, C, H, W)")
        if y.shape != (len(x_uint8),):
            raise DataPruneError(f"labels have shape {tuple(y.shape)}; expected ({len(x_uint8)},) to match the images")
        if batch_size < 1:
            raise DataPruneError(f"batch_size {batch_size} is not valid; expected >= 1")
        n = len(x_uint8)
        if indices is None:
            order = torch.arange(n, device=x_uint8.device)
        else:
            idx = np.asarray(indices)
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise DataPruneError(f"indices have dtype {idx.dtype} and shape {idx.shape}; expected 1-D integers")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DataPruneError(f"indices span [{idx.min()}, {idx.max()}]; expected sample indices in [0, {n})")
            if np.unique(idx).size != idx.size:
                raise DataPruneError(f"indices hold {idx.size - np.unique(idx).size} duplicates; expected unique sample indices")
            order = torch.as_tensor(idx, dtype=torch.int64, device=x_uint8.device)
        self.x, self.y = x_uint8, y.long()
        self.mean, self.std = float(mean), float(std)
        self.indices = order
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.drop_last = seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration's order and augmentation a function of ``(seed, epoch)``."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = shard_size(len(self.indices), self.world_size)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        order = epoch_order(self.indices, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                            rank=self.rank, world_size=self.world_size).to(self.x.device)
        generator = torch.Generator(device=self.x.device).manual_seed(
            epoch_seed(self.seed, self.epoch, AUGMENT_STREAM, self.rank))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.augment:
                xb = _random_shift(xb, generator)
            yield normalize(xb, self.mean, self.std), self.y[idx], idx

    def clean(self, idx: Tensor) -> Tensor:
        """Normalised, un-augmented images (B, C, H, W) for sample indices ``idx`` (B,)."""
        return normalize(self.x[torch.as_tensor(idx, device=self.x.device)], self.mean, self.std)


def evaluate(model: nn.Module, x_uint8: Tensor, y: Tensor, mean: float, std: float,
             batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on uint8 images (M, C, H, W) with labels (M,), in eval mode."""
    if len(x_uint8) == 0 or len(x_uint8) != len(y):
        raise DataPruneError(f"cannot evaluate {len(x_uint8)} images with {len(y)} labels; "
                             f"expected equal, non-zero counts")
    device = next(model.parameters()).device
    return accuracy(model, ((normalize(x_uint8[a:a + batch_size].to(device), mean, std), y[a:a + batch_size])
                            for a in range(0, len(x_uint8), batch_size)))


def accuracy(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Top-1 accuracy of ``model`` over batches of (inputs (B, ...), labels (B,)), in eval mode.

    Runs under ``torch.no_grad`` on the model's device and restores its train/eval mode.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    try:
        with torch.no_grad():
            for xb, yb in batches:
                yb = yb.to(device)
                correct += (model(xb.to(device)).argmax(1) == yb).sum()
                seen += len(yb)
    finally:
        model.train(was_training)
    if seen == 0:
        raise DataPruneError("cannot evaluate on an empty split; expected at least one sample")
    return correct.item() / seen
