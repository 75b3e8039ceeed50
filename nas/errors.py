"""`ConfigError`: bad input that the command line reports in one line with exit code 2.

Its own module, importing nothing, so that ``nas --help`` and ``nas status`` need neither torch nor Ray.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config or command-line input that cannot be used; ``str()`` names what is wrong and how to fix it."""
