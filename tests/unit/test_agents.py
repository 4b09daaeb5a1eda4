"""Agent console accounts: argon2id passwords, no e-mail enumeration at login, hashed session tokens,
and ``python -m tandem.cli agent add|disable`` (password on standard input, never printed)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, select

from tandem.cli import main
from tandem.clock import utc_now
from tandem.db.models import Agent, AgentSession
from tandem.errors import Conflict, Invalid
from tandem.services.agents import (
    AgentView,
    add_agent,
    authenticate,
    end_session,
    session_agent,
    set_active,
    start_session,
)

if TYPE_CHECKING:
    from tests.conftest import Db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
EMAIL = "ploy@andaman.example"
TTL = 3600


class CountingHasher(PasswordHasher):
    """A cheap argon2id hasher that counts verifications (the dummy one included)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def fast() -> CountingHasher:
    return CountingHasher()


def _add(db: Db, hasher: PasswordHasher, **overrides: str) -> AgentView:
    values = {"email": f" {EMAIL.upper()} ", "display_name": " Ploy ", "password": PASSWORD, **overrides}
    with db.sessions.begin() as s:
        return add_agent(s, now=utc_now(), hasher=hasher, **values)


def _login(db: Db, hasher: PasswordHasher, email: str = EMAIL, password: str = PASSWORD) -> AgentView | None:
    with db.sessions.begin() as s:
        return authenticate(s, email=email, password=password, hasher=hasher)


def _agent_row(db: Db, email: str = EMAIL) -> Agent:
    with db.sessions() as s:
        agent = s.scalar(select(Agent).where(Agent.email == email))
        assert agent is not None
        return agent


def test_add_then_authenticate(db: Db, fast: CountingHasher) -> None:
    view = _add(db, fast)
    assert view == AgentView(id=view.id, email=EMAIL, display_name="Ploy", role="agent")
    assert view.as_json() == {"id": view.id, "email": EMAIL, "display_name": "Ploy", "role": "agent"}
    assert _login(db, fast, email=" Ploy@Andaman.Example") == view
    row = _agent_row(db)
    assert row.active and row.role == "agent"
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


def test_admin_role_and_default_hasher_is_argon2id(db: Db) -> None:
    view = _add(db, PasswordHasher(), role="admin")  # the production parameters, once
    assert view.role == "admin"
    assert _agent_row(db).password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize("password", [PASSWORD + "!", PASSWORD.upper(), "", "x" * 2000])
def test_wrong_password_is_none(db: Db, fast: CountingHasher, password: str) -> None:
    _add(db, fast)
    assert _login(db, fast, password=password) is None


def test_unknown_and_disabled_agents_are_none_after_the_same_work(db: Db, fast: CountingHasher) -> None:
    _add(db, fast)
    fast.verified = 0
    assert _login(db, fast, password="wrong password, long enough") is None
    assert fast.verified == 1
    for email in ("nobody@andaman.example", "not an e-mail"):
        assert _login(db, fast, email=email) is None
    assert fast.verified == 3  # a dummy verification each: timing does not tell the address is unknown
    with db.sessions.begin() as s:
        assert set_active(s, email=EMAIL, active=False)
        assert not set_active(s, email="nobody@andaman.example", active=False)
    assert _login(db, fast) is None
    assert fast.verified == 4
    with db.sessions.begin() as s:
        assert set_active(s, email=EMAIL, active=True)
    assert _login(db, fast) is not None


def test_login_upgrades_a_hash_with_old_parameters(db: Db, fast: CountingHasher) -> None:
    _add(db, fast)
    old = _agent_row(db).password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    assert _login(db, stronger) is not None
    new = _agent_row(db).password_hash
    assert new != old and new.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert _login(db, stronger) is not None
    assert _agent_row(db).password_hash == new  # no rehash when the parameters are current


def test_duplicate_email_is_conflict(db: Db, fast: CountingHasher) -> None:
    _add(db, fast)
    with pytest.raises(Conflict) as err:
        _add(db, fast, email="ploy@ANDAMAN.example", display_name="Other Ploy")
    assert err.value.reason == "agent_exists"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"password": "x" * 11}, "password"),
        ({"password": "x" * 1025}, "password"),
        ({"role": "root"}, "role"),
        ({"role": "Admin"}, "role"),
        ({"email": "ploy at andaman"}, "email"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": "Ploy\nAdmin"}, "display_name"),
    ],
)
def test_invalid_input(db: Db, fast: CountingHasher, overrides: dict[str, str], reason: str) -> None:
    with pytest.raises(Invalid) as err:
        _add(db, fast, **overrides)
    assert err.value.reason == reason


def test_password_rules_are_length_only(db: Db, fast: CountingHasher) -> None:
    view = _add(db, fast, password="a" * 12)  # no composition rules (NIST SP 800-63B)
    assert _login(db, fast, email=view.email, password="a" * 12) == view
    other = _add(db, fast, email="lek@andaman.example", password=" padded pass phrase ")
    assert _login(db, fast, email=other.email, password="padded pass phrase") is None  # not trimmed
    assert _login(db, fast, email=other.email, password=" padded pass phrase ") == other


