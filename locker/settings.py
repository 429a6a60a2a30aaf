"""Settings of the locker agent: how many compartments, which pins, which keypad, and the code key.

Loaded like every agent's with :func:`edge.settings.load_settings` (TOML file, then ``LASTMILE_...``
environment variables, which win).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge.settings import AgentSettingsBase
from protocol.messages import CompartmentSize

MAX_COMPARTMENTS = 512
MOCK_RELAY_BASE = 1000
MOCK_DOOR_BASE = 2000


class CompartmentPins(BaseModel):
    """The two GPIO lines of a compartment: the lock relay (output) and the door switch (input)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relay: int = Field(ge=0)
    door: int = Field(ge=0)
    occupancy: int | None = Field(
        default=None,
        ge=0,
        description="Optional parcel sensor (e.g. an IR break-beam), low = a parcel is inside.",
    )


class ModbusSettings(BaseModel):
    """An RS485 lock board speaking Modbus RTU: compartment ``n`` is relay coil
    ``coil_offset + n - 1`` and door input ``door_input_offset + n - 1`` (zero-based PDU addresses,
    as on the wire)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB0 or /dev/serial0")
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    device_id: int = Field(default=1, ge=1, le=247, description="The board's Modbus unit id")
    coil_offset: int = Field(default=0, ge=0, le=65_535)
    door_input_offset: int = Field(default=0, ge=0, le=65_535)
    occupancy_input_offset: int | None = Field(default=None, ge=0, le=65_535)
    door_closed_when: bool = Field(
        default=True,
        description="The input value that means 'door shut'. True: the switch closes the contact "
        "while the door is shut, so a cut wire reads as an open door (the safe failure).",
    )
    poll_interval_s: float = Field(default=0.1, gt=0, le=10)
    timeout_s: float = Field(default=0.5, gt=0, le=10)


class MatrixKeypadSettings(BaseModel):
    """A membrane matrix keypad on GPIO (BCM numbers): 4 rows and 3 columns (3x4: 1-9, ``*0#``) or
    4 columns (4x4: the A-D column is read and ignored). See :mod:`locker.keypad_matrix`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: list[int] = Field(min_length=4, max_length=4, description="R1..R4, top row first.")
    cols: list[int] = Field(
        min_length=3, max_length=4, description="C1..C3 (3x4) or C1..C4 (4x4), left first."
    )
    scan_interval_s: float = Field(default=0.005, gt=0, le=0.1)
    debounce_scans: int = Field(
        default=4,
        ge=1,
        le=50,
        description="A key changes state only after this many identical scans in a row "
        "(4 x 5 ms = 20 ms, longer than a membrane's contact bounce).",
    )

    @model_validator(mode="after")
    def _distinct(self) -> MatrixKeypadSettings:
        pins = [*self.rows, *self.cols]
        if len(set(pins)) != len(pins):
            raise ValueError(
                f"keypad pins used twice: {sorted(p for p in set(pins) if pins.count(p) > 1)}"
            )
        return self


class UsbKeypadSettings(BaseModel):
    """A USB numeric keypad read through evdev. See :mod:`locker.keypad_usb`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(
        description="Its event device; best the stable /dev/input/by-id/usb-...-event-kbd name, "
        "which survives replugging into another port."
    )
    grab: bool = Field(
        default=True,
        description="Take the device exclusively, so the digits do not also reach a console login.",
    )
    reopen_interval_s: float = Field(default=1.0, gt=0, le=60)


class LockoutSettings(BaseModel):
    """Brute-force lockout of the keypad; see :mod:`locker.lockout` for the schedule and the bound."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    free_failures: int = Field(default=5, ge=0, le=20)
    base_s: float = Field(default=30.0, gt=0)
    cap_s: float = Field(default=3600.0, gt=0)
    forgive_after_s: float = Field(default=86_400.0, gt=0)


def mock_pin_map(compartments: int) -> list[CompartmentPins]:
    """Compartment ``n`` on mock relay pin ``1000 + n`` and mock door pin ``2000 + n``.

    Numbers a person can read off a test or the demo (compartment 3: pins 1003 and 2003). They exist
    only on :class:`locker.hardware.MockLockerFactory`; a real Pi needs its BCM numbers configured.
    """
    return [
        CompartmentPins(relay=MOCK_RELAY_BASE + n, door=MOCK_DOOR_BASE + n)
        for n in range(1, compartments + 1)
    ]


class LockerSettings(AgentSettingsBase):
    """Everything a locker needs to know about itself. Frozen: one value for the program's life."""

    compartments: int = Field(default=12, ge=1, le=MAX_COMPARTMENTS)
    pins: list[CompartmentPins] = Field(
        default_factory=list,
        description="One entry per compartment, compartment 1 first. Generated for mock pins when "
        "omitted; required with pin_factory='lgpio'.",
    )
    code_key: SecretStr = Field(
        description="Hex of this locker's code key, protocol.codes.derive_locker_key(master, id)."
    )
    unlock_pulse_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="The relay stays energized until the door opens or this elapses: a solenoid "
        "left on overheats, and an unopened door must lock again.",
    )
    sizes: list[CompartmentSize] = Field(
        default_factory=list,
        description="Size of each compartment, compartment 1 first; all 'M' when omitted.",
    )
    courier_key: SecretStr | None = Field(
        default=None,
        description="Hex of protocol.codes.derive_courier_key(master, id); without it offline "
        "courier codes are refused.",
    )
    courier_step_s: int = Field(default=60, ge=15, le=600)
    courier_skew_steps: int = Field(default=2, ge=0, le=10)
    command_key: SecretStr | None = Field(
        default=None,
        description="Hex of protocol.commands.derive_command_key(master, id); without it every "
        "remote command is refused.",
    )
    door_left_open_s: float = Field(default=120.0, gt=0, le=86_400)
    lockout: LockoutSettings = LockoutSettings()
    board: Literal["gpio", "modbus"] = Field(
        default="gpio", description="Relays and door switches on GPIO pins, or on an RS485 board."
    )
    modbus: ModbusSettings | None = None
    pin_factory: Literal["mock", "lgpio"] = "mock"
    keypad: Literal["sim", "stdin", "matrix", "usb"] = "sim"
    keypad_matrix: MatrixKeypadSettings | None = None
    keypad_usb: UsbKeypadSettings | None = None
    simulate_people: bool = False
    keypad_max_len: int = Field(default=12, ge=4, le=64)
    keypad_timeout_s: float = Field(default=15.0, gt=0, le=600)

    @model_validator(mode="before")
    @classmethod
    def _default_pins(cls, data: Any) -> Any:
        """Generate the mock pin map when no pins are given; never guess a real board's pins."""
        if not isinstance(data, dict) or data.get("pins"):
            return data
        if data.get("pin_factory") == "lgpio":
            raise ValueError(
                "pin_factory 'lgpio' needs 'pins' (BCM numbers of each compartment's relay and "
                "door switch); the generated map only exists on mock pins"
            )
        try:
            count = int(data.get("compartments", 12))
        except (TypeError, ValueError):
            return data  # the field's own validation names the problem
        if 1 <= count <= MAX_COMPARTMENTS:
            data = {**data, "pins": mock_pin_map(count)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _default_sizes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("sizes"):
            return data
        try:
            count = int(data.get("compartments", 12))
        except (TypeError, ValueError):
            return data
        if 1 <= count <= MAX_COMPARTMENTS:
            data = {**data, "sizes": ["M"] * count}
        return data

    @field_validator("code_key", "courier_key", "command_key")
    @classmethod
    def _key_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            key = bytes.fromhex(value.get_secret_value())
        except ValueError:
            raise ValueError("must be hex (derive_locker_key(...).hex())") from None
        if len(key) < 16:
            raise ValueError("must be at least 16 bytes (32 hex digits)")
        return value

    @model_validator(mode="after")
    def _pins_match_compartments(self) -> LockerSettings:
        if len(self.pins) != self.compartments:
            raise ValueError(
                f"'pins' has {len(self.pins)} entries for {self.compartments} compartments"
            )
        if len(self.sizes) != self.compartments:
            raise ValueError(
                f"'sizes' has {len(self.sizes)} entries for {self.compartments} compartments"
            )
        if self.board == "modbus" and self.modbus is None:
            raise ValueError("board 'modbus' needs a [modbus] table (port, device_id, ...)")
        if self.keypad == "matrix" and self.keypad_matrix is None:
            raise ValueError("keypad 'matrix' needs a [keypad_matrix] table (rows, cols)")
        if self.keypad == "usb" and self.keypad_usb is None:
            raise ValueError("keypad 'usb' needs a [keypad_usb] table (device)")
        if self.lockout.cap_s < self.lockout.base_s:
            raise ValueError("lockout.cap_s must not be below lockout.base_s")
        used = Counter(
            p for cp in self.pins for p in (cp.relay, cp.door, cp.occupancy) if p is not None
        )
        if self.keypad == "matrix" and self.keypad_matrix is not None:
            used.update([*self.keypad_matrix.rows, *self.keypad_matrix.cols])
        dupes = sorted(p for p, n in used.items() if n > 1)
        if dupes:
            raise ValueError(f"pins used twice: {dupes}")
        return self

    def locker_key(self) -> bytes:
        """The code key as bytes, for :mod:`protocol.codes`."""
        return bytes.fromhex(self.code_key.get_secret_value())

    def courier_secret(self) -> bytes | None:
        """The courier TOTP key as bytes, for :mod:`protocol.courier`; None if not configured."""
        return (
            None if self.courier_key is None else bytes.fromhex(self.courier_key.get_secret_value())
        )

    def command_secret(self) -> bytes | None:
        """The command key as bytes, for :mod:`protocol.commands`; None if not configured."""
        return (
            None if self.command_key is None else bytes.fromhex(self.command_key.get_secret_value())
        )
