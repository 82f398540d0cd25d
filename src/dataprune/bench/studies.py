"""Ready-made benchmark configurations: the paper's comparison (``main``), the scoring
cost/accuracy study (``cost``) and, in :mod:`~dataprune.bench.one_run_study`, pruning inside one
run (``one-run``). All run through the one bench engine."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import DataPruneError
from ..methods import get, methods
from .one_run_study import STUDY as ONE_RUN
from .one_run_study import OneRunConfig
from .plan import BenchConfig, Scorer, Selector, StudyConfig
from .selection import parse_spec

STUDIES = ("main", "cost", ONE_RUN)
#: methods whose window is the benchmark's ``--window`` (Dyn-Unc's J)
WINDOWED = ("dyn-unc", "dual")


def resolve_methods(names: Sequence[str] | str) -> list[str]:
    """``"all"`` (every registered method, random first, dyn-unc last) or a list of names,
    each a method or ``METHOD+VARIANT`` (:mod:`dataprune.bench.selection`)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if list(names) == ["all"]:
        names = sorted(methods(), key=lambda m: (m != "random", m == "dyn-unc", m))
    for n in names:
        get(parse_spec(n)[0])
    if len(set(names)) != len(names):
        raise DataPruneError(f"methods {list(names)} repeat; expected each once")
    return list(names)


def method_params(method: str, window: int, overrides: Mapping[str, Mapping[str, Any]] | None = None
                  ) -> tuple[tuple[str, Any], ...]:
    """Parameters of ``method`` in a benchmark: ``window`` for dyn-unc and dual, the method's own
    defaults otherwise, then ``overrides[method]`` (checked against its signature)."""
    params: dict[str, Any] = {"window": window} if method in WINDOWED else {}
    given = dict((overrides or {}).get(method, {}))
    accepted = set(get(method).parameters)
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise DataPruneError(f"--method-param {method}.{unknown[0]}: method {method!r} takes "
                             f"{sorted(accepted) or 'no parameters'}")
    params.update(given)
    return tuple(sorted(params.items()))


def main_config(*, score_models: Sequence[str], methods_: Sequence[str] | str = "all", window: int = 10,
                score_epochs: int = 30, record_view: str = "clean", score_runs: int = 1,
                method_overrides: Mapping[str, Mapping[str, Any]] | None = None, **common: Any) -> BenchConfig:
    """Every method on the scoring run(s) of each ``score_models`` entry. With several
    scoring runs, methods use the mean of the runs' scores and ``dyn-unc (1 run)`` (run 0
    alone) is added for the paper's Table 7 ablation."""
    names = resolve_methods(methods_)
    scorers = [Scorer(m, m, score_epochs, record_view, score_runs) for m in dict.fromkeys(score_models)]
    selectors = []
    for sc in scorers:
        for m in names:
            method, selection = parse_spec(m)
            selectors.append(Selector(m, method, sc.id, method_params(method, window, method_overrides),
                                      selection=selection))
        if score_runs > 1 and "dyn-unc" in names:
            selectors.append(Selector("dyn-unc (1 run)", "dyn-unc", sc.id,
                                      method_params("dyn-unc", window, method_overrides), runs=(0,)))
    return BenchConfig(scorers=scorers, selectors=selectors, **common)


def cost_config(*, model: str = "small-cnn", proxy: str = "mlp", score_epochs: int = 30, window: int = 10,
                windows: Sequence[int] = (5, 10, 20), short_epochs: Sequence[int] = (10, 20),
                **common: Any) -> BenchConfig:
    """What scoring can be made to cost: Dyn-Unc subsets from cheaper scoring runs.

    Variants: the reference (``model``, K=``score_epochs``, clean view) with J in
    ``windows``; the train view (free: no extra forward); fewer scoring epochs K in
    ``short_epochs`` (J = min(window, K // 2), since J < K); a ``proxy`` model scoring for the
    train models; and random as the zero-cost baseline.
    """
    k = score_epochs
    ref = Scorer(f"{model}-K{k}-clean", model, k, "clean")
    scorers = [ref, Scorer(f"{model}-K{k}-train", model, k, "train")]
    scorers += [Scorer(f"{model}-K{e}-clean", model, e, "clean") for e in short_epochs if e != k]
    if proxy and proxy != model:
        scorers.append(Scorer(f"{proxy}-K{k}-clean", proxy, k, "clean"))
    selectors = [Selector("random", "random", ref.id)]
    for j in windows:
        selectors.append(Selector(f"dyn-unc J={j}, {ref.id}", "dyn-unc", ref.id, (("window", j),)))
    for sc in scorers[1:]:
        j = window if sc.epochs == k else min(window, sc.epochs // 2)
        selectors.append(Selector(f"dyn-unc J={j}, {sc.id}", "dyn-unc", sc.id, (("window", j),)))
    return BenchConfig(scorers=scorers, selectors=selectors, study="cost", **common)


def config_from_json(obj: dict[str, Any]) -> StudyConfig:
    """The config a ``bench.json`` holds: a one-run study's or a main/cost study's."""
    return OneRunConfig.from_json(obj) if obj.get("study") == ONE_RUN else BenchConfig.from_json(obj)
