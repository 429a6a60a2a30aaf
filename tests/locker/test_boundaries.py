"""A locker's Pi installs only the ``locker`` extra: the agent must never load the hub's libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("fastapi", "sqlalchemy", "ortools", "uvicorn", "alembic", "psycopg", "cloud")


def test_the_locker_agent_does_not_import_the_hub_or_its_dependencies() -> None:
    probe = (
        "import sys, locker.app, locker.cli, locker.sim\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"the locker agent imported {out.stdout.strip()}"
