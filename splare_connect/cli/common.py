"""What every command shares: consoles, option types, loading backends and models, printing errors.

Heavy imports (torch, transformers, database clients) happen inside the functions, so
``splare-connect --help`` stays instant.
"""

from __future__ import annotations

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


BackendOption = Annotated[
    str, typer.Option("--backend", "-b", envvar="SPLARE_BACKEND", help="Backend name (installed adapters).")
]
CollectionOption = Annotated[
    str, typer.Option("--collection", "-c", envvar="SPLARE_COLLECTION", help="Collection or index name.")
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="SPLARE_URL",
        help="Database URL. Without one, a backend reads its own variable, or runs embedded where it can "
        "(splare-connect backends).",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="SPLARE_DATA_DIR", help="Where the embedded engine stores collections."),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", envvar="SPLARE_MODEL", help="Model name or directory (default model if omitted)."),
]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        "--precision",
        envvar="SPLARE_PRECISION",
        help="Encoder arithmetic: auto (fp32), fp32, bf16 (faster where the CPU has bf16; the same vector space "
        "as fp32, slightly lower sparse quality), or int8 (torch's dynamic quantization; a vector space of its own).",
    ),
]
RuntimeOption = Annotated[
    Runtime,
    typer.Option(
        "--runtime",
        envvar="SPLARE_RUNTIME",
        help="What runs the encoder: auto (the compiled OpenVINO graph on a CPU, torch on a GPU), torch, or "
        "openvino (one compiled graph on the CPU; same vectors as torch at fp32; exported on first use and cached).",
    ),
]
StaticQueriesOption = Annotated[
    Path | None,
    typer.Option(
        "--static-queries",
        envvar="SPLARE_STATIC_QUERIES",
        help="A static query table built for the model (python -m splare_connect.training.static_queries): "
        "queries are encoded without a transformer (about 0.1 ms), at some quality cost; see docs/models.md.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="A .jsonl file (id/_id, text, ...), a .json array of such records, a .parquet file of them, "
        "or a directory of text files."
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        envvar="SPLARE_TIMEOUT",
        min=0.1,
        help="Seconds to wait for each request to a database server, or (with --server) for the whole answer "
        "(default 30).",
    ),
]
BackendOptionsOption = Annotated[
    list[str],
    typer.Option(
        "--backend-option",
        "-o",
        envvar="SPLARE_BACKEND_OPTIONS",
        help="A backend setting, KEY=VALUE (repeatable; the environment variable takes several, "
        "space-separated); each backend's are listed by splare-connect backends. "
        "Unknown keys are refused with the list of known ones.",
    ),
]
TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Let the model's backbone run Python code shipped in its directory. Only for models you trust; "
        "a model directory can never turn this on by itself.",
    ),
]
DenseOption = Annotated[
    bool | None,
    typer.Option("--dense/--no-dense", help="Also store dense embeddings (default: if the model has one)."),
]
IndexFieldOption = Annotated[list[str], typer.Option("--index-field", help="Metadata field to index for filters.")]
IdfOption = Annotated[bool, typer.Option(help="Weight query features by IDF in the engine.")]
StoreTextOption = Annotated[bool, typer.Option("--store-text/--no-store-text", help="Keep chunk text in the payload.")]
ShardOption = Annotated[str, typer.Option(help="Process shard i of n (i/n), for parallel workers.")]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Texts per encoder batch.")]


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
