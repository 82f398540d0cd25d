"""Out-of-distribution detection with the maximum softmax probability (MSP), scored by AUPR.

As for ImageNet-O in the paper's Table 6 (Hendrycks et al.), the OOD samples are the
**positive** class and the detector's score is ``-MSP`` (less confident = more likely OOD);
chance level is the OOD share of the pooled set, e.g. 1797 / (1797 + 10000) = 15.2 % for
sklearn's digits against the Fashion-MNIST test split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataPruneError
from ..train.data import normalize, read_idx, find_idx

OOD_DATASETS = ("digits", "idx:DIR")


def average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision, by scikit-learn's
    ``sklearn.metrics.average_precision_score`` (needs ``dataprune[bench]``).

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds taken in decreasing
    order, where a sample is predicted positive when its score >= the threshold (tied
    scores enter together). Parameters: (M,) bool ``is_positive`` (at least one True) and
    (M,) float ``scores`` (higher = more likely positive). Example: scores [0.9, 0.8, 0.7],
    positives [T, F, T] -> P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3 = 0.833.
    """
    y = np.asarray(is_positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise DataPruneError(f"labels {y.shape} and scores {s.shape}; expected two (M,) arrays")
    if not y.any():
        raise DataPruneError("no positive sample; average precision needs at least one")
    if np.isnan(s).any():
        raise DataPruneError("scores contain NaN; expected finite scores")
    return float(_average_precision_score()(y, s))


def _average_precision_score():
    try:
        from sklearn.metrics import average_precision_score
    except ImportError:
        raise DataPruneError("the OOD AUPR needs scikit-learn: pip install 'dataprune[bench]' "
                             "(or scikit-learn)") from None
    return average_precision_score


def msp_aupr(msp_in: np.ndarray, msp_out: np.ndarray) -> float:
    """AUPR of MSP detection with OOD positive: in-distribution (M1,) and OOD (M2,) MSPs."""
    scores = -np.r_[np.asarray(msp_in, np.float64), np.asarray(msp_out, np.float64)]
    positive = np.r_[np.zeros(len(msp_in), bool), np.ones(len(msp_out), bool)]
    return average_precision(positive, scores)


def resize_uint8(images: np.ndarray, size: int) -> Tensor:
    """(M, H, W) or (M, C, H, W) images with values in 0..255 -> uint8 (M, C, size, size),
    bilinear (align_corners=False), rounded."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise DataPruneError(f"images have shape {tuple(x.shape)}; expected (M, H, W) or (M, C, H, W)")
    if x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def load_ood(name: str, *, size: int = 28, channels: int = 1) -> Tensor:
    """The OOD test images as uint8 (M, channels, size, size).

    ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 0..16 scaled to
    0..255, bilinear upsampling; no download). ``idx:DIR``: the test split (t10k) of any
    IDX folder, resized if needed.
    """
    _average_precision_score()  # the AUPR needs scikit-learn too: fail before any training
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataPruneError("--ood-dataset digits needs scikit-learn: pip install scikit-learn") from None
        x = resize_uint8(load_digits().images * (255.0 / 16.0), size)
    elif name.startswith("idx:"):
        folder = Path(name[4:])
        x = resize_uint8(read_idx(find_idx(folder, "t10k", "images")), size)
    else:
        raise DataPruneError(f"unknown OOD dataset {name!r}; expected one of {OOD_DATASETS}")
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise DataPruneError(f"OOD images have {x.shape[1]} channels; expected {channels}")
        x = x.expand(-1, channels, -1, -1).contiguous()
    return x


@torch.no_grad()
def max_softmax(model: nn.Module, x_uint8: Tensor, mean: float, std: float, batch_size: int = 1024
                ) -> np.ndarray:
    """(M,) float64 maximum softmax probability of ``model`` (eval mode) on uint8 images."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for a in range(0, len(x_uint8), batch_size):
            logits = model(normalize(x_uint8[a:a + batch_size].to(device), mean, std))
            out.append(torch.softmax(logits.float(), 1).amax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).double().numpy()
