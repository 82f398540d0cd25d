"""Image folders in torchvision's ImageFolder layout, streamed from disk.

``ROOT/train/<class>/<img>`` is the training set; ``ROOT/val/`` or ``ROOT/test/`` (same class
folders), when present, is the evaluation split. :func:`folder_samples` lists a split in
ImageFolder order (classes sorted, files sorted), so sample index i is the i-th image, the
order of the file list written beside the store. :func:`load_imagefolder` only lists the
files; :class:`FolderLoader` decodes batches on the fly in DataLoader workers, so memory does
not grow with the number of images. torchvision is the optional ``vision`` extra.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import DataPruneError
from .order import epoch_order, epoch_seed, shard_size

EXTRA_HINT = "install the vision extra: pip install 'dataprune[vision]' (torchvision, timm)"
EVAL_SPLITS = ("val", "test")
"""Evaluation splits looked for, in this order."""
DEFAULT_IMAGE_SIZE = 32
"""Image size of models that have none of their own (the built-in ``mlp`` and ``small-cnn``)."""
SMALL_IMAGE = 64
"""Up to this size, training crops are pad-and-crop (CIFAR style) instead of RandomResizedCrop."""
CROP_FRACTION = 0.875
"""Above ``SMALL_IMAGE``, the clean/eval view resizes the shorter side to size / 0.875 (256
for 224, the ImageNet convention) before the centre crop."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise a clear error naming the ``vision`` extra."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataPruneError(f"{what} needs {module.split('.')[0]}, which is not installed; "
                             f"{EXTRA_HINT}") from None


def split_dir(root: str | Path, split: str) -> Path:
    """``ROOT/<split>`` (e.g. "train", "val", "test"), checked to exist."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder root {root} does not exist; expected ROOT/train/<class>/<image> "
                                "(and optionally ROOT/val/ or ROOT/test/)")
    d = root / split
    if not d.is_dir():
        raise DataPruneError(f"{root} has no {split}/ folder; expected the ImageFolder layout "
                             f"{root}/{split}/<class>/<image>")
    return d


def find_eval_split(root: str | Path) -> str | None:
    """The first of ``val``, ``test`` that exists under ``root``, else None."""
    return next((s for s in EVAL_SPLITS if (Path(root) / s).is_dir()), None)


def folder_samples(root: str | Path, split: str = "train"
                   ) -> tuple[list[str], np.ndarray, list[str]]:
    """List a split in ImageFolder order: (relative paths 'class/img', int64 labels, classes)."""
    datasets = require("torchvision.datasets", "dataset 'imagefolder'")
    d = split_dir(root, split)
    try:
        folder = datasets.ImageFolder(str(d))
    except (FileNotFoundError, RuntimeError) as e:  # no classes / no images
        raise DataPruneError(f"{d} is not a usable image folder: {e}") from None
    rel = [str(Path(p).relative_to(d).as_posix()) for p, _ in folder.samples]
    return rel, np.asarray(folder.targets, dtype=np.int64), list(folder.classes)


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Ascending indices of a seeded, class-stratified sample of ``n`` of the (N,) ``labels``.

    Class c gets floor or ceil of n * N_c / N samples (largest remainders round up), and at
    least one when ``n`` >= the number of classes present; inside a class the samples are a
    uniform random choice. Example: labels [0]*6 + [1]*3 + [2]*1, n=3 -> quotas 1.8, 0.9,
    0.3 -> floors 1, 0, 0, every class at least 1 -> 1, 1, 1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 1 <= n <= len(labels):
        raise DataPruneError(f"limit {n} is out of range; expected 1 <= limit <= {len(labels)}")
    counts = np.bincount(labels)
    quota = n * counts / len(labels)
    take = np.floor(quota).astype(np.int64)
    rest = quota - take
    if n >= np.count_nonzero(counts):
        take = np.maximum(take, (counts > 0).astype(np.int64))
    while take.sum() > n:  # the minimum of one per class overshot: shrink the smallest remainders
        can = np.flatnonzero(take > 1)
        drop = can[np.argsort(rest[can], kind="stable")][: take.sum() - n]
        take[drop] -= 1
    short = n - int(take.sum())
    if short:
        can = np.flatnonzero(take < counts)
        take[can[np.argsort(-rest[can], kind="stable")][:short]] += 1
    rng = np.random.default_rng(seed)
    by_class = np.argsort(labels, kind="stable")
    starts = np.r_[0, np.cumsum(counts)]
    picked = [rng.choice(by_class[starts[c]:starts[c + 1]], size=int(take[c]), replace=False)
              for c in np.flatnonzero(take)]
    return np.sort(np.concatenate(picked))


def folder_transforms(image_size: int, *, augment: bool, mean: tuple[float, ...] = IMAGENET_MEAN,
                      std: tuple[float, ...] = IMAGENET_STD) -> Callable[[Any], Tensor]:
    """torchvision v2 pipeline from an RGB PIL image to a float32 (3, S, S) normalised tensor.

    ``augment=False`` (the clean view and evaluation): resize the shorter side (to S, or to
    S / 0.875 above 64 px) and centre-crop S. ``augment=True``: up to 64 px, that view plus a
    random crop with S // 8 zero padding (CIFAR's pad-and-crop); above, RandomResizedCrop(S);
    then a random horizontal flip. Randomness comes from torch's global generator.
    """
    v2 = require("torchvision.transforms.v2", "dataset 'imagefolder'")
    return v2.Compose([*_geometry(v2, image_size, augment), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(mean), list(std))])


def _geometry(v2: Any, s: int, augment: bool) -> list[Any]:
    """The resize/crop/flip steps of :func:`folder_transforms` for size ``s``."""
    small = s <= SMALL_IMAGE
    if augment and not small:
        steps = [v2.RandomResizedCrop(s, antialias=True)]
    else:
        steps = [v2.Resize(s if small else round(s / CROP_FRACTION), antialias=True), v2.CenterCrop(s)]
    if augment:
        steps += ([v2.RandomCrop(s, padding=s // 8)] if small else []) + [v2.RandomHorizontalFlip()]
    return steps


def open_rgb(path: Path) -> Any:
    """The image at ``path`` as an RGB PIL image (grayscale and palette images converted)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise DataPruneError(f"cannot decode image {path}: {e}") from None


