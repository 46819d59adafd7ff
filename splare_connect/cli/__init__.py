"""The ``splare-connect`` command line: ingest, sync, attach, search, serve, collections, features, eval, train.

One module per command group (``ingest``, ``attach``, ``search``, ``serve``, ``collections``,
``features``, ``evaluate``, ``train``); ``common`` holds what they share. Heavy imports (torch, transformers,
database clients) happen inside the commands, so ``splare-connect --help`` is instant.
Every setting can come from an environment variable (shown in ``--help``); secrets such
as API keys are read by the backends from the environment only, never from arguments.

Exit status: 0 success; 1 error; 2 bad usage; 3 finished, but some records were
skipped (each one is reported on stderr with its file and line) or a deletion was
refused. Errors are one line on stderr, secrets redacted; ``SPLARE_DEBUG=1`` adds the
traceback of an unexpected one.
"""

from __future__ import annotations

import os
import sys

import typer

from splare_connect.cli import attach, backends, collections, evaluate, features, ingest, search, serve, train, tune
from splare_connect.cli.common import EXIT_SKIPPED, print_error, reflow_help, show_first_use_notes

__all__ = ["EXIT_SKIPPED", "app", "main"]

app = typer.Typer(
    name="splare-connect",
    help="SAE-latent learned-sparse retrieval in the vector databases you already run.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("sync")(ingest.sync)
app.command(
    "ingest",
    help="Encode and store new or changed documents; re-running skips unchanged ones. "
    "The same command as sync: add --delete-missing to also remove documents gone from the source.",
)(ingest.sync)
app.command("attach")(attach.attach)
app.command("search")(search.search)
app.command("serve")(serve.serve)
app.command("eval")(evaluate.eval_command)
app.command("tune")(tune.tune_command)
app.command("train")(train.train_command)
app.command("train-sae")(train.train_sae_command)
app.command("backends")(backends.backends_command)
app.add_typer(collections.app, name="collections")
app.add_typer(features.app, name="features")
reflow_help(app)
show_first_use_notes()


def main() -> None:
    """Console-script entry point: any error the commands did not expect is still one line.

    A traceback helps a developer, not a user, and its text may hold a secret (a URL
    with a password, a server's echo of request headers); ``SPLARE_DEBUG=1`` shows it.
    """
    try:
        app()
    except Exception as error:  # the last line of defence, by design
        if os.environ.get("SPLARE_DEBUG"):
            raise
        print_error(f"{type(error).__name__}: {error} (SPLARE_DEBUG=1 shows the traceback)")
        sys.exit(1)
