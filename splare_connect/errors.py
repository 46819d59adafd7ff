"""Exception types shared by the core, the adapters and the CLI.

Every error the library raises on purpose derives from :class:`SplareError`, so an
application can catch one type. Each subclass also derives from the built-in
exception a Python programmer would expect (``ValueError``, ``TypeError``,
``ImportError`` ...), so code that already catches those keeps working.
"""

from __future__ import annotations


class SplareError(Exception):
    """Root of every error raised on purpose by splare-connect."""


class ConfigError(SplareError, ValueError):
    """A configuration value is invalid or inconsistent; the message names the setting."""


class CheckpointError(SplareError, ValueError):
    """A model, SAE or adapter checkpoint is missing, malformed or of an unknown format."""


class BadInputError(SplareError, TypeError, ValueError):
    """An input has the wrong type or value (a non-string text, a NaN weight); the message names which.

    It is both a ``TypeError`` and a ``ValueError``, so code catching either keeps working.
    """


class MissingDependencyError(SplareError, ImportError):
    """An optional package is not installed; the message says what to ``pip install``."""


class BackendError(SplareError, RuntimeError):
    """A vector database refused or failed an operation."""


class CollectionNotFoundError(BackendError, LookupError):
    """The collection (or index) a search, a write or an attach names does not exist."""


class CollectionNotAttachedError(BackendError, LookupError):
    """The collection exists but splare-connect neither made it nor attached to it (it has no spec).

    The caller's mistake, not a database failure: attach to the collection first (the
    service answers 409). Still a ``BackendError``, so code that caught the old error keeps working.
    """


class PartialWriteError(BackendError):
    """Some records of a batch were refused while the others were written.

    Attributes:
        failures: ``(record id, reason)`` for each refused record.
    """

    def __init__(self, message: str, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        super().__init__(message)


class RecordsRejectedError(BackendError):
    """The database refused the data of a write, not the connection: the same records
    would be refused again, so the sync engine writes them apart to find the bad ones."""


class EncoderMismatchError(SplareError, ValueError):
    """Vectors or queries from one encoder were sent to a collection built by another."""


class BadRecordError(SplareError, ValueError):
    """A source record cannot be ingested; carries where it came from.

    Attributes:
        source: File name or other description of where the record came from.
        line: 1-based line number in ``source``, when the source is line-oriented.
        record_id: The record's id, when it could be read.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        record_id: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.record_id = record_id
        where = ":".join(str(part) for part in (source, line) if part is not None)
        text = f"{where}: {message}" if where else message
        # File names and messages can carry undecodable bytes (surrogate escapes); escape
        # them so the error can always be printed and logged.
        super().__init__(text.encode("utf-8", "backslashreplace").decode("utf-8"))