class FolderDataset(torch.utils.data.Dataset):
    """Streaming ImageFolder split: item i is ``(transform(image_i), label_i)``, ImageFolder order.

    For your own scripts; wrap it in :class:`dataprune.WithIndex` so batches carry sample
    indices for the :class:`~dataprune.Recorder`. The default ``transform`` is the 224 px
    clean view of :func:`folder_transforms` (resize 256, centre crop 224, normalised float32).
    Paths are kept as one NumPy byte array, so DataLoader workers do not copy a Python list
    of N strings.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], torch.Tensor] | None = None, *,
                 samples: tuple[list[str], np.ndarray] | None = None) -> None:
        self.root = split_dir(root, split)
        paths, labels = samples if samples is not None else folder_samples(root, split)[:2]
        self.paths = np.asarray([p.encode() for p in paths], dtype=np.bytes_)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform or folder_transforms(224, augment=False)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> Any:
        """Image i as RGB PIL image."""
        return open_rgb(self.root / self.paths[i].decode())

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.image(i)), int(self.labels[i])


class _Views(torch.utils.data.Dataset):
    """Item ``(epoch, i)`` of ``base``: ``(training view, clean view or empty, i)``, one decode for
    both, or a :class:`_Failed` naming an image that cannot be decoded.

    ``train_tf`` None: no augmentation, the training view is the clean view. Otherwise its
    randomness is seeded by ``(seed, epoch, i)``, so a batch is the same whichever worker (or
    the main process) builds it, and ``with_clean`` adds the clean view. The epoch travels
    with the key, so persistent workers need no per-epoch state.
    """

    def __init__(self, base: FolderDataset, clean_tf: Callable[[Any], Tensor],
                 train_tf: Callable[[Any], Tensor] | None = None, *, with_clean: bool = False,
                 seed: int = 0) -> None:
        self.base, self.clean_tf, self.train_tf = base, clean_tf, train_tf
        self.with_clean, self.seed = with_clean, seed
        self._bases: dict[int, int] = {}

    def _epoch_base(self, epoch: int) -> int:
        """``epoch_seed(seed, epoch)``, cached (one SeedSequence per epoch, not per sample:
        that costs ~50 us); sample i's augmentation is seeded by ``base + i *
        0x9E3779B97F4A7C15`` mod 2^63."""
        if epoch not in self._bases:
            self._bases = {epoch: epoch_seed(self.seed, epoch)}
        return self._bases[epoch]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> "tuple[Tensor, Tensor, int] | _Failed":
        epoch, i = int(key[0]), int(key[1])
        try:
            img = self.base.image(i)
        except DataPruneError as e:  # reported by the loader in one line, not as a worker traceback
            return _Failed(str(e))
        if self.train_tf is None:
            return self.clean_tf(img), torch.empty(0), i
        state = torch.get_rng_state()  # only the CPU generator: torch.manual_seed would cost ~0.5 ms
        torch.default_generator.manual_seed((self._epoch_base(epoch) + i * 0x9E3779B97F4A7C15) % 2**63)
        try:
            x = self.train_tf(img)
        finally:
            torch.set_rng_state(state)
        return x, self.clean_tf(img) if self.with_clean else torch.empty(0), i


@dataclass(frozen=True)
class _Failed:
    """An item (or batch) that could not be built: ``message`` says which image and why."""

    message: str


def _collate(items: list[Any]) -> Any:
    """torch's default collation, or the first :class:`_Failed` item of the batch."""
    failed = next((it for it in items if isinstance(it, _Failed)), None)
    return failed if failed is not None else torch.utils.data.default_collate(items)


