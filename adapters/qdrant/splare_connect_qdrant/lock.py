"""One process at a time per embedded collection: an advisory lock file in its directory.

Qdrant Edge is an in-process engine: its shard has no server to arbitrate between
processes. Edge locks its WAL, but a second process only learns ``Can't init WAL:
Kind(WouldBlock)``, and deleting a collection ignores the lock altogether. So the
backend takes this lock before it opens a shard or deletes a collection, and holds it
until it closes: a contender gets a sentence naming the holder instead.

``flock`` is used rather than ``fcntl.lockf``: the kernel releases it when the holder
dies, ``kill -9`` included, so a crashed ingest never leaves a stale lock; and it
belongs to the open file, so a second backend in the same process conflicts too (as
Edge's own WAL lock does). Where ``fcntl`` is missing (Windows) the lock is a no-op and
Edge's own error is translated instead (see :func:`in_use_message`).
"""

from __future__ import annotations

import os
from pathlib import Path

from splare_connect.errors import BackendError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "lock"
_ATTEMPTS = 3


def in_use_message(name: str, pid: int | None, *, dropping: bool = False) -> str:
    """The one-line refusal a contender gets; ``pid`` is the holder's when known."""
    if pid is not None and pid == os.getpid():
        holder = f"another backend in this process (pid {pid})"
        rule = "the embedded engine allows one open backend per collection: close the other one first"
    else:
        holder = "another process" + (f" (pid {pid})" if pid is not None else "")
        rule = "the embedded engine allows one process per collection: wait for it to finish"
    refusal = "; nothing was deleted" if dropping else ""
    return (
        f"collection {name!r} is in use by {holder}{refusal}; {rule}, "
        "or use a Qdrant server (--url) for parallel writers and readers"
    )


class CollectionLock:
    """An exclusive, non-blocking ``flock`` on ``<collection dir>/lock`` holding the holder's PID.

    Args:
        folder: The collection's directory (must exist before :meth:`acquire`).
        name: The collection's name, for messages.
        file_name: The lock file's name (an attached app's shard gets a namespaced one).
    """

    def __init__(self, folder: Path, name: str, file_name: str = LOCK_FILE) -> None:
        self.path = folder / file_name
        self.name = name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, *, dropping: bool = False) -> None:
        """Take the lock, or raise :class:`BackendError` naming the process that has it.

        Raises:
            BackendError: Another process (or another backend in this one) holds it.
            OSError: The lock file can't be created (the caller names the path).
        """
        if fcntl is None or self._fd is not None:
            return
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BackendError(in_use_message(self.name, self.holder_pid(), dropping=dropping)) from None
            except BaseException:
                os.close(fd)
                raise
            if self._is_current(fd):
                self._fd = fd
                _write_pid(fd)
                return
            # The file was deleted (the collection dropped) between open and flock: retry on the new one.
            os.close(fd)
        raise BackendError(f"collection {self.name!r} is being dropped and re-created by another process; try again")

    def release(self) -> None:
        """Drop the lock (closing the file releases it); harmless when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def holder_pid(self) -> int | None:
        """The PID the current holder wrote, or None when unknown (meaningful only while it's held)."""
        try:
            return int(self.path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at :attr:`path` (and not one a drop unlinked)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)

    def __del__(self) -> None:
        # A backend dropped without close() must not keep its collection locked.
        self.release()


def _write_pid(fd: int) -> None:
    """Record the holder's PID; written before truncating, so a reader never sees an empty file."""
    data = f"{os.getpid()}\n".encode("ascii")
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


__all__ = ["LOCK_FILE", "CollectionLock", "in_use_message"]
