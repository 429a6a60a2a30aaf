"""Contracts of the layout: the agents stay light, and every shipped config is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import VehicleSettings
from edge.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
HUB_ONLY = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "ortools", "psycopg")
HUB_ONLY = (*HUB_ONLY, "pyvrp")  # the route planner's second engine


@pytest.mark.parametrize(
    "modules",
    [
        "edge.cli, edge.app, edge.agent, edge.uplink, edge.outbox",
        "locker.app, locker.agent, locker.cli",
        "protocol, protocol.codec, protocol.codes, protocol.topics",
    ],
)
def test_agents_and_the_contract_load_none_of_the_hubs_dependencies(modules: str) -> None:
    code = (
        f"import sys; import {modules}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HUB_ONLY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{modules} pulled in {out.stdout.strip()}"


def test_the_contract_imports_only_the_standard_library_and_pydantic() -> None:
    code = (
        "import sys; before = set(sys.modules); import protocol, protocol.codes; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "std = set(sys.stdlib_module_names); "
        "print(sorted(m for m in new if m not in std and not m.startswith('_') "
        "and m not in ('protocol', 'pydantic', 'pydantic_core', 'typing_extensions', "
        "'annotated_types', 'typing_inspection')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_shipped_van_config_is_valid() -> None:
    settings = load_settings(VehicleSettings, ROOT / "firmware_configs/van/van.toml")
    assert settings.device_id == "van-17"


def test_every_shipped_or_generated_broker_config_never_drops_qos1(tmp_path: Path) -> None:
    from cloud.broker import render_config

    configs = [p.read_text() for p in (ROOT / "firmware_configs/mosquitto").rglob("*.conf")]
    configs.append(render_config(port=1883, host="127.0.0.1", data_dir=tmp_path, persistence=True))
    assert len(configs) >= 2
    for text in configs:
        lines = [ln.strip() for ln in text.splitlines()]
        assert "max_queued_messages 0" in lines
