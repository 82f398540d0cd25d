"""Deprecated: the data map moved to :mod:`dataprune.datamap`; ``dataprune.report.datamap`` re-exports it."""
