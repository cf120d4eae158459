"""``galsim_sources``: galaxy images (bulge + disk + star-forming knots) drawn with GalSim."""

from .model import GalSimSources

__all__ = ["GalSimSources"]
