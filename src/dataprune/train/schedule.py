"""The one learning-rate schedule of every dataprune training: linear warm-up, then cosine
decay towards zero, as a function of *progress* through the run.

Progress is measured in epochs of the full run, so an epoch of any size (a pruned subset,
InfoBatch's per-epoch subsets) gets the learning rates it would get in the full run. A
*budget* B compresses the whole curve (warm-up included) into ``round(B x full steps)``
optimizer steps: the matched-compute baseline "all data for B of the steps".

For one's own loop (steps counted from 0)::

    steps = dp.budget_steps(0.7, epochs=10, steps_per_epoch=len(loader))
    sched = dp.budget_schedule(optimizer, steps, warmup_steps=0.7 * len(loader))  # torch LambdaLR
    # call sched.step() after each optimizer.step(); stop after `steps` steps
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..errors import DataPruneError


def lr_factor(progress: float, step: float, total: float, warmup: float) -> float:
    """The LR multiplier at progress p: linear warm-up, then cosine decay towards 0.

    - p < W: ``(p + step) / (W + step)`` (linear ramp; the first step gets step/(W+step) > 0);
    - else: ``0.5 * (1 + cos(pi * (p - W) / max(step, total - W)))`` (cosine towards 0).

    Hand case: total 4 steps, warm-up 2, step 1 -> factors 1/3, 2/3, 1, 1/2.

    Parameters
    ----------
    progress : float
        p, 0 <= p < ``total``, in epochs (or steps).
    step : float
        The length of one optimizer step in the same unit (1 for steps).
    total : float
        The run's length in the same unit.
    warmup : float
        W, the warm-up length in the same unit.

    Returns
    -------
    float
        The factor that multiplies the base learning rate.
    """
    if progress < warmup:
        return (progress + step) / (warmup + step)
    return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / max(step, total - warmup)))


def check_budget(budget: Any) -> float:
    """``budget`` as a float in (0, 1]; a one-line error otherwise (0, 1.5, nan, inf, text)."""
    ok = isinstance(budget, (int, float)) and not isinstance(budget, bool) and 0 < budget <= 1
    if not ok:
        raise DataPruneError(f"budget={budget!r}; expected a fraction 0 < B <= 1 of the full run's "
                             "optimizer steps")
    return float(budget)


def budget_steps(budget: float, epochs: int, steps_per_epoch: int) -> int:
    """Optimizer steps of a run with budget B: ``round(B * epochs * steps_per_epoch)``, at least 1.

    E.g. B = 0.7, 10 epochs of 235 steps -> 1645.

    Parameters
    ----------
    budget : float
        B, the fraction 0 < B <= 1 of the full run's optimizer steps.
    epochs : int
        The full run's epochs, >= 1.
    steps_per_epoch : int
        Optimizer steps per full epoch, >= 1.

    Returns
    -------
    int
        The number of optimizer steps.

    Raises
    ------
    DataPruneError
        ``budget`` outside (0, 1], or ``epochs``/``steps_per_epoch`` not an integer >= 1.
    """
    budget = check_budget(budget)
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataPruneError(f"{name}={value!r}; expected an integer >= 1")
    return max(1, round(budget * epochs * steps_per_epoch))


def budget_lr_lambda(total_steps: int, warmup_steps: float) -> Callable[[int], float]:
    """``step -> LR factor`` over exactly ``total_steps`` steps (for ``torch.optim.lr_scheduler.LambdaLR``).

    Parameters
    ----------
    total_steps : int
        The run's optimizer steps, >= 1.
    warmup_steps : float
        Warm-up over the first ``warmup_steps`` (may be fractional, 0..total_steps); then
        cosine to the last step.

    Returns
    -------
    Callable[[int], float]
        The step's :func:`lr_factor`.

    Raises
    ------
    DataPruneError
        ``total_steps`` not an integer >= 1, or ``warmup_steps`` outside 0..total_steps.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise DataPruneError(f"total_steps={total_steps!r}; expected an integer >= 1")
    if not (isinstance(warmup_steps, (int, float)) and 0 <= warmup_steps <= total_steps):
        raise DataPruneError(f"warmup_steps={warmup_steps!r}; expected 0 <= warmup_steps <= {total_steps}")
    return lambda s: lr_factor(float(s), 1.0, float(total_steps), float(warmup_steps))


def budget_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_steps: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """torch's ``LambdaLR`` giving :func:`lr_factor` over ``total_steps`` steps (see :func:`budget_lr_lambda`).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer whose learning rates are scaled.
    total_steps : int
        The run's optimizer steps, >= 1 (e.g. :func:`budget_steps`).
    warmup_steps : float
        Warm-up steps, may be fractional (default 0.0).

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
        Call its ``.step()`` after every ``optimizer.step()``.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, budget_lr_lambda(total_steps, warmup_steps))


class ProgressSchedule:
    """Applies :func:`lr_factor` to ``optimizer`` at progress ``p = epoch + batch / batches``
    of a run of ``epochs`` epochs (float: a budget run's ``steps / steps_per_epoch``) with
    ``warmup`` warm-up epochs.

    Call :meth:`start_epoch` before each epoch (with its number of batches) and :meth:`step`
    after each optimizer step; without ``start_epoch`` calls, epochs of ``batches`` batches
    follow each other (the per-step schedule of a run of equal epochs).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: float, warmup: float, batches: int = 1) -> None:
        self.optimizer, self.epochs, self.warmup = optimizer, float(epochs), min(float(warmup), float(epochs))
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]  # as torch's
        self.epoch, self.batch, self.batches = 0, 0, max(1, batches)
        self._apply()

    @classmethod
    def for_run(cls, optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: float, *,
                steps_per_epoch: int = 1, steps: int | None = None) -> "ProgressSchedule":
        """The schedule of an ``epochs``-epoch run, or, given ``steps`` (a budget run's total),
        the same curve compressed into ``steps`` steps of ``steps_per_epoch``-step epochs."""
        scale = 1.0 if steps is None else steps / (epochs * steps_per_epoch)
        return cls(optimizer, epochs * scale, min(warmup_epochs, epochs) * scale, steps_per_epoch)

    def factor(self) -> float:
        return lr_factor(self.epoch + self.batch / self.batches, 1.0 / self.batches, self.epochs, self.warmup)

    def _apply(self) -> None:
        f = self.factor()
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.epoch, self.batch, self.batches = epoch, 0, max(1, batches)
        self._apply()

    def step(self) -> None:
        self.batch += 1
        if self.batch == self.batches:
            self.epoch, self.batch = self.epoch + 1, 0
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "batches": self.batches, "base_lrs": self.base_lrs,
                "epochs": self.epochs, "warmup": self.warmup}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch, self.batches = int(state["epoch"]), int(state["batch"]), int(state["batches"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self.epochs, self.warmup = float(state["epochs"]), float(state["warmup"])
        self._apply()
