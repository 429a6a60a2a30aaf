"""One writer of a simulated van's config for the tests that run a whole van agent against a
real broker (end to end, faults, commands, route dispatch): they differ only in the knobs below."""

from __future__ import annotations

from pathlib import Path

from edge.settings import MqttSettings
from protocol.commands import derive_command_key
from protocol.topics import DeviceKind

MASTER = "e2e-7f3a9c2e41b8d605-Qx9LmZ2vT4wK8rYb"
"""The hub's code master secret in these tests; each van's command key is derived from it."""


def sim_van_config(
    tmp_path: Path,
    mqtt: MqttSettings,
    vehicle_id: str,
    *,
    time_scale: float,
    seed: int,
    batch_age_s: float,
    state: str = "van-state",
    status_interval_s: float | None = None,
    command_key: bool = True,
    master: str = MASTER,
    extra: str = "",
) -> Path:
    """Write ``<vehicle_id>-<state>.toml`` for a van on the simulated receiver; return its path.

    ``state`` names the state directory under ``tmp_path`` (two names: two vans' worth of disk);
    ``master`` is the hub's code master secret the van's command (and route) key derives from;
    ``extra`` is TOML put before the first table (e.g. another GNSS source and its table)."""
    lines = [f'device_id = "{vehicle_id}"', f'state_dir = "{tmp_path / state}"']
    if command_key:
        key = derive_command_key(master.encode(), vehicle_id, kind=DeviceKind.VEHICLE)
        lines.append(f'command_key = "{key.hex()}"')
    if status_interval_s is not None:
        lines.append(f"status_interval_s = {status_interval_s:g}")
    if extra:
        lines.append(extra)
    lines += [
        "[mqtt]",
        f'host = "{mqtt.host}"',
        f"port = {mqtt.port}",
        "reconnect_min_s = 0.05",
        "reconnect_max_s = 0.5",
        "[sim]",
        f"time_scale = {time_scale:g}",
        f"seed = {seed}",
        "[batch]",
        "max_points = 10",
        f"max_age_s = {batch_age_s:g}",
    ]
    path = tmp_path / f"{vehicle_id}-{state}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
