"""Figures and tables (matplotlib is an optional extra: ``pip install dataprune[plot]``)."""
