"""One selection path: scores -> keep indices for every rule.

A :class:`SelectionRule` says how the kept samples are chosen from the scores (N,) (higher =
more worth keeping): ``"top-k"`` (:func:`~dataprune.select`, optionally class-balanced),
``"stratified"`` (CCS, :func:`~dataprune.select_stratified`), ``"beta"`` (DUAL's Beta
sampling, :func:`~dataprune.select_beta`) or ``"two-sided"`` (the likely mislabeled first,
then the lowest scores: :func:`~dataprune.mislabeled.select_two_sided`). :func:`rule_inputs`
reads what a rule needs besides the scores from the scoring runs (labels, difficulty, mean
probability, label evidence), :func:`select_by_rule` applies it. ``dataprune select``, the
bench engine and :class:`~dataprune.PruneAt` (``train --prune-at``) all select this way.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import DataPruneError
from .methods.difficulty import MEASURES, difficulty
from .methods.dual import mean_prob
from .mislabeled import estimate_noise_rate, label_evidence, select_two_sided, suspect_share
from .select import NAN_POLICIES, check_seed, kept_count, select, select_stratified
from .select_beta import select_beta

RULES = ("top-k", "stratified", "beta", "two-sided")


@dataclass(frozen=True)
class SelectionRule:
    """How scores become keep indices (see the module docstring for the rules).

    ``seed`` orders ties (top-k, two-sided) or seeds the sampling (stratified, beta);
    ``class_balanced`` keeps the same fraction of every class (top-k, stratified);
    ``nan_policy`` what NaN scores mean (``"raise"``, ``"prune"``, ``"keep"``; two-sided
    always prunes them). Stratified: ``beta`` (fraction of the hardest dropped first, by
    difficulty measure ``beta_by``) and ``strata``. Beta sampling: ``c`` (c_D) and ``epochs``
    (mean probability over the first T epochs, 0 = all).
    """

    rule: str = "top-k"
    seed: int = 0
    class_balanced: bool = False
    nan_policy: str = "raise"
    beta: float = 0.0
    beta_by: str = "aum"
    strata: int = 50
    c: float = 4.0
    epochs: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise DataPruneError(f"selection rule {self.rule!r}; expected one of {', '.join(RULES)}")
        if self.nan_policy not in NAN_POLICIES:
            raise DataPruneError(f"nan_policy={self.nan_policy!r}; expected one of {NAN_POLICIES}")
        check_seed(self.seed)
        if self.class_balanced and self.rule in ("beta", "two-sided"):
            raise DataPruneError(f"selection rule {self.rule!r} is not class-balanced; expected "
                                 "class_balanced=False")
        if self.rule == "two-sided" and self.nan_policy != "prune":
            raise DataPruneError(f"nan_policy={self.nan_policy!r} with the two-sided rule, which prunes "
                                 "NaN scores first; expected nan_policy='prune'")
        if self.beta_by not in MEASURES:
            raise DataPruneError(f"beta_by={self.beta_by!r}; expected one of {', '.join(MEASURES)}")

    def to_dict(self) -> dict[str, Any]:
        """The rule as a keep file's manifest records it (``selection``): its own fields only."""
        out: dict[str, Any] = {"class_balanced": self.class_balanced, "stratified": self.rule == "stratified"}
        if self.rule == "stratified":
            out.update(beta=self.beta, strata=self.strata, seed=self.seed)
            if self.beta:
                out["beta_by"] = self.beta_by
        elif self.rule == "beta":
            out.update(beta_sampling=True, beta_c=self.c, beta_seed=self.seed, mean_prob_epochs=self.epochs)
        else:
            out["tie_seed"] = self.seed
            if self.rule == "two-sided":
                out["two_sided"] = True
        return out


