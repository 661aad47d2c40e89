"""Import contracts: arrows point down the layers, the emulator stands alone, the jobs layer has no UI.

The imports are read from the source with `ast` (every `import`, including those inside functions and under
TYPE_CHECKING), so a contract cannot be dodged by importing late.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "sluicegate"

# Each top-level unit of the package and its layer: a unit may import its own layer and the layers below,
# never a higher one. cli/serve -> jobs -> engine -> limits/retry/providers -> _models/_clock.
# A new unit must be placed here before its first test run; that is the point of the table. Units announced by
# the branches of this round are placed already (some do not exist yet); test_every_unit_has_a_layer checks
# that every real unit is here.
LAYERS: dict[str, int] = {
    # 0: values, errors, time and events that everything shares
    "_clock": 0,
    "_config": 0,
    "_environment": 0,
    "_errors": 0,
    "_events": 0,
    "_exceptions": 0,
    "_models": 0,
    "_stats": 0,
    "testing": 0,
    # 1: pure cores and the pieces the engine is built from
    "limits": 1,
    "pricing": 1,
    "providers": 1,
    "retry": 1,
    "sse": 1,
    "tokens": 1,
    "_breaker": 1,
    "_loop": 1,
    "_transport": 1,
    "_wire": 1,
    # 2: the engine and its peers that send requests
    "_attempt": 2,
    "_budget": 2,
    "_cost_guard": 2,  # holds the _budget
    "_dispatch": 2,
    "_gate": 2,
    "_item": 2,
    "_limiter_setup": 2,
    "_stream": 2,
    "_run": 2,
    "_sync": 2,
    "engine": 2,
    "integrations": 2,
    # 3: the public package, durable jobs over the engine, and the event sinks that render them
    "sluicegate": 3,
    "jobs": 3,
    "progress": 3,
    "ray": 3,
    # 4: the faces: the command line, the gateway, the report, the demo
    "cli": 4,
    "demo": 4,
    "report": 4,
    "serve": 4,
    "__main__": 5,
    # The emulator is an independent server: see test_emulator_imports_nothing_from_the_client.
    "emulator": 4,
}
# Units that may start the emulator in-process.
EMULATOR_USERS = {"cli", "demo", "emulator"}
# What the jobs layer must not import: it returns outcomes; the faces own displays.
UI_MODULES = ("rich", "sluicegate.progress")
# The modules of the batch routes: the only ones that read or write the job store's batch ledger.
BATCH_MODULES = {
    "sluicegate.jobs.batch_intents",
    "sluicegate.jobs.batch_runner",
    "sluicegate.jobs.batch_submit",
    "sluicegate.jobs.batch_service",
    "sluicegate.jobs.openai_batch",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@functools.cache
def _imports(module: str) -> frozenset[str]:
    """Every module `module` imports, relative imports resolved; `from pkg import sub` yields pkg.sub too."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in _modules()}
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names come from `target` itself
                found.add(target)
    return frozenset(found)


def _unit(module: str) -> str:
    """The top-level unit of a sluicegate module: "sluicegate" for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _edges() -> list[tuple[str, str]]:
    """(importer, imported) for every import of one sluicegate module by another."""
    return [
        (module, target)
        for module in _modules()
        for target in sorted(_imports(module))
        if target == "sluicegate" or target.startswith("sluicegate.")
    ]


def test_every_unit_has_a_layer() -> None:
    """Each top-level module and subpackage of sluicegate is placed in LAYERS, so the arrow check covers it."""
    units = {_unit(m) for m in _modules()}
    assert units - LAYERS.keys() == set(), "place the new unit in tests/test_architecture.py's LAYERS"


def test_arrows_point_down() -> None:
    """No module imports a unit of a higher layer (cli/serve -> jobs -> engine -> limits/retry -> _models)."""
    upward = [
        f"{a} -> {b}"
        for a, b in _edges()
        if _unit(a) in LAYERS and _unit(b) in LAYERS and LAYERS[_unit(b)] > LAYERS[_unit(a)]
    ]
    assert upward == []


def test_emulator_imports_nothing_from_the_client() -> None:
    """sluicegate.emulator imports only itself from sluicegate: no limits, engine, providers, jobs, retry..."""
    leaks = [f"{a} -> {b}" for a, b in _edges() if _unit(a) == "emulator" and _unit(b) != "emulator"]
    assert leaks == []


def test_only_the_faces_start_the_emulator() -> None:
    """The library (engine, jobs, limits, ...) never imports the emulator; the CLI and the demo start it."""
    users = {_unit(a) for a, b in _edges() if _unit(b) == "emulator"}
    assert users <= EMULATOR_USERS


def test_jobs_import_no_ui() -> None:
    """sluicegate.jobs imports neither rich nor sluicegate.progress: it returns outcomes, the CLI displays them."""
    found = [
        f"{module} -> {target}"
        for module in _modules()
        if _unit(module) == "jobs"
        for target in sorted(_imports(module))
        if any(target == ui or target.startswith(ui + ".") for ui in UI_MODULES)
    ]
    assert found == []


def test_only_batch_code_uses_the_batch_ledger() -> None:
    """The job store's batch ledger is imported by the batch routes alone: the online path never touches batches."""
    users = {a for a, b in _edges() if b == "sluicegate.jobs.batch_ledger"}
    assert users, "the ledger moved: update BATCH_MODULES and this test"
    assert users <= BATCH_MODULES


def test_the_library_never_imports_its_own_front_door() -> None:
    """Only the faces import names from the package root; library code imports the module that defines a name."""
    through_root = [a for a, b in _edges() if b == "sluicegate" and LAYERS[_unit(a)] < LAYERS["cli"]]
    assert through_root == []


def test_tests_mirror_src() -> None:
    """Each folder of tests/ is named after a unit of src/sluicegate (or bench/): no grab bags like tests/core/."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    units = {_unit(m) for m in _modules()} | {"bench"}
    assert folders - units == set(), "name each tests/ folder after the src/ unit it tests"


def test_the_walker_sees_late_and_relative_imports() -> None:
    """The import walker finds imports inside functions and resolves relative ones (else the contracts are blind)."""
    assert "sluicegate.emulator.messages" in _imports("sluicegate.emulator.batches")  # imported inside a function
    assert "sluicegate._models" in _imports("sluicegate.engine")  # `from ._models import ...`
