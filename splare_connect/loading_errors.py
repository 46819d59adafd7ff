"""transformers' loading errors as one-line CheckpointErrors, for every loader of a backbone's files.

The backbone (model, config) and the tokenizer are loaded in different modules, and both go
through transformers when a directory needs it; a missing file, a bad config or a model that
only loads by running its own code must read the same way from either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from splare_connect.errors import CheckpointError, SplareError


@contextlib.contextmanager
def loading_errors(location: str, trust_remote_code: bool) -> Iterator[None]:
    """Turn transformers' loading errors (model, config or tokenizer) into one-line CheckpointErrors."""
    try:
        yield
    except SplareError:
        raise  # already one line of ours (a CheckpointError is a ValueError too): not wrapped twice
    except (OSError, ValueError, KeyError) as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise CheckpointError(_remote_code_refused(location)) from exc
        raise CheckpointError(f"cannot load backbone {location!r}: {exc}") from exc


def _remote_code_refused(location: str) -> str:
    """The error for a backbone that only loads by running its own code, which was not allowed."""
    return (
        f"backbone {location!r} needs to run Python code shipped with it (an auto_map in its config.json), "
        "and remote code is off. Inspect that code first; to run it, pass trust_remote_code=True "
        "(CLI: --trust-remote-code). A setting in the model directory cannot allow it."
    )
