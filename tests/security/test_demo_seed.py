"""Finding 9 (seed part): the migrate job must not seed the public demo bookings into production.

``python -m tandem.cli seed`` gives a deployment its airports and schedule only; the demo customers
and bookings (references and names published in the README: anyone could open or cancel them)
come only with ``seed --demo`` or ``SEED_DEMO_DATA=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from tandem.db.models import Booking, Customer, Flight

ROOT = Path(__file__).resolve().parents[2]


def _cli(tmp_path: Path, *args: str, **env_extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SEED_DEMO_DATA")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}", "SCHEDULE_DAYS": "7", "PYTHONPATH": str(ROOT)})
    env.update(env_extra)
    subprocess.run([sys.executable, "-m", "tandem.cli", *args], cwd=tmp_path, env=env, check=True, timeout=120)


def _counts(tmp_path: Path) -> tuple[int, int, int]:
    engine = create_engine(f"sqlite:///{tmp_path / 'prod.db'}")
    try:
        with engine.connect() as conn:
            return (
                conn.scalar(select(func.count()).select_from(Flight)) or 0,
                conn.scalar(select(func.count()).select_from(Customer)) or 0,
                conn.scalar(select(func.count()).select_from(Booking)) or 0,
            )
    finally:
        engine.dispose()


def test_the_migrate_job_seeds_no_demo_people(tmp_path: Path) -> None:
    _cli(tmp_path, "migrate")
    _cli(tmp_path, "seed")  # what docker-compose's migrate job runs
    flights, customers, bookings = _counts(tmp_path)
    assert flights == 7 * 112
    assert (customers, bookings) == (0, 0)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_demo_data_only_when_asked(tmp_path: Path, how: str) -> None:
    if how == "flag":
        _cli(tmp_path, "seed", "--demo")
    else:
        _cli(tmp_path, "seed", SEED_DEMO_DATA="true")
    _, customers, bookings = _counts(tmp_path)
    assert (customers, bookings) == (4, 4)
