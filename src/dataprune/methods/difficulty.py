"""Difficulty measures: which samples are hardest (most likely mislabeled), for the ``beta``
drop of coverage-centric selection (CCS, :func:`~dataprune.select_stratified`).

CCS first removes the beta fraction of *hardest* samples, by AUM in its code (lowest AUM =
hardest). That is a property of the sample, not of the method that ranks the rest: with
Dyn-Unc scores the highest scores are the most uncertain samples, the ones Dyn-Unc values
most, so beta never drops by the method's own scores. Every measure here returns (N,)
float64 with **higher = harder**; NaN (never observed) is never dropped.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataPruneError, MissingSignalError
from ._common import observed_mean, signal
from ._registry import score

#: name -> (store signals it reads, what "hardest" means). The four scoring methods' own
#: scores are already higher = harder; ``confidence`` reads only ``prob`` (any store,
#: including one imported from the official code).
MEASURES: dict[str, tuple[tuple[str, ...], str]] = {
    "aum": (("margin",), "lowest AUM (mean of labelled logit - largest other logit) first; CCS's choice"),
    "forgetting": (("correct",), "most forgetting events first (never learned = most)"),
    "el2n": (("el2n",), "largest EL2N at the early epoch (round(0.1*K)) first"),
    "grand": (("grand",), "largest last-layer GraNd at the early epoch first"),
    "confidence": (("prob",), "lowest mean labelled-class probability over epochs first"),
}


def difficulty(name: str, dynamics: Any) -> np.ndarray:
    """Difficulty of every sample by measure ``name``, for the ``beta`` drop of
    :func:`~dataprune.select_stratified`.

    Parameters
    ----------
    name : str
        A measure of :data:`MEASURES`: ``"aum"``, ``"forgetting"``, ``"el2n"``, ``"grand"``
        or ``"confidence"``.
    dynamics : Any
        A :class:`~dataprune.Dynamics` with the signal the measure reads.

    Returns
    -------
    np.ndarray
        (N,) float64, higher = harder; NaN = never observed (never dropped).

    Raises
    ------
    DataPruneError
        Unknown measure.
    MissingSignalError
        The store lacks the signal the measure needs; the message names the measures it can
        use.
    """
    if name not in MEASURES:
        raise DataPruneError(f"difficulty measure {name!r}; expected one of {', '.join(MEASURES)}")
    needs, _ = MEASURES[name]
    recorded = list(getattr(dynamics, "signals", needs))
    lacking = [s for s in needs if s not in recorded]
    if lacking:
        usable = [m for m, (sig, _) in MEASURES.items() if set(sig) <= set(recorded)]
        raise MissingSignalError(
            f"difficulty measure {name!r} needs signal(s) {lacking}, which the store at "
            f"{getattr(dynamics, 'path', '?')} did not record (it has {recorded}); choose one it "
            f"can use ({', '.join(usable) or 'none'}) or record {', '.join(lacking)}")
    if name == "confidence":
        return -observed_mean(signal(dynamics, "prob"))
    return score(name, dynamics)
