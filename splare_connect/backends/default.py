"""The backend a command uses when none is named: the one place the core names a backend.

It runs embedded (no server to set up), which is what the README's first two commands
need; ``--backend`` or ``$SPLARE_BACKEND`` picks any other installed one.
"""

from __future__ import annotations

DEFAULT_BACKEND = "qdrant"