class _EpochBatches(torch.utils.data.Sampler):
    """The batches of ``(epoch, sample index)`` keys of ``loader``'s current epoch."""

    def __init__(self, loader: "FolderLoader") -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, size = self.loader.epoch, self.loader.batch_size
        order = self.loader.order().tolist()
        for a in range(0, len(order), size):
            yield [(epoch, i) for i in order[a:a + size]]

    def __len__(self) -> int:
        return len(self.loader)


class FolderLoader:
    """Epochs of ``(x, y, idx)`` batches decoded by ``workers`` DataLoader processes.

    ``x`` float32 (B, 3, S, S) normalised, ``y`` (B,) labels taken from ``labels`` (so label
    noise injected there is seen), ``idx`` (B,) int64 sample indices. The order is
    :func:`~dataprune.train.order.epoch_order` of ``indices`` for ``(seed, epoch)``; call
    :meth:`set_epoch` before each epoch. With ``with_clean`` every batch also carries the
    un-augmented view, returned by :meth:`clean` for the current batch (the loop's clean
    record). Results do not depend on ``workers``. One DataLoader serves every epoch: its
    workers persist, and batches come in pinned memory when CUDA is available (for
    non-blocking copies to the GPU).
    """

    def __init__(self, views: _Views, labels: Tensor, *, indices: np.ndarray | None = None,
                 batch_size: int = 256, shuffle: bool = True, seed: int = 0, workers: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise DataPruneError(f"batch_size {batch_size} is not valid; expected >= 1")
        if workers < 0:
            raise DataPruneError(f"--workers {workers}; expected 0 (decode in the main process) or more")
        n = len(views)
        self.views, self.labels = views, labels
        self.indices = torch.arange(n) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        self.batch_size, self.shuffle, self.seed, self.workers = batch_size, shuffle, seed, workers
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._last: tuple[Tensor, Tensor] | None = None
        self._loader: torch.utils.data.DataLoader | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> Tensor:
        """This rank's sample indices (M,) int64 of the current epoch."""
        return epoch_order(self.indices, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                           rank=self.rank, world_size=self.world_size)

    def __len__(self) -> int:
        return -(-shard_size(len(self.indices), self.world_size) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                self.views, batch_sampler=_EpochBatches(self), num_workers=self.workers, collate_fn=_collate,
                pin_memory=torch.cuda.is_available(), persistent_workers=self.workers > 0)
        for batch in self._loader:
            if isinstance(batch, _Failed):
                raise DataPruneError(batch.message)
            x, clean, idx = batch
            self._last = (idx, x if self.views.train_tf is None else clean)
            yield x, self.labels[idx], idx
        self._last = None

    def clean(self, idx: Tensor) -> Tensor:
        """The un-augmented view (B, 3, S, S) of the batch ``idx`` just yielded."""
        idx = torch.as_tensor(idx).cpu()
        if self._last is not None and self._last[1].numel() and torch.equal(self._last[0], idx):
            return self._last[1]
        return torch.stack([self.views.clean_tf(self.views.base.image(int(i))) for i in idx])


@dataclass
class FolderData:
    """A listed (not decoded) image folder: what the training runs need from it.

    ``train_y`` (N,) and ``test_y`` (M,) are int64 labels in ImageFolder order (train limited
    to ``limit_indices`` when a ``--limit`` sample was taken); ``eval_split`` names the
    evaluation folder ("val" or "test", None when there is none).
    """

    root: Path
    classes: list[str]
    train_paths: list[str]
    train_y: Tensor
    image_size: int
    eval_split: str | None = None
    eval_paths: list[str] | None = None
    test_y: Tensor | None = None
    workers: int = 0
    name: str = "imagefolder"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    in_channels: int = 3

    @property
    def data_dir(self) -> Path:
        return self.root

    @property
    def num_classes(self) -> int:
        return max(len(self.classes), 2)

    @property
    def file_list(self) -> tuple[list[str], np.ndarray]:
        """``(relative paths, labels)`` of the training samples, for ``file_list.txt``."""
        return self.train_paths, self.train_y.numpy()

    def loader(self, indices: np.ndarray | None = None, *, batch_size: int, shuffle: bool, augment: bool,
               seed: int = 0, with_clean: bool = False, split: str = "train", rank: int = 0,
               world_size: int = 1) -> FolderLoader:
        """A :class:`FolderLoader` over ``split`` ("train" or "eval"); ``with_clean`` adds the
        un-augmented view to each batch (only needed when ``augment``)."""
        if split == "eval":
            if self.eval_split is None or self.test_y is None or self.eval_paths is None:
                raise DataPruneError(f"{self.root} has no evaluation split; expected {self.root}/val/<class>/... "
                                     f"or {self.root}/test/<class>/... with the classes of train/")
            base = FolderDataset(self.root, self.eval_split, samples=(self.eval_paths, self.test_y.numpy()))
            labels = self.test_y
        else:
            base = FolderDataset(self.root, "train", samples=(self.train_paths, self.train_y.numpy()))
            labels = self.train_y
        clean_tf = folder_transforms(self.image_size, augment=False, mean=self.mean, std=self.std)
        train_tf = folder_transforms(self.image_size, augment=True, mean=self.mean, std=self.std) if augment else None
        views = _Views(base, clean_tf, train_tf, with_clean=with_clean, seed=seed)
        return FolderLoader(views, labels, indices=indices, batch_size=batch_size, shuffle=shuffle, seed=seed,
                            workers=self.workers, rank=rank, world_size=world_size)

    @property
    def train_images(self) -> "_Images":
        """The training images for figures: ``train_images[i]`` decodes sample i's clean view
        as uint8 (3, S, S) (decoded on access, never all at once)."""
        v2 = require("torchvision.transforms.v2", "dataset 'imagefolder'")
        tf = v2.Compose([*_geometry(v2, self.image_size, False), v2.PILToTensor()])
        return _Images(FolderDataset(self.root, "train", tf, samples=(self.train_paths, self.train_y.numpy())))


class _Images:
    """``images[i]``: item i of a :class:`FolderDataset` as a uint8 NumPy array (3, S, S)."""

    def __init__(self, base: FolderDataset) -> None:
        self.base = base

    def __getitem__(self, i: int) -> np.ndarray:
        return self.base[int(i)][0].numpy()


def load_imagefolder(root: str | Path, *, image_size: int = DEFAULT_IMAGE_SIZE, limit: int | None = None,
                     workers: int = 0, limit_seed: int = 0) -> FolderData:
    """List ``ROOT/train`` (and ``ROOT/val`` or ``ROOT/test`` if present) without decoding.

    Labels follow ImageFolder's sorted class order; the evaluation split must have the same
    class folders. ``limit`` keeps a class-stratified sample of that many training images
    (:func:`stratified_sample` with ``limit_seed``), in ImageFolder order.
    """
    if image_size < 4:
        raise DataPruneError(f"image_size={image_size}; expected at least 4")
    if workers < 0:
        raise DataPruneError(f"--workers {workers}; expected 0 (decode in the main process) or more")
    root = Path(root)
    train_paths, train_y, classes = folder_samples(root, "train")
    if limit is not None:
        keep = stratified_sample(train_y, limit, limit_seed)
        train_paths, train_y = [train_paths[i] for i in keep], train_y[keep]
    data = FolderData(root=root, classes=classes, train_paths=train_paths, train_y=torch.from_numpy(train_y),
                      image_size=image_size, workers=workers)
    split = find_eval_split(root)
    if split is not None:
        eval_paths, eval_y, eval_classes = folder_samples(root, split)
        if eval_classes != classes:
            raise DataPruneError(f"{root}/{split} has classes {eval_classes[:5]}... but {root}/train has "
                                 f"{classes[:5]}...; expected the same class folders")
        data.eval_split, data.eval_paths, data.test_y = split, eval_paths, torch.from_numpy(eval_y)
    return data
