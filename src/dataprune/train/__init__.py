"""Reference training: datasets, in-memory loader, models."""
