"""What every command shares: consoles, option types, loading backends and models, printing errors.

Heavy imports (torch, transformers, database clients) happen inside the functions, so
``splare-connect --help`` stays instant.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from splare_connect.choices import Precision, Runtime
from splare_connect.errors import SplareError

if TYPE_CHECKING:
    from splare_connect.backends import Backend, CollectionSpec
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.features import FeatureWeight

EXIT_SKIPPED = 3

stdout = Console()
stderr = Console(stderr=True)


# Help panels: each is a table of its own in --help, sized to its own widest option
# names, so an 80-column terminal shows every name whole; a command's own options stay
# in the first panel ("Options") and the rarer shared ones go below it.
DATABASE_PANEL = "Database"
MODEL_PANEL = "Model"
STORED_PANEL = "What is stored"
TUNING_PANEL = "Search settings (default: the collection's)"

BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        envvar="SPLARE_BACKEND",
        help="Backend name (installed adapters).",
        rich_help_panel=DATABASE_PANEL,
    ),
]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        envvar="SPLARE_COLLECTION",
        help="Collection or index name.",
        rich_help_panel=DATABASE_PANEL,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="SPLARE_URL",
        help="Database URL; none: the backend's own variable, or its embedded engine (splare-connect backends).",
        rich_help_panel=DATABASE_PANEL,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="SPLARE_DATA_DIR",
        help="Where the embedded engine stores collections.",
        rich_help_panel=DATABASE_PANEL,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="SPLARE_MODEL",
        help="Model name or directory (default model if omitted).",
        rich_help_panel=MODEL_PANEL,
    ),
]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        "--precision",
        envvar="SPLARE_PRECISION",
        help="Encoder arithmetic; auto is fp32 (see docs/models.md).",
        rich_help_panel=MODEL_PANEL,
    ),
]
RuntimeOption = Annotated[
    Runtime,
    typer.Option(
        "--runtime",
        envvar="SPLARE_RUNTIME",
        help="What runs the encoder; auto: OpenVINO on a CPU, torch on a GPU.",
        rich_help_panel=MODEL_PANEL,
    ),
]
StaticQueriesOption = Annotated[
    Path | None,
    typer.Option(
        "--static-queries",
        envvar="SPLARE_STATIC_QUERIES",
        help="A static query table for the model: queries encoded without a transformer (docs/models.md).",
        rich_help_panel=MODEL_PANEL,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
SourceArgument = Annotated[
    Path,
    typer.Argument(help="A .jsonl, .json or .parquet file of records (id, text, ...), or a directory of text files."),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        envvar="SPLARE_TIMEOUT",
        min=0.1,
        metavar="<seconds>",
        help="Seconds per database request (default 30).",
        rich_help_panel=DATABASE_PANEL,
    ),
]
BackendOptionsOption = Annotated[
    list[str],
    typer.Option(
        "--backend-option",
        "-o",
        envvar="SPLARE_BACKEND_OPTIONS",
        metavar="<key=value>",
        help="A backend setting, e.g. replicas=0 (repeatable; each backend's: splare-connect backends --json).",
        rich_help_panel=DATABASE_PANEL,
    ),
]
TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run code from the model directory (trusted models only).",
        rich_help_panel=MODEL_PANEL,
    ),
]
IdfOption = Annotated[
    bool, typer.Option(help="Weight query features by IDF in the engine.", rich_help_panel=STORED_PANEL)
]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Texts per encoder batch.", rich_help_panel=MODEL_PANEL)]


class _FirstUseLines(logging.Handler):
    """Prints the library's first-use announcements as note lines on stderr (see :mod:`splare_connect.first_use`)."""

    def emit(self, record: logging.LogRecord) -> None:
        print_line("[dim]note:[/]", record.getMessage())


def show_first_use_notes() -> None:
    """Have the slow one-time steps (building the default model, compiling its graph) say so on stderr.

    stdout stays clean for ``--json``. The handler looks stderr up as it prints, so a test
    runner's captured stderr gets the lines too; installing it twice adds nothing.
    """
    from splare_connect.first_use import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, _FirstUseLines) for handler in logger.handlers):
        logger.addHandler(_FirstUseLines())


