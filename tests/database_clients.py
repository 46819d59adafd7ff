"""What the core must never import, read from the adapters in this checkout.

Shared by the layering test (tests/unit/test_package.py) and the tests that check a
command imports no database client (tests/service/test_service_cli.py).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Dependencies the adapters share with the core: not database clients.
SHARED_DEPENDENCIES = {"splare-connect", "tenacity", "numpy"}


def database_clients() -> set[str]:
    """Every adapter's package, and the modules its own dependencies install (the database
    clients), read from ``adapters/*/pyproject.toml``."""
    from importlib.metadata import packages_distributions

    import tomllib

    modules_of: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            modules_of.setdefault(re.sub(r"[-_.]+", "-", distribution).lower(), set()).add(module)
    clients = set()
    for pyproject in (REPO / "adapters").glob("*/pyproject.toml"):
        clients.update(path.parent.name for path in pyproject.parent.glob("splare_connect_*/__init__.py"))
        for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
            name = re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()
            if name not in SHARED_DEPENDENCIES:
                clients.update(modules_of.get(name, set()))
    return clients


DATABASE_CLIENTS = database_clients()
