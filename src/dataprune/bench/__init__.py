"""Benchmarks reproducing the paper's experiments at CPU scale (``dataprune bench``).

One engine runs every study: ``plan`` (and ``one_run_study``) say what a study runs (its cells,
each one training run with a key), ``engine`` loads the data in the study's regime (``noise``,
``regimes``), makes scoring runs and keep files, trains and resumes the cells and turns them
into rows, ``runner`` checks and locks the folder and runs it, ``tables``/``figures``/
``report`` turn finished cells into results.csv/json, table.md and the figures, and
``studies`` builds the main comparison and the scoring-cost study.
"""
from .engine import Bench
from .noise import noisy_removed_share, symmetric_label_noise
from .one_run_study import OneRunConfig, variants
from .ood import average_precision, msp_aupr
from .plan import BenchConfig, Scorer, Selector, TrainCell, Variant, matched_budgets
from .regimes import long_tail_indices
from .report import write_report
from .runner import report_only, run_bench
from .stats import aggregate, baseline_at, mean_std, ranks
from .studies import config_from_json, cost_config, main_config

__all__ = ["Bench", "BenchConfig", "OneRunConfig", "Scorer", "Selector", "TrainCell", "Variant", "aggregate",
           "average_precision", "baseline_at", "config_from_json", "cost_config", "long_tail_indices",
           "main_config", "matched_budgets", "mean_std", "msp_aupr", "noisy_removed_share", "ranks", "report_only",
           "run_bench", "symmetric_label_noise", "variants", "write_report"]