def reflow_help(app: typer.Typer) -> None:
    """Join the lines of each paragraph of every command's help, so Rich wraps it to the terminal.

    Typer keeps a docstring's line breaks after its first paragraph; a line wrapped at 100
    columns in the source is then cut in two on an 80-column terminal.
    """
    for command in app.registered_commands:
        text = command.help or (inspect.getdoc(command.callback) if command.callback else None)
        if text:
            command.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def open_backend(
    name: str,
    url: str | None,
    data_dir: Path | None,
    timeout: float | None = None,
    option_pairs: Sequence[str] = (),
) -> Backend:
    """The command's backend, from its location options and ``--backend-option`` settings.

    Commands call this before loading the model, so a wrong backend, option, URL or
    data directory is reported at once (see :meth:`BackendLocation.open`).
    """
    from splare_connect.backends.location import BackendLocation

    return BackendLocation.of(name, url, data_dir, timeout, option_pairs).open()


def load_encoder(
    model: str | None,
    precision: Precision | str = Precision.AUTO,
    trust_remote_code: bool = False,
    runtime: Runtime | str = Runtime.AUTO,
    *,
    lazy: bool = False,
    static_queries: Path | None = None,
) -> SplareEncoder:
    """The command's encoder; a note on stderr when it runs a slower path than expected.

    ``lazy``: load the graph or model at the first encode (an ingest with nothing new
    never loads it). ``static_queries``: a static query table's directory.
    """
    from splare_connect.encoding.encoder import SplareEncoder

    # transformers' loading bars are switched off around each load (quiet_loading); a
    # cached OpenVINO graph loads without torch or transformers at all.
    encoder = SplareEncoder.from_pretrained(
        model,
        precision=precision,
        runtime=runtime,
        trust_remote_code=trust_remote_code,
        lazy=lazy,
        static_queries=static_queries,
    )
    if encoder.runtime_note:
        print_line("[yellow]note:[/]", encoder.runtime_note)
    return encoder


def print_new_note(encoder: SplareEncoder, shown: str | None) -> None:
    """A lazy encoder's note, set when it loaded after the command began (``shown``: the one printed)."""
    if encoder.runtime_note and encoder.runtime_note != shown:
        print_line("[yellow]note:[/]", encoder.runtime_note)


def open_early(store: Backend, collection: str, *, must_exist: bool) -> CollectionSpec | None:
    """Reach the database and open the collection before the model loads (seconds).

    A missing collection, an unreachable server, or an embedded collection another
    process is using is then reported at once, not after the model has loaded.
    """
    spec = store.describe_collection(collection)
    if spec is not None:
        store.count(collection)
    elif must_exist:
        raise SplareError(f"collection {collection!r} does not exist")
    return spec


@contextmanager
def opened_backend(
    name: str, url: str | None, data_dir: Path | None, timeout: float | None, option_pairs: Sequence[str] = ()
) -> Iterator[Backend]:
    """A backend for one command: closed on every path, its errors printed as one line (exit 1)."""
    try:
        store = open_backend(name, url, data_dir, timeout, option_pairs)
        try:
            yield store
        finally:
            store.close()
    except SplareError as error:
        raise fail(error) from error


def fail(error: Exception) -> typer.Exit:
    print_error(str(error))
    return typer.Exit(1)


def print_error(message: str) -> None:
    """One line on stderr: secrets redacted, markup in the message shown as text."""
    print_line("[bold red]error:[/]", message)


def print_line(label: str, message: str) -> None:
    """``label message`` on stderr as one line: redacted, whitespace collapsed, markup escaped.

    Messages can carry a server's words or a record's id, which may hold secrets,
    newlines or Rich markup such as ``[/]``.
    """
    from splare_connect.redaction import safe_message
    from splare_connect.terminal import printable

    stderr.print(label, escape(printable(safe_message(message, limit=2000))), highlight=False, soft_wrap=True)


def print_json(data: object, default: Callable[[Any], Any] | None = None) -> None:
    """``data`` as highlighted JSON on stdout, its strings unable to drive the terminal.

    Used instead of ``Console.print_json``, which writes DEL, C1 controls and bidi
    characters from the data as they are (see :func:`splare_connect.terminal.printable_json`).
    """
    from rich.highlighter import JSONHighlighter
    from rich.text import Text

    from splare_connect.terminal import printable_json

    text = JSONHighlighter()(Text(printable_json(data, default=default)))
    text.no_wrap = True
    text.overflow = None
    stdout.print(text, soft_wrap=True)


def format_features(features: Sequence[FeatureWeight]) -> str:
    """Features on one line: ``copy / kopieren (6675) 1.01; ...``; the id alone when unlabelled.

    Labels come from a feature dictionary or a server: terminal controls in them are escaped.
    """
    from splare_connect.terminal import printable

    return "; ".join(
        f"{printable(f.label)} ({f.feature}) {f.weight:.2f}" if f.label else f"{f.feature}:{f.weight:.2f}"
        for f in features
    )