@dataclass(frozen=True)
class RuleInputs:
    """What a rule reads besides the scores, each (N,) or None: ``labels`` (class-balanced),
    ``difficulty`` (stratified with beta > 0; higher = harder), ``mean_prob`` (beta
    sampling), ``evidence`` (two-sided; low = likely mislabeled) with ``suspect_ratio`` (the
    share dropped as likely mislabeled) and ``noise_rate`` (the estimate it came from)."""

    labels: np.ndarray | None = None
    difficulty: np.ndarray | None = None
    mean_prob: np.ndarray | None = None
    evidence: np.ndarray | None = None
    suspect_ratio: float = 0.0
    noise_rate: float | None = None


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_by_rule`: ``keep`` (kept,) int64 sample indices,
    ascending, and ``facts`` the rule found on the way (two-sided: ``noise_rate_estimate``,
    ``suspects_dropped``), for the manifest."""

    keep: np.ndarray
    facts: dict[str, Any] = field(default_factory=dict)


def rule_inputs(rule: SelectionRule, runs: Sequence[Any]) -> RuleInputs:
    """What ``rule`` reads from ``runs`` (scoring runs' :class:`~dataprune.Dynamics`, one or
    more; several: their mean): labels of the first run; the mean of the runs' difficulty
    (``rule.beta_by``); the NaN-skipping mean of their mean probabilities over
    ``rule.epochs``; the first run's label evidence, the noise rate it shows and the suspect
    share the gate of :mod:`~dataprune.mislabeled` takes from it."""
    if not runs:
        raise DataPruneError("no scoring run given; expected at least one Dynamics")
    first = runs[0]
    labels = np.asarray(first.labels) if rule.class_balanced else None
    hard = mu = evidence = rate = None
    share = 0.0
    if rule.rule == "stratified" and rule.beta:
        hard = np.mean([difficulty(rule.beta_by, d) for d in runs], axis=0)
    if rule.rule == "beta":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a sample NaN in every run -> NaN
            mu = np.nanmean([mean_prob(d["prob"], rule.epochs) for d in runs], axis=0)
    if rule.rule == "two-sided":
        evidence = label_evidence(first["prob"])
        rate = estimate_noise_rate(evidence, first.num_classes)
        share = suspect_share(rate, "auto", first.epochs)
    return RuleInputs(labels=labels, difficulty=hard, mean_prob=mu, evidence=evidence, suspect_ratio=share,
                      noise_rate=rate)


def select_by_rule(scores: np.ndarray, rule: SelectionRule, prune_ratio: float | None = None, *,
                   keep: int | None = None, inputs: RuleInputs = RuleInputs()) -> Selection:
    """Keep N - round(r*N) (or ``keep``) samples of ``scores`` (N,) (higher = more worth
    keeping) by ``rule``, reading ``inputs`` (:func:`rule_inputs`). Beta sampling with
    ``keep`` uses the ratio r = (N - keep) / N; two-sided takes ``prune_ratio`` only."""
    if rule.rule == "top-k":
        return Selection(select(scores, prune_ratio, keep=keep, labels=inputs.labels,
                                class_balanced=rule.class_balanced, nan_policy=rule.nan_policy, seed=rule.seed))
    if rule.rule == "stratified":
        return Selection(select_stratified(scores, prune_ratio, keep=keep, beta=rule.beta,
                                           difficulty=inputs.difficulty, strata=rule.strata, seed=rule.seed,
                                           labels=inputs.labels, class_balanced=rule.class_balanced,
                                           nan_policy=rule.nan_policy))
    if rule.rule == "beta":
        n = len(np.asarray(scores))
        ratio = prune_ratio if keep is None else (n - kept_count(n, prune_ratio, keep)) / n
        if inputs.mean_prob is None:
            raise DataPruneError("Beta sampling needs mean_prob: (N,) mean labelled-class probabilities")
        return Selection(select_beta(scores, inputs.mean_prob, ratio, seed=rule.seed, c=rule.c,
                                     nan_policy=rule.nan_policy))
    if keep is not None or prune_ratio is None:
        raise DataPruneError(f"keep={keep!r}: the two-sided rule takes prune_ratio (the fraction removed)")
    if inputs.evidence is None:
        raise DataPruneError("the two-sided rule needs evidence: (N,) label evidence, low = likely mislabeled")
    kept, suspects = select_two_sided(scores, inputs.evidence, prune_ratio, inputs.suspect_ratio, seed=rule.seed)
    facts: dict[str, Any] = {"suspects_dropped": int(len(suspects))}
    if inputs.noise_rate is not None:
        facts["noise_rate_estimate"] = inputs.noise_rate
    return Selection(kept, facts)