def test_session_lifecycle_stores_only_the_hash(db: Db, fast: CountingHasher) -> None:
    view = _add(db, fast)
    now = utc_now()
    with db.sessions.begin() as s:
        token = start_session(s, agent_id=view.id, now=now, ttl_seconds=TTL)
    assert len(token) >= 43
    with db.sessions() as s:
        rows = list(s.scalars(select(AgentSession)))
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert rows[0].expires_at == now + timedelta(seconds=TTL) and rows[0].revoked_at is None
    with db.engine.connect() as conn:  # the raw token is nowhere in the table
        dump = " ".join(str(v) for row in conn.execute(select(AgentSession.__table__)) for v in row)
    assert token not in dump
    with db.sessions() as s:
        assert session_agent(s, token=token, now=now + timedelta(seconds=TTL - 1)) == view
        assert session_agent(s, token=token, now=now + timedelta(seconds=TTL)) is None  # expired
    with db.sessions.begin() as s:
        assert end_session(s, token=token, now=now)
        assert end_session(s, token=token, now=now + timedelta(seconds=5))  # twice: still fine
        assert not end_session(s, token=token + "x", now=now)
    with db.sessions() as s:
        assert session_agent(s, token=token, now=now) is None
        revoked = s.scalar(select(AgentSession.revoked_at))
    assert revoked == now


def test_disabling_an_agent_ends_its_sessions(db: Db, fast: CountingHasher) -> None:
    view = _add(db, fast)
    now = utc_now()
    with db.sessions.begin() as s:
        token = start_session(s, agent_id=view.id, now=now, ttl_seconds=TTL)
        assert session_agent(s, token=token, now=now) == view
        set_active(s, email=EMAIL, active=False, now=now)
        assert session_agent(s, token=token, now=now) is None
        set_active(s, email=EMAIL, active=True)
        assert session_agent(s, token=token, now=now) is None  # not revived by enabling again


@pytest.mark.parametrize("token", ["", " ", "x" * 201, "tökén", "\x00", "a" * 43])
def test_garbage_tokens_are_none(db: Db, fast: CountingHasher, token: str) -> None:
    view = _add(db, fast)
    now = utc_now()
    with db.sessions.begin() as s:
        start_session(s, agent_id=view.id, now=now, ttl_seconds=TTL)
    with db.sessions.begin() as s:
        assert session_agent(s, token=token, now=now) is None
        assert not end_session(s, token=token, now=now)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated, empty SQLite database for the CLI (``agent add`` migrates nothing itself)."""
    url = f"sqlite:///{tmp_path / 'var' / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["migrate"]) == 0
    return url


def run_agent(*args: str, url: str, cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """``python -m tandem.cli agent ...`` as a process, in a directory without a ``.env``."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli", "agent", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT), "DATABASE_URL": url, "LOG_LEVEL": "DEBUG"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _hashes(url: str) -> dict[str, tuple[str, str, bool]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Agent.email, Agent.role, Agent.password_hash, Agent.active))
            return {email: (role, password_hash, active) for email, role, password_hash, active in rows}
    finally:
        engine.dispose()


def test_cli_agent_add_reads_the_password_from_stdin_and_never_prints_it(cli_db: str, tmp_path: Path) -> None:
    added = run_agent(
        "add", "--email", "Ploy@Andaman.Example", "--name", "Ploy", url=cli_db, cwd=tmp_path, stdin=f"{PASSWORD}\n"
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "agent 1 added: Ploy (agent)"
    admin = run_agent(
        "add",
        "--email",
        "lek@andaman.example",
        "--name",
        "Lek",
        "--role",
        "admin",
        url=cli_db,
        cwd=tmp_path,
        stdin="another long passphrase\n",
    )
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.strip() == "agent 2 added: Lek (admin)"
    agents = _hashes(cli_db)
    assert agents[EMAIL][0] == "agent" and agents["lek@andaman.example"][0] == "admin"
    # Only the line break was removed: the stored hash verifies the password as typed.
    assert PasswordHasher().verify(agents[EMAIL][1], PASSWORD)
    for run, (password, (_, password_hash, _)) in zip(
        (added, admin),
        ((PASSWORD, agents[EMAIL]), ("another long passphrase", agents["lek@andaman.example"])),
        strict=True,
    ):
        output = run.stdout + run.stderr
        assert password not in output and password_hash not in output and "$argon2" not in output
        assert "Traceback" not in output

    duplicate = run_agent("add", "--email", EMAIL, "--name", "Ploy 2", url=cli_db, cwd=tmp_path, stdin=f"{PASSWORD}\n")
    assert duplicate.returncode == 2
    assert duplicate.stdout == "" and len(duplicate.stderr.strip().splitlines()) == 1
    assert "already exists" in duplicate.stderr and PASSWORD not in duplicate.stderr
    short = run_agent(
        "add", "--email", "new@andaman.example", "--name", "New", url=cli_db, cwd=tmp_path, stdin="short\n"
    )
    assert short.returncode == 2 and "password" in short.stderr and short.stdout == ""
    assert "new@andaman.example" not in _hashes(cli_db)


def test_cli_agent_disable(cli_db: str, tmp_path: Path) -> None:
    assert (
        run_agent("add", "--email", EMAIL, "--name", "Ploy", url=cli_db, cwd=tmp_path, stdin=PASSWORD).returncode == 0
    )
    disabled = run_agent("disable", "--email", EMAIL, url=cli_db, cwd=tmp_path, stdin="")
    assert disabled.returncode == 0, disabled.stderr
    assert _hashes(cli_db)[EMAIL][2] is False
    unknown = run_agent("disable", "--email", "nobody@andaman.example", url=cli_db, cwd=tmp_path, stdin="")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "no agent has this e-mail"


def test_cli_agent_add_on_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    run = run_agent("add", "--email", EMAIL, "--name", "Ploy", url=url, cwd=tmp_path, stdin=PASSWORD)
    assert run.returncode == 1
    assert run.stderr.strip().endswith("is the schema migrated (python -m tandem.cli migrate)?")
    assert "Traceback" not in run.stderr and EMAIL not in run.stderr and PASSWORD not in run.stderr
