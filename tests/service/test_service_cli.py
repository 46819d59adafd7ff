"""``splare-connect search --server``: the same results as a local search, without loading the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from splare_connect.cli import app
from splare_connect.testing.service import API_KEY, COLLECTION, RunningServer, free_port
from tests.database_clients import DATABASE_CLIENTS

# What a search on a server must not import: the model's stack, any database client, a web framework.
HEAVY = sorted({"torch", "transformers", "fastapi", "uvicorn"} | DATABASE_CLIENTS)
# Runs the real console entry point in a fresh interpreter, then reports what it imported.
PROBE = f"""
import json, sys
from splare_connect.cli import main
sys.argv = ["splare-connect", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def run_cli(*args: str, api_key: str | None = API_KEY) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    env = {key: value for key, value in os.environ.items() if key != "SPLARE_API_KEY"}
    if api_key is not None:
        env["SPLARE_API_KEY"] = api_key
    env["COLUMNS"] = "200"
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return result, report


def test_search_server_prints_the_local_hits_and_loads_no_model(server: RunningServer, search_retriever) -> None:  # type: ignore[no-untyped-def]
    query = "copy files to another host"
    result, report = run_cli(
        "search", query, "--server", server.url, "-c", COLLECTION, "-k", "4", "--json", "--explain"
    )
    assert report["code"] == 0, result.stderr
    assert report["heavy"] == []  # no torch, no database client, no web framework
    rows = json.loads(result.stdout)
    expected = search_retriever.search(query, k=4, explain=True)
    assert [r["id"] for r in rows] == [h.id for h in expected]
    assert [r["score"] for r in rows] == [float(h.score) for h in expected]
    assert [[f[0] for f in r["features"]] for r in rows] == [[f.feature for f in h.features] for h in expected]
    assert set(rows[0]) == {"id", "doc_id", "score", "text", "metadata", "features"}
    # How fast it answers is a benchmark's figure (BENCHMARKS.md), not this test's.


def test_search_server_table_and_envvar(server: RunningServer, search_retriever) -> None:  # type: ignore[no-untyped-def]
    env = {"SPLARE_SERVER": server.url, "SPLARE_API_KEY": API_KEY, "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["search", "list directory contents", "-c", COLLECTION, "-k", "3"], env=env)
    assert result.exit_code == 0, result.output
    for hit in search_retriever.search("list directory contents", k=3):
        assert hit.doc_id in result.stdout


def test_search_server_errors_are_one_line(server: RunningServer) -> None:
    runner = CliRunner()
    cases = [
        (["--server", f"http://127.0.0.1:{free_port()}"], API_KEY, "cannot reach the service"),
        (["--server", server.url], "wrong-key", "the service refused the API key: set SPLARE_API_KEY"),
        (
            ["--server", server.url, "-c", "nowhere"],
            API_KEY,
            "the service answered 404: collection 'nowhere' does not exist",
        ),
        (["--server", server.url, "-f", "bad filter"], API_KEY, "cannot parse filter"),
        (["--server", "ftp://example.invalid"], API_KEY, "the service URL must look like http://host:port"),
    ]
    for options, key, message in cases:
        args = ["search", "list files", "-c", COLLECTION, *options]
        result = runner.invoke(app, args, env={"SPLARE_API_KEY": key, "COLUMNS": "300"})
        assert result.exit_code == 1, (options, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.stderr
        assert key not in result.output
