"""Image folders in torchvision's ImageFolder layout: ``ROOT/train/<class>/<img>`` and
``ROOT/val/<class>/<img>`` (torchvision is the optional ``vision`` extra).

:func:`folder_samples` lists a split in ImageFolder order (classes sorted, files sorted), so
sample index i is the i-th image, the same order as the file list written beside the store.
:func:`load_imagefolder` decodes a split into memory as uint8 (N, 3, S, S) for the reference
training loop (datasets that fit in memory); :class:`FolderDataset` streams from disk for
large sets (use it with a DataLoader and ``dataprune.WithIndex`` in your own DDP script).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataPruneError

EXTRA_HINT = "install the vision extra: pip install 'dataprune[vision]' (torchvision, timm)"


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise a clear error naming the ``vision`` extra."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataPruneError(f"{what} needs {module.split('.')[0]}, which is not installed; "
                             f"{EXTRA_HINT}") from None


def split_dir(root: str | Path, split: str) -> Path:
    """``ROOT/train`` or ``ROOT/val`` (``split`` is "train" or "val"), checked to exist."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder root {root} does not exist; expected ROOT/train/<class>/... "
                                "and ROOT/val/<class>/...")
    d = root / split
    if not d.is_dir():
        raise DataPruneError(f"{root} has no {split}/ folder; expected the ImageFolder layout "
                             f"{root}/train/<class>/<image> and {root}/val/<class>/<image>")
    return d


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


def _decode(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (3, size, size): resize the shorter side to ``size``, centre crop."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def load_imagefolder(root: str | Path, *, image_size: int = 32, limit: int | None = None):
    """Decode ``ROOT/train`` and ``ROOT/val`` into an in-memory :class:`ImageData`.

    Images become uint8 (N, 3, image_size, image_size) (shorter side resized, centre crop);
    labels follow ImageFolder's sorted class order, and train and val must have the same
    classes. ``limit`` keeps the first ``limit`` training images (in ImageFolder order).
    """
    from .data import ImageData, _pixel_stats
    if image_size < 4:
        raise DataPruneError(f"image_size={image_size}; expected at least 4")
    root = Path(root)
    split_dir(root, "train"), split_dir(root, "val")  # both splits exist, before decoding
    train_paths, train_y, classes = folder_samples(root, "train")
    val_paths, val_y, val_classes = folder_samples(root, "val")
    if val_classes != classes:
        raise DataPruneError(f"{root}/val has classes {val_classes[:5]}... but {root}/train has "
                             f"{classes[:5]}...; expected the same class folders")
    if limit is not None:
        if not 1 <= limit <= len(train_paths):
            raise DataPruneError(f"limit {limit} is out of range; expected 1 <= limit <= {len(train_paths)}")
        train_paths, train_y = train_paths[:limit], train_y[:limit]

    def decode_all(split: str, rel: list[str]) -> np.ndarray:
        out = np.empty((len(rel), 3, image_size, image_size), np.uint8)
        for i, p in enumerate(rel):
            try:
                out[i] = _decode(root / split / p, image_size)
            except OSError as e:
                raise DataPruneError(f"cannot decode image {root / split / p}: {e}") from None
        return out

    train_x, val_x = decode_all("train", train_paths), decode_all("val", val_paths)
    mean, std = _pixel_stats(train_x)
    data = ImageData(train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(train_y),
                     test_x=torch.from_numpy(val_x), test_y=torch.from_numpy(val_y),
                     num_classes=max(len(classes), 2), name="imagefolder", data_dir=root,
                     mean=mean, std=std)
    data.file_list = (train_paths, train_y)  # type: ignore[attr-defined]  # for file_list.txt
    return data


class FolderDataset(torch.utils.data.Dataset):
    """Streaming ImageFolder split: item i is ``(transform(image_i), label_i)``, ImageFolder order.

    For sets that do not fit in memory; wrap it in :class:`dataprune.WithIndex` so batches
    carry sample indices for the :class:`~dataprune.Recorder`.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], torch.Tensor] | None = None):
        self.root = split_dir(root, split)
        self.paths, self.labels, self.classes = folder_samples(root, split)
        transforms = require("torchvision.transforms", "FolderDataset")
        self.transform = transform or transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        with Image.open(self.root / self.paths[i]) as im:
            return self.transform(im.convert("RGB")), int(self.labels[i])
