"""Package surface: cheap import, pinned public names, import layering, backend discovery by entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import splare_connect
from splare_connect.backends import Backend, load_backend
from splare_connect.backends.discovery import available_backends
from splare_connect.errors import ConfigError, MissingDependencyError
from tests.database_clients import DATABASE_CLIENTS, REPO


def test_import_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, splare_connect, splare_connect.backends;"
        f"heavy = [m for m in {sorted({'torch', 'transformers'} | DATABASE_CLIENTS)!r} "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_names_are_pinned() -> None:
    assert sorted(splare_connect.__all__) == sorted(
        [
            "BackendError",
            "BadInputError",
            "CollectionNotAttachedError",
            "BadRecordError",
            "CheckpointError",
            "CollectionNotFoundError",
            "Condition",
            "ConfigError",
            "EncodeResult",
            "EncoderConfig",
            "EncoderMismatchError",
            "MissingDependencyError",
            "PartialWriteError",
            "RecordsRejectedError",
            "Retriever",
            "SearchHit",
            "SparseVector",
            "SplareEncoder",
            "SplareError",
            "Syncer",
            "__version__",
            "load_backend",
            "read_iterable",
            "read_source",
        ]
    )
    for name in splare_connect.__all__:
        assert getattr(splare_connect, name) is not None


# What the adapters must never import: torch and what loads it.
TORCH_STACK = {"torch", "transformers", "peft"}


def _package_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of one package."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every module ``name`` imports, anywhere in the file: top level, inside functions
    (lazy imports still run) and under ``TYPE_CHECKING``. ``from package import x``
    counts as importing ``package.x`` when that is a module, else ``package``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    """The core's and the adapters' modules, each with the modules it imports (any package)."""
    modules = _package_modules(REPO / "splare_connect")
    for adapter in sorted((REPO / "adapters").glob("*/splare_connect_*/__init__.py")):
        modules.update(_package_modules(adapter.parent))
    return {name: set(_imports(name, path, modules)) - {name} for name, path in modules.items()}


def _import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle among the graph's own modules, as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(path: list[str]) -> list[str] | None:
        state[path[-1]] = "open"
        for target in sorted(graph[path[-1]] & graph.keys()):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit([*path, target])):
                return cycle
        state[path[-1]] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit([name])):
            return cycle
    return None


def _top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_no_module_imports_one_that_imports_it_back(import_graph: dict[str, set[str]]) -> None:
    assert _import_cycle(import_graph) is None, " -> ".join(_import_cycle(import_graph) or [])
    assert _import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check sees cycles


def test_core_never_imports_adapters_or_database_clients(import_graph: dict[str, set[str]]) -> None:
    offenders = {
        name: sorted(_top_level(imported) & DATABASE_CLIENTS)
        for name, imported in import_graph.items()
        if name.split(".")[0] == "splare_connect" and _top_level(imported) & DATABASE_CLIENTS
    }
    assert offenders == {}


# Optional extras: which modules alone may import each one (directly; the rest import those lazily).
EXTRA_HOMES = {
    "ray": {"splare_connect.distributed.ray_ingest"},
    "fastapi": {"splare_connect.service.app", "splare_connect.service.auth", "splare_connect.service.limits"},
    "starlette": {"splare_connect.service.app", "splare_connect.service.auth", "splare_connect.service.limits"},
    "uvicorn": {"splare_connect.cli.serve", "splare_connect.service.connections"},
}


def test_optional_extras_are_imported_only_by_their_own_modules(import_graph: dict[str, set[str]]) -> None:
    """Ray and the web stack are extras: only their modules import them, and the CLI reaches
    them only inside the commands that need them (checked by the import test above)."""
    found = {
        extra: {name for name, imported in import_graph.items() if extra in _top_level(imported)}
        for extra in EXTRA_HOMES
    }
    assert {extra: names - EXTRA_HOMES[extra] for extra, names in found.items()} == {e: set() for e in EXTRA_HOMES}
    assert found["ray"], "the check must see the module that imports Ray"


def test_cli_help_imports_no_extra() -> None:
    code = (
        "import sys; from splare_connect.cli import app;"
        "print(sorted(m for m in ('ray', 'fastapi', 'uvicorn', 'starlette', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_adapters_never_import_torch(import_graph: dict[str, set[str]]) -> None:
    """Not directly, and not through a core module they import (lazy imports included)."""
    adapters = [name for name in import_graph if name.split(".")[0] != "splare_connect"]
    assert {name.split(".")[0] for name in adapters} >= {
        p.parent.name for p in REPO.glob("adapters/*/splare_connect_*/__init__.py")
    }
    offenders = {}
    for adapter in adapters:
        reached, todo = set(), [adapter]
        while todo:
            name = todo.pop()
            if name not in reached:
                reached.add(name)
                todo.extend(import_graph[name] & import_graph.keys())
        heavy = {name: sorted(_top_level(import_graph[name]) & TORCH_STACK) for name in reached}
        if any(heavy.values()):
            offenders[adapter] = {name: found for name, found in heavy.items() if found}
    assert offenders == {}


@pytest.fixture
def third_party_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a backend the way a third-party distribution would: dist-info + entry point."""
    package = tmp_path / "toy_backend.py"
    package.write_text(
        "class ToyBackend:\n"
        "    def __init__(self, **options): self.options = options\n"
        + "".join(
            f"    def {name}(self, *a, **k): return None\n"
            for name in (
                "create_collection",
                "describe_collection",
                "list_collections",
                "drop_collection",
                "upsert",
                "delete",
                "search",
                "hybrid_search",
                "close",
                "iter_payloads",
                "count",
                "finalize",
                "fetch_sparse",
            )
        )
        + "def create(**options): return ToyBackend(**options)\n"
        + "def broken(**options): return object()\n"
    )
    dist_info = tmp_path / "toy_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[splare_connect.backends]\ntoy = toy_backend:create\nbroken = toy_backend:broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("third_party_backend")
