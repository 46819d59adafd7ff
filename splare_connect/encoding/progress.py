"""The progress bar of long encodes: on stderr, and only when someone can see it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]


def _no_progress(_count: int) -> None:
    return None


@contextmanager
def progress(total: int, show: bool | None, batch_size: int) -> Iterator[Advance]:
    """A context manager yielding ``advance(n)``, to call after each batch of ``n`` texts.

    Args:
        total: Texts to encode.
        show: ``True`` or ``False`` to decide; ``None`` shows a bar only for inputs of
            more than eight batches and when stderr is a terminal, so that logs and
            pipes stay clean.
        batch_size: Texts per batch (what "long" is measured in).

    Yields:
        The ``advance`` function; a no-op when no bar is shown. The bar is rich's,
        imported only when shown, and removed when encoding ends (``transient``).
    """
    wanted = show if show is not None else (total > 8 * batch_size and sys.stderr.isatty())
    if not wanted:
        yield _no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("encoding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("encode", total=total)
        yield lambda count: bar.advance(task, count)
