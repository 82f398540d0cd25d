"""Selection variants of a benchmark method, named ``METHOD+VARIANT`` in ``--methods``:

- ``METHOD+beta``: DUAL's Beta sampling (:func:`dataprune.select_beta`, c = 4, seed 0), mu =
  mean labelled-class probability over the same epochs the method scores (its ``epochs``).
- ``METHOD+ccs``: CCS (:func:`dataprune.select_stratified`, 50 strata, seed 0) after dropping
  the hardest ``beta`` fraction, beta per prune ratio as the CCS paper sets it (:data:`CCS_BETA`).
  The hardest are those with the lowest AUM in the scoring runs (mean over runs), as CCS
  defines them, whatever the method (``aum+ccs`` is CCS itself).

Without a variant the highest scores are kept. Sampling seeds are fixed (0): one subset per
(method, ratio), trained with every training seed, like the top-k subsets.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import DataPruneError
from ..select_rule import SelectionRule

VARIANTS = ("beta", "ccs")
#: CCS's hard-cutoff rate (fraction of the hardest samples dropped before stratifying) per
#: prune ratio: the CCS paper's CIFAR-10 settings (0 up to 50 %, 10 % at 70 and 80 %, 30 % at
#: 90 %; its README's 90 % example passes ``--mis-ratio 0.3``). A ratio between two entries
#: takes the entry at or below it.
CCS_BETA: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.7, 0.1), (0.8, 0.1), (0.9, 0.3))


def parse_spec(spec: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``"dual+beta"`` -> ``("dual", (("rule", "beta"), ("c", 4.0), ("seed", 0)))``; a plain
    method name -> ``(name, ())``."""
    method, plus, variant = spec.partition("+")
    if not plus:
        return spec, ()
    if variant == "beta":
        return method, (("rule", "beta"), ("c", 4.0), ("seed", 0))
    if variant == "ccs":
        return method, (("rule", "ccs"), ("beta", "ccs-paper"), ("strata", 50), ("seed", 0))
    raise DataPruneError(f"method {spec!r}: unknown selection variant {variant!r}; expected "
                         f"METHOD or METHOD+{' or METHOD+'.join(VARIANTS)}")


def ccs_beta(prune_ratio: float) -> float:
    """The CCS paper's hard-cutoff rate for ``prune_ratio`` (see :data:`CCS_BETA`)."""
    return max(b for r, b in CCS_BETA if r <= prune_ratio + 1e-12)


def rule_for(selection: Sequence[tuple[str, Any]], prune_ratio: float, params: dict[str, Any], *,
             class_balanced: bool = False) -> SelectionRule:
    """The :class:`~dataprune.select_rule.SelectionRule` of variant ``selection`` (from
    :func:`parse_spec`) at ``prune_ratio``, NaN scores pruned; ``params``: the method's
    parameters (Beta sampling's mean probability covers the same ``epochs``)."""
    opts = dict(selection)
    rule = opts.get("rule")
    if rule is None:
        return SelectionRule("top-k", class_balanced=class_balanced, nan_policy="prune")
    if rule == "beta":
        return SelectionRule("beta", seed=int(opts["seed"]), c=float(opts["c"]), epochs=params.get("epochs", 0),
                             nan_policy="prune")
    if rule == "ccs":
        beta = ccs_beta(prune_ratio) if opts["beta"] == "ccs-paper" else float(opts["beta"])
        return SelectionRule("stratified", seed=int(opts["seed"]), beta=beta, beta_by="aum", strata=int(opts["strata"]),
                             class_balanced=class_balanced, nan_policy="prune")
    raise DataPruneError(f"selection rule {rule!r}; expected one of {VARIANTS}")
