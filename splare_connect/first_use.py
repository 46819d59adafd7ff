"""One line before a slow step that happens once: building a registered model, compiling its graph.

Without it the first command sits silent for half a minute and looks hung. The library
only logs the line (logger ``splare_connect.first_use``, level INFO), since where to show it
is the application's choice: the CLI prints it on stderr, keeping stdout for its output
(``--json``); a program sees it with ``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "splare_connect.first_use"
_LOGGER = logging.getLogger(LOGGER_NAME)


def announce(message: str) -> None:
    """Say, before it starts, that a slow one-time step is about to run."""
    _LOGGER.info(message)
