"""Benchmarks reproducing the paper's experiments at CPU scale (``dataprune bench``).

``plan`` says what runs (scorers, selectors, cells and their keys), ``runner`` runs and
resumes it, ``noise``/``ood``/``stats`` hold the numerical pieces, ``tables``/``figures``/
``report`` turn finished cells into results.csv/json, table.md and the figures, and
``studies`` builds the main comparison and the scoring-cost study.
"""
from .noise import noisy_removed_share, symmetric_label_noise
from .ood import average_precision, msp_aupr
from .plan import BenchConfig, Scorer, Selector, TrainCell
from .report import write_report
from .runner import Bench, report_only, run_bench
from .stats import aggregate, mean_std, ranks
from .studies import cost_config, main_config

__all__ = ["Bench", "BenchConfig", "Scorer", "Selector", "TrainCell", "aggregate", "average_precision",
           "cost_config", "main_config", "mean_std", "msp_aupr", "noisy_removed_share", "ranks",
           "report_only", "run_bench", "symmetric_label_noise", "write_report"]
