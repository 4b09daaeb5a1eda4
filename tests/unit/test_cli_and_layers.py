"""The command line, and the import direction of the package (services never see Rasa/tools)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, func, select

from tandem.cli import main
from tandem.db.models import Booking, Customer, Flight

PACKAGE = Path(__file__).resolve().parents[2] / "tandem"


def test_cli_migrate_seed_and_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_file = tmp_path / "var" / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("SCHEDULE_DAYS", "7")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SEED_DEMO_DATA", raising=False)
    assert main(["migrate"]) == 0
    assert main(["seed"]) == 0  # what a deployment needs: airports and schedule, no demo data
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Flight)) == 7 * 112
            assert conn.scalar(select(func.count()).select_from(Booking)) == 0
            assert conn.scalar(select(func.count()).select_from(Customer)) == 0
        assert main(["seed", "--demo"]) == 0
        assert main(["seed", "--demo"]) == 0  # idempotent
        with engine.connect() as conn:
            # The 7-day window plus the three seeded bookings' flights further out.
            assert conn.scalar(select(func.count()).select_from(Flight)) == 7 * 112 + 3
            assert conn.scalar(select(func.count()).select_from(Booking)) == 4
            conn.execute(delete(Booking).where(Booking.reference == "AB12CD"))
            conn.commit()
        assert main(["reset-db"]) == 2  # refuses without --yes
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Booking)) == 3
        assert main(["reset-db", "--yes"]) == 0
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Booking)) == 0
        monkeypatch.setenv("SEED_DEMO_DATA", "true")  # the environment's switch, as in make run
        assert main(["reset-db", "--yes"]) == 0
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Booking)) == 4
            assert conn.scalar(select(func.count()).select_from(Flight)) == 7 * 112 + 3
    finally:
        engine.dispose()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", ["services", "db"])
def test_lower_layers_do_not_import_upper_ones(folder: str) -> None:
    forbidden = ("rasa", "rasa_sdk", "actions", "tandem.tools", "tandem.tool_registry", "tandem.cli")
    files = sorted((PACKAGE / folder).rglob("*.py"))  # packages too (services/fallback/)
    assert files
    for path in files:
        bad = {n for n in _imports(path) if n.split(".")[0] in forbidden or n in forbidden}
        assert not bad, f"{path.name} imports {bad}"


def test_no_print_in_my_modules() -> None:
    modules = [
        *PACKAGE.rglob("services/**/*.py"),
        *PACKAGE.glob("db/*.py"),
        *(PACKAGE / name for name in ("tools.py", "tool_registry.py", "cli.py", "seed.py", "ratelimit.py", "clock.py")),
    ]
    for path in modules:
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
        ]
        assert not calls, path


def test_no_package_module_imports_rasa() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("rasa", "rasa_sdk", "actions")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_actions_reach_data_only_through_the_toolbox() -> None:
    """The Rasa layer holds no SQL, HTTP, Redis or prompts: it calls the toolbox, the fallback
    service and pure helpers, never the layers below them."""
    forbidden = (
        "sqlalchemy",
        "psycopg",
        "redis",
        "httpx",
        "requests",
        "openai",
        "tandem.db",
        "tandem.llm",
        "tandem.knowledge",
        "tandem.guard",
    )
    files = sorted((PACKAGE.parent / "actions").glob("*.py"))
    assert len(files) >= 8
    for path in files:
        bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in forbidden)}
        assert not bad, f"actions/{path.name} imports {bad}"


# Who reads conversations through tandem.conversation, and what it may import itself: the
# standard library, its own modules and (history.py only: the fallback chain's turns) tandem.llm.
CONVERSATION_READERS = ("actions/common.py", "actions/handoff.py", "actions/fallback.py", "tandem/gateway/messages.py")
CONVERSATION_MAY_IMPORT = {"history.py": ("tandem.conversation", "tandem.llm")}


def test_conversation_model_is_rasa_free_and_used_by_every_walker() -> None:
    """tracker events → turns is written once: no Rasa, no upper layer, no database or network
    in ``tandem/conversation``; the actions and the gateway read trackers through it."""
    files = sorted((PACKAGE / "conversation").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        allowed = CONVERSATION_MAY_IMPORT.get(path.name, ("tandem.conversation",))
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in ("rasa", "rasa_sdk", "actions", "sanic", "sqlalchemy", "httpx", "redis"), (path, name)
            if top == "tandem":
                assert any(name == a or name.startswith(a + ".") for a in allowed), f"{path.name} imports {name}"
    for reader in CONVERSATION_READERS:
        assert _imports_conversation(PACKAGE.parent / reader), reader


def _imports_conversation(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("tandem.conversation"):
                return True
            if node.module == "tandem" and any(alias.name == "conversation" for alias in node.names):
                return True
    return False


def test_nlu_component_layers() -> None:
    """tandem_nlu runs inside the Rasa server: the model code is Rasa-free (the benchmark uses it
    directly), only the component module imports Rasa, and neither reaches into the application
    (the Rasa environment does not have its dependencies)."""
    nlu = PACKAGE.parent / "tandem_nlu"
    model_imports = _imports(nlu / "minilm.py")
    assert not {n for n in model_imports if n.split(".")[0] in ("rasa", "rasa_sdk")}
    for path in sorted(nlu.glob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("tandem", "actions", "rasa_sdk")}
        assert not bad, f"{path.name} imports {bad}"
    assert any(n.startswith("rasa.") for n in _imports(nlu / "classifier.py"))


# What the free-text parsers may import: the standard library, their own package, the airport
# table and the typed errors. ``dateparser`` is slow to import, so only inside a function.
NORMALIZE_MAY_IMPORT = ("tandem.errors", "tandem.airports")


def _normalize_import_violations(source: str) -> set[str]:
    violations: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            continue  # the package's own modules
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or name in NORMALIZE_MAY_IMPORT:
                continue
            if top == "dateparser" and node.col_offset > 0:
                continue  # the lazy import inside a function
            violations.add(name)
    return violations


def test_normalize_package_is_pure() -> None:
    """``tandem/normalize/`` (what customers type → slot values) is pure: no I/O, no settings,
    no services, no Rasa; ``dateparser`` is imported lazily, never at module level."""
    files = sorted((PACKAGE / "normalize").glob("*.py"))
    assert len(files) >= 7
    assert not (PACKAGE / "normalize.py").exists()
    for path in files:
        bad = _normalize_import_violations(path.read_text(encoding="utf-8"))
        assert not bad, f"normalize/{path.name} imports {bad}"
    assert _normalize_import_violations("import dateparser\nfrom tandem.settings import ActionSettings\n") == {
        "dateparser",
        "tandem.settings",
    }
