"""The ``gaussian_linear`` validation task (sbibm)."""

from .model import GaussianLinear

__all__ = ["GaussianLinear"]
