"""What both Qdrant drivers share: the refusal of a collection splare-connect did not make."""

from __future__ import annotations

from splare_connect.backends.schema import SPEC_KEY


def not_ours_message(name: str, spec_key_taken: bool = False) -> str:
    """Why a collection splare-connect didn't make can't be synced or searched as it is, and what to do."""
    if spec_key_taken:
        return (
            f"collection {name!r} exists but was not created by splare-connect: its metadata key {SPEC_KEY!r} "
            "holds the application's own data, so splare-connect can neither use nor attach to it"
        )
    return (
        f"collection {name!r} exists but was not created by splare-connect (no {SPEC_KEY!r} metadata); "
        f"attach it first: splare-connect attach --text-field FIELD {name}"
    )
