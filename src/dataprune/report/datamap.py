"""Deprecated alias of :mod:`dataprune.datamap`, where the data map now lives."""
import warnings

from ..datamap import (count_colorbar, count_colors, datamap_coordinates, datamap_figure, plot_datamap, pyplot,
                       save_datamap, zoom_box)

warnings.warn("dataprune.report.datamap is deprecated; import dataprune.datamap instead", DeprecationWarning,
              stacklevel=2)

__all__ = ["count_colorbar", "count_colors", "datamap_coordinates", "datamap_figure", "plot_datamap", "pyplot",
           "save_datamap", "zoom_box"]
