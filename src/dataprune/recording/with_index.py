"""The dataset wrapper that hands each sample's index to the training loop with its item."""
from __future__ import annotations

from typing import Any, Sequence

import torch


class WithIndex(torch.utils.data.Dataset):
    """Wrap a dataset so item ``i`` becomes ``(*base[i], i)``: the sample index rides along.

    Parameters
    ----------
    base : Sequence[Any]
        The dataset; a tuple item gets the index appended, any other item ``x`` becomes
        ``(x, i)``.
    """

    def __init__(self, base: Sequence[Any]):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple:
        item = self.base[i]
        return (*item, i) if isinstance(item, tuple) else (item, i)