def test_third_party_backend_is_found_by_entry_point() -> None:
    assert "toy" in available_backends()
    backend = load_backend("toy", url="http://example.invalid")
    assert isinstance(backend, Backend)
    assert backend.options == {"url": "http://example.invalid"}  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="does not implement the Backend protocol"):
        load_backend("broken")


def test_missing_backend_says_what_to_install() -> None:
    with pytest.raises(MissingDependencyError, match=r"backend 'nosuchdb' is not installed .*splare-connect-nosuchdb"):
        load_backend("nosuchdb")


def _code_lines_naming(root: Path, names: set[str]) -> list[str]:
    """``file:line`` of every line of code under ``root`` naming one of ``names``; comments and
    docstrings (a statement that is only a string) aside."""
    import io
    import re
    import tokenize

    pattern = re.compile("|".join(re.escape(name) for name in sorted(names)), re.IGNORECASE)
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        prose = set()
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                prose.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT and token.start[0] not in prose and pattern.search(token.string):
                found.append(f"{path.relative_to(REPO)}:{token.start[0]}")
    return sorted(set(found))


def test_the_core_names_no_backend() -> None:
    """Adding a backend is one folder: the core reads records, and names only its default.

    The integrations wrapping a framework's own store (langchain-qdrant's, LlamaIndex's and
    Haystack's Qdrant stores) are the exception the design allows.
    """
    from splare_connect.backends.discovery import installed_descriptors

    names = {record.name for record in installed_descriptors()}
    assert len(names) >= 2
    allowed = ("splare_connect/integrations/", "splare_connect/backends/default.py")
    offenders = [line for line in _code_lines_naming(REPO / "splare_connect", names) if not line.startswith(allowed)]
    assert offenders == []
    assert _code_lines_naming(REPO / "splare_connect" / "backends", names) == ["splare_connect/backends/default.py:9"]
