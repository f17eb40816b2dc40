"""The project's exception hierarchy.

Every error a user can cause or meet (bad config, unreachable model, a cut input line)
derives from :class:`MedResearcherError`, so the CLI can print it as one clear line instead
of a traceback, and library users can catch the whole family at once.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "MedResearcherError"]


class MedResearcherError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(MedResearcherError):
    """The configuration is missing, malformed, or names something that does not exist."""


class InputError(MedResearcherError):
    """An input file is malformed; the message names the file, the line and the field."""
