"""The ``two_moons`` validation task (sbibm)."""

from .model import TwoMoons

__all__ = ["TwoMoons"]
