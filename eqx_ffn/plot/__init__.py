"""Figures (matplotlib): each function returns the Figure and saves a PNG when given `path`."""

from ._plot import plot_confusion as plot_confusion
from ._plot import plot_fit_1d as plot_fit_1d
from ._plot import plot_loss as plot_loss
from ._plot import plot_parity as plot_parity
from ._plot import plot_residuals as plot_residuals
from ._plot import plot_surface_2d as plot_surface_2d
