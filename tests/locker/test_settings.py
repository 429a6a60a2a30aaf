"""Locker settings: generated mock pins, refused guesses, and a key that must be a real key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.errors import ConfigError
from edge.settings import load_settings
from locker.settings import CompartmentPins, LockerSettings
from tests.locker.story import KEY


def test_mock_pins_are_generated_per_compartment() -> None:
    s = LockerSettings(device_id="L1", code_key=KEY.hex(), compartments=3)
    assert s.pins == [CompartmentPins(relay=1000 + n, door=2000 + n) for n in (1, 2, 3)]
    assert s.locker_key() == KEY
    assert KEY.hex() not in repr(s)


def test_real_pins_are_never_guessed() -> None:
    with pytest.raises(ValidationError, match="needs 'pins'"):
        LockerSettings(device_id="L1", code_key=KEY.hex(), pin_factory="lgpio")


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({"code_key": "not hex"}, "must be hex"),
        ({"code_key": "abcd"}, "16 bytes"),
        ({"compartments": 2, "pins": [{"relay": 5, "door": 6}]}, "1 entries for 2"),
        ({"compartments": 1, "pins": [{"relay": 5, "door": 5}]}, r"used twice: \[5\]"),
        ({"compartments": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused(extra: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        LockerSettings(**{"device_id": "L1", "code_key": KEY.hex(), **extra})  # type: ignore[arg-type]


def test_loaded_from_a_toml_file(tmp_path) -> None:
    config = tmp_path / "locker.toml"
    config.write_text(
        f'device_id = "L7"\ncode_key = "{KEY.hex()}"\ncompartments = 2\npin_factory = "lgpio"\n'
        "pins = [{relay = 17, door = 27}, {relay = 22, door = 23}]\n"
        f'state_dir = "{tmp_path}"\n[mqtt]\nport = 1884\n'
    )
    s = load_settings(LockerSettings, config)
    assert (s.device_id, s.compartments, s.pin_factory, s.mqtt.port) == ("L7", 2, "lgpio", 1884)
    assert s.pins[1] == CompartmentPins(relay=22, door=23)


def test_a_missing_key_names_the_field(tmp_path) -> None:
    config = tmp_path / "locker.toml"
    config.write_text('device_id = "L1"\n')
    with pytest.raises(ConfigError, match="code_key"):
        load_settings(LockerSettings, config)


def test_the_example_config_loads_and_its_pins_can_be_claimed(tmp_path, factory) -> None:  # type: ignore[no-untyped-def]
    from locker.app import open_locker

    example = Path(__file__).resolve().parents[2] / "firmware_configs" / "locker" / "locker.toml"
    s = load_settings(LockerSettings, example, state_dir=tmp_path)
    assert (s.board, s.pin_factory, s.compartments, s.sizes[0]) == ("gpio", "lgpio", 6, "S")
    assert s.pins[0] == CompartmentPins(relay=5, door=17, occupancy=12)
    assert s.modbus is not None and s.modbus.port == "/dev/serial0"
    assert s.courier_secret() is not None and s.command_secret() is not None
    with open_locker(s, pin_factory=factory) as agent:  # real BCM numbers exist on mock pins too
        assert len(agent._hardware) == 6


def test_a_modbus_board_needs_its_table() -> None:
    with pytest.raises(ValidationError, match=r"\[modbus\]"):
        LockerSettings(device_id="L1", code_key=KEY.hex(), board="modbus")
