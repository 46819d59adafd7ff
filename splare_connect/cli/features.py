"""``features``: build a model's feature dictionary, and read what its features mean."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import Precision, Runtime
from splare_connect.cli.common import (
    BackendOption,
    BackendOptionsOption,
    BatchSizeOption,
    CollectionOption,
    DataDirOption,
    JsonOption,
    ModelOption,
    RuntimeOption,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    format_features,
    load_encoder,
    open_early,
    opened_backend,
    print_json,
    print_line,
    stdout,
)
from splare_connect.errors import ConfigError, SplareError
from splare_connect.terminal import printable

app = typer.Typer(help="What the model's latent features mean: build, show and find them.", no_args_is_help=True)


@app.command("build")
def build(
    sources: Annotated[
        list[Path],
        typer.Argument(help="JSONL files (a 'lang' field gives the language) or directories of text files."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the dictionary.")],
    per_source: Annotated[int | None, typer.Option(min=1, help="Texts to take from each source at most.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=3, help="Tokens read per text (default: the model's window).")
    ] = None,
    batch_size: BatchSizeOption = 16,
    model: ModelOption = None,
    trust_remote_code: TrustRemoteCodeOption = False,
) -> None:
    """Label every feature of a model from a corpus (resumable: run it again to continue)."""
    from splare_connect.features.builder import build_dictionary, read_labelling_sources

    try:
        missing = [str(path) for path in sources if not path.exists()]
        if missing:
            raise ConfigError(f"no such source: {', '.join(missing)}")
        _make_output_directory(output)
        total = sum(1 for _ in read_labelling_sources(sources, per_source=per_source))
        encoder = load_encoder(model, Precision.FP32, trust_remote_code, Runtime.TORCH)
        dictionary = build_dictionary(
            encoder,
            read_labelling_sources(sources, per_source=per_source),
            output,
            sources=[path.name for path in sources],
            # A resumed build must read the same texts in the same order.
            source_state=[per_source, *([str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in sources)],
            total=total,
            batch_size=batch_size,
            max_tokens=max_tokens,
        )
    except SplareError as error:
        raise fail(error) from error
    counts = {status: 0 for status in ("labelled", "mixed", "rare")}
    for entry in dictionary.entries.values():
        counts[entry.status] += 1
    dead = dictionary.width - len(dictionary.entries)
    print_line(
        "features",
        f"{dictionary.width}: {counts['labelled']} labelled, {counts['mixed']} mixed, {counts['rare']} rare, "
        f"{dead} dead, from {dictionary.texts} texts; written to {output}",
    )


@app.command("show")
def show(
    text: Annotated[str, typer.Argument(help="The text to explain.")],
    top: Annotated[int, typer.Option(min=1, help="Features to list.")] = 10,
    document: Annotated[bool, typer.Option("--document", help="Encode it as a document, not a query.")] = False,
    model: ModelOption = None,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
) -> None:
    """A text's strongest features and what they mean."""
    try:
        encoder = load_encoder(model, Precision.FP32, trust_remote_code, runtime)
        features = encoder.explain(text, role="document" if document else "query", top=top)
    except SplareError as error:
        raise fail(error) from error
    if encoder.feature_dictionary is None:
        print_line("note", _no_dictionary(encoder.config.name))
    if as_json:
        print_json([f._asdict() for f in features])
        return
    for feature in features:
        stdout.print(f"{feature.weight:6.2f}  {feature.feature:>6}  {escape(printable(feature.label or ''))}")


@app.command("find")
def find(
    word: Annotated[str, typer.Argument(help="A word, in any language.")],
    limit: Annotated[int, typer.Option(min=1, help="Features to list.")] = 10,
    model: ModelOption = None,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
) -> None:
    """The features a word activates, strongest first, in any language.

    The word is encoded as a query, so any word works, seen in labelling or not; a
    feature that also keeps the word in its evidence is marked with *.
    """
    try:
        encoder = load_encoder(model, Precision.FP32, trust_remote_code, runtime)
        dictionary = encoder.feature_dictionary
        if dictionary is None:
            raise ConfigError(_no_dictionary(encoder.config.name))
        activated = encoder.explain(word, top=limit)
        in_evidence = {entry.feature for entry, _ in dictionary.find(word, limit=dictionary.width)}
    except SplareError as error:
        raise fail(error) from error
    if as_json:
        rows = [{**f._asdict(), "in_evidence": f.feature in in_evidence} for f in activated]
        print_json(rows)
        return
    for feature in activated:
        mark = "*" if feature.feature in in_evidence else " "
        stdout.print(f"{feature.weight:6.2f}  {feature.feature:>6}{mark} {escape(printable(feature.label or ''))}")


@app.command("why-not")
def why_not(
    query: Annotated[str, typer.Argument(help="The query text.")],
    record_id: Annotated[str, typer.Argument(help="The stored record (chunk id, e.g. 'man1/ls.1#0').")],
    top: Annotated[int, typer.Option(min=1, help="Features to list on each side.")] = 8,
    backend: BackendOption = DEFAULT_BACKEND,
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
) -> None:
    """Why a record did not match a query: the query's features it has, and those it lacks."""
    from splare_connect.retriever import Retriever

    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        open_early(store, collection, must_exist=True)
        encoder = load_encoder(model, Precision.FP32, trust_remote_code, runtime)
        report = Retriever(encoder, store, collection).explain_miss(query, record_id)
    stdout.print(f"score    {report.score:.3f} (sparse)")
    stdout.print(f"shared   {escape(format_features(report.shared[:top])) or 'none'}")
    stdout.print(f"missing  {escape(format_features(report.missing[:top])) or 'none'}")


def _make_output_directory(output: Path) -> None:
    """Create the dictionary's directory before the model loads, so a wrong ``--output`` is said at once.

    Raises:
        ConfigError: ``output`` is a file, or cannot be created (the message names it and why).
    """
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"--output {output} is a file, not a directory: the dictionary is a directory; "
            "choose a new path, or an existing dictionary to resume its build"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot write the feature dictionary to {output}: {error.strerror or error}; choose another --output"
        ) from None


def _no_dictionary(model: str) -> str:
    return (
        f"model {model!r} has no feature dictionary, so features have no labels; build one with: "
        "splare-connect features build CORPUS... -o MODEL_DIR/features"
    )
