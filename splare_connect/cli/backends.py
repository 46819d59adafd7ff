"""``backends``: the installed backends, as their records describe them.

What each backend needs (its URL and secret variables), what runs without a URL, what
it can do (attach, which fusions) and the ``--backend-option`` keys it takes, read from
the records the adapters publish (:mod:`splare_connect.backends.descriptor`): nothing
here knows a backend by name.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.cli.common import JsonOption, print_json, stdout
from splare_connect.terminal import printable


def describe(record: BackendDescriptor) -> dict[str, Any]:
    """One record as plain data (for ``--json``)."""
    kinds = record.capabilities
    return {
        "name": record.name,
        "default": record.name == DEFAULT_BACKEND,
        "distribution": record.distribution,
        "summary": record.summary,
        "without_url": record.without_url,
        "url_env": record.url_env,
        "secret_env": list(record.secret_env),
        "basic_auth_env": list(record.basic_auth_env or ()),
        "options": {key: option.help for key, option in sorted(record.options.items())},
        # Every capability the record declares, fusions as sorted names (a new field shows up by itself).
        "capabilities": {
            **asdict(kinds),
            "fusions": sorted(str(f) for f in kinds.fusions),
            "weighted_fusions": sorted(str(f) for f in kinds.weighted_fusions),
        },
    }


def backends_command(as_json: JsonOption = False) -> None:
    """List the installed backends: what each needs, runs without a URL, and can do."""
    from splare_connect.backends.discovery import installed_descriptors

    records = [describe(record) for record in installed_descriptors()]
    if as_json:
        print_json(records)
        return
    table = Table("backend", "without a URL", "URL from", "secrets from", "attach", "fusion")
    for record in records:
        kinds = record["capabilities"]
        fusions = [f + (" (weighted)" if f in kinds["weighted_fusions"] else "") for f in kinds["fusions"]]
        table.add_row(
            printable(record["name"] + (" (default)" if record["default"] else "")),
            printable(record["without_url"] or "nothing: a URL is required"),
            printable("$" + record["url_env"] if record["url_env"] else "--url only"),
            printable(", ".join("$" + name for name in record["secret_env"]) or "none"),
            "yes" if kinds["attachable"] else "no",
            ", ".join(fusions),
        )
    stdout.print(table)
    stdout.print("Each backend's --backend-option keys, and all it declares: splare-connect backends --json")
