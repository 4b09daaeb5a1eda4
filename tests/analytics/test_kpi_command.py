"""``python -m tandem.cli kpi``: the contract's keys, the window arguments, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem.analytics.kpi import KPI_KEYS
from tandem.cli import main

from .events import Script
from .test_store_consumer import _tracker_store


def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Script("cli", at=1_800_000_000.0).start()  # 2027-01-15T08:00Z
    s.user("where is AN204", "flight_status").action("action_flight_status")
    s.slot("task_outcome", "flight_status_answered").bot(text="on time").listen()
    _tracker_store(tmp_path / "tracker.db", [s]).dispose()
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'business.db'}")


def test_json_has_the_contracts_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _store(tmp_path, monkeypatch)
    assert main(["kpi", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(KPI_KEYS) <= set(report)
    assert (report["sessions"], report["task_success_rate"]) == (1, 1.0)
    assert main(["kpi", "--json", "--since", "2027-01-16", "--channel", "website"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions"] == 0
    assert main(["kpi", "--json", "--until", "2027-01-15T15:00+07:00"]) == 0  # 08:00Z: not before
    assert json.loads(capsys.readouterr().out)["sessions"] == 0
    assert main(["kpi", "--plot", str(tmp_path / "trend.png")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["sessions", "1"] and "task_success_rate" in out
    assert (tmp_path / "trend.png").exists()


def test_refusals_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert main(["kpi"]) == 2
    assert "no tracker store" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # not created by asking
    with pytest.raises(SystemExit) as exit_info:
        main(["kpi", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'unmigrated.db'}")
    assert main(["kpi", "--source", "analytics"]) == 1  # no analytics tables: migrate first
    assert "migrated" in capsys.readouterr().err
    monkeypatch.delenv("EVENT_BROKER_URL", raising=False)
    assert main(["analytics", "consume"]) == 2  # no broker configured
