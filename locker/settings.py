"""Settings of the locker agent: how many compartments, which pins, which keypad, and the code key.

Loaded like every agent's with :func:`edge.settings.load_settings` (TOML file, then ``LASTMILE_...``
environment variables, which win).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge.settings import AgentSettingsBase

MAX_COMPARTMENTS = 512
MOCK_RELAY_BASE = 1000
MOCK_DOOR_BASE = 2000


class CompartmentPins(BaseModel):
    """The two GPIO lines of a compartment: the lock relay (output) and the door switch (input)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relay: int = Field(ge=0)
    door: int = Field(ge=0)


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
    pin_factory: Literal["mock", "lgpio"] = "mock"
    keypad: Literal["sim", "stdin"] = "sim"
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

    @field_validator("code_key")
    @classmethod
    def _key_is_hex(cls, value: SecretStr) -> SecretStr:
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
        used = Counter(p for cp in self.pins for p in (cp.relay, cp.door))
        dupes = sorted(p for p, n in used.items() if n > 1)
        if dupes:
            raise ValueError(f"pins used twice: {dupes}")
        return self

    def locker_key(self) -> bytes:
        """The code key as bytes, for :mod:`protocol.codes`."""
        return bytes.fromhex(self.code_key.get_secret_value())
