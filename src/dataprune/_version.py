"""The package version (also ``dataprune.__version__``), importable by modules below the package."""
__version__ = "0.1.0"
