"""The error hierarchy of sbi-astro.

Every error the library raises on bad input derives from :class:`SbiAstroError`, and its
message says what was wrong, what was expected and how to fix it.  The CLI prints such
messages as one paragraph, without a traceback.
"""

from __future__ import annotations


class SbiAstroError(Exception):
    """Base class of every error raised by sbi-astro on bad input or bad state."""


class ShapeError(SbiAstroError, ValueError):
    """A tensor has the wrong shape (e.g. ``theta`` whose last dimension is not ``D``)."""


class OutOfSupportError(SbiAstroError, ValueError):
    """A parameter vector lies outside the prior's support."""


class NonFiniteError(SbiAstroError, ValueError):
    """A tensor holds NaN or infinite values where finite numbers are required."""


class ConfigError(SbiAstroError, ValueError):
    """A configuration (options, study YAML, CLI flags) is invalid."""


class DataFormatError(SbiAstroError, ValueError):
    """A file is malformed, of a foreign format, or inconsistent with its companions."""


class UnknownSimulatorError(SbiAstroError, LookupError):
    """No simulator plugin of that name is registered."""


class PluginError(SbiAstroError, ImportError):
    """A registered simulator plugin could not be imported or is not a Simulator."""


class StoreError(SbiAstroError, RuntimeError):
    """A simulation store cannot be used as asked (mismatched campaign, missing rows...)."""


class NotAvailableError(SbiAstroError, NotImplementedError):
    """The simulator does not provide this capability (e.g. no tractable likelihood)."""


class ChunkError(SbiAstroError, RuntimeError):
    """A campaign chunk could not be simulated (its simulator raised, or it killed its
    workers); the message names the chunk, its rows and its parameter ranges."""
