"""Remote commands to a van: signed by the hub, checked here, answered with an ack either way.

Commands arrive on ``fleet/{id}/cmd`` as :class:`protocol.commands.Command` (HMAC-SHA256 under this
van's key, an expiry, a nonce). :meth:`CommandHandler.handle` answers every payload with exactly one
:class:`~protocol.messages.CommandAck`, refusing with a reason word (counted in
:attr:`CommandStats.refused`) when the payload is

- ``malformed``: not a command at all (the ack names the command id if one could be read, else
  the nil UUID);
- ``no_command_key``: this van has no key configured, so it cannot tell the hub from anyone else;
- ``wrong_device`` / ``bad_signature`` / ``not_yet_valid`` / ``expired`` / ``replayed``: see
  :func:`protocol.commands.verify_command`;
- ``unknown_command`` or ``bad_args``: signed, but not something this van does;
- a failure of the command itself (``no_fix``, ``no_obd``, ``obd_unavailable``,
  ``no_config_file``, ``config_invalid``, ``failed``).

The commands (:data:`COMMANDS`):

- ``set_reporting_profile`` ``{profile: "stopped"|"moving", interval_s?, distance_m?,
  heading_deg?, speed_change_mps?}``: change one profile's thresholds (``false`` switches an optional
  rule off) until the next restart or ``reload_settings``; the result is the profile now in force;
- ``send_position``: queue the latest fix now, in a batch of its own; the result is that fix;
- ``read_dtcs``: read the stored OBD-II trouble codes; the result lists them;
- ``reload_settings``: re-read the config file; what can change live (reporting, outbox bounds,
  command key) is applied, the rest is listed as needing a restart.

The handler never raises for a payload, whatever its bytes: a poison command must not take the
van's uplink down (the uplink would reconnect and get it redelivered, forever).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from pydantic import ValidationError

from edge.errors import CommandFailed
from edge.obd.connection import Dtc
from edge.reporting import ReportingSettings, ReportProfile
from protocol.codec import decode
from protocol.commands import (
    ArgValue,
    Command,
    CommandError,
    NonceStore,
    command_id_of,
    verify_command,
)
from protocol.errors import DecodeError
from protocol.messages import CommandAck, CommandResult, Position

log = logging.getLogger(__name__)

NO_COMMAND_ID = UUID(int=0)
"""The command id of an ack to a payload whose own id could not be read."""
PROFILE_FIELDS = ("interval_s", "distance_m", "heading_deg", "speed_change_mps")
DTC_TIMEOUT_S = 15.0
"""How long ``read_dtcs`` waits for the car: the ELM327 queues it behind the poll in flight."""


class VehicleControl(Protocol):
    """What the commands act on (the agent implements it). Methods raise :class:`CommandFailed`."""

    @property
    def reporting(self) -> ReportingSettings: ...

    def set_reporting(self, settings: ReportingSettings) -> None: ...

    def send_position_now(self) -> Position: ...

    def read_dtcs(self) -> Awaitable[tuple[Dtc, ...]]: ...

    def reload_settings(self) -> tuple[list[str], list[str]]:
        """(fields applied, fields that need a restart)."""
        ...


@dataclass
class CommandStats:
    """``executed`` by command name, ``refused`` by reason word."""

    executed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _BadArgs(Exception):
    pass


def _profile_update(args: dict[str, ArgValue], current: ReportingSettings) -> ReportingSettings:
    """The reporting settings with one profile changed as ``args`` say. Raises _BadArgs."""
    profile = args.get("profile")
    if profile not in ("stopped", "moving"):
        raise _BadArgs(f"'profile' must be 'stopped' or 'moving', not {profile!r}")
    unknown = sorted(set(args) - {"profile", *PROFILE_FIELDS})
    if unknown:
        raise _BadArgs(f"unknown arguments {unknown}; expected {list(PROFILE_FIELDS)}")
    changes: dict[str, float | None] = {}
    for name in PROFILE_FIELDS:
        if name not in args:
            continue
        value = args[name]
        if value is False and name != "interval_s":
            changes[name] = None  # switch the rule off
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadArgs(f"{name!r} must be a number (or false to switch it off), not {value!r}")
        else:
            changes[name] = float(value)
    if not changes:
        raise _BadArgs(f"nothing to change; give any of {list(PROFILE_FIELDS)}")
    old: ReportProfile = getattr(current, str(profile))
    try:
        new = ReportProfile.model_validate({**old.model_dump(), **changes})
        return ReportingSettings.model_validate({**current.model_dump(), str(profile): new})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise _BadArgs(f"{where}: {first['msg']}") from None


def _profile_result(settings: ReportingSettings, profile: str) -> CommandResult:
    p: ReportProfile = getattr(settings, profile)
    out: CommandResult = {"profile": profile}
    for name in PROFILE_FIELDS:
        value = getattr(p, name)
        out[name] = False if value is None else value
    return out


class CommandHandler:
    """Checks and carries out one van's commands; every answer goes to ``reply``."""

    def __init__(
        self,
        *,
        device_id: str,
        key: bytes | None,
        nonces: NonceStore,
        control: VehicleControl,
        reply: Callable[[CommandAck], None],
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``key`` None: every command is refused as ``no_command_key`` (and acknowledged)."""
        self.device_id = device_id
        self.key = key
        self._nonces = nonces
        self._control = control
        self._reply = reply
        self._clock = clock
        self.stats = CommandStats()
        self._run: dict[str, Callable[[Command], Awaitable[CommandResult]]] = {
            "set_reporting_profile": self._set_reporting_profile,
            "send_position": self._send_position,
            "read_dtcs": self._read_dtcs,
            "reload_settings": self._reload_settings,
        }

    async def handle(self, payload: bytes) -> CommandAck:
        """Answer one payload from ``fleet/{id}/cmd``; return the ack it was answered with.

        Raises only :class:`~edge.errors.NonceStoreError` (the disk, not the payload): the uplink
        then leaves the command unacknowledged at the broker, which delivers it again."""
        try:
            command = decode(payload, Command)
        except DecodeError as err:
            cid = command_id_of(payload) or NO_COMMAND_ID
            return self._refuse(cid, "", "malformed", f"{err.reason}: {err.detail}"[:500])
        if self.key is None:
            return self._refuse(
                command.command_id, command.name, "no_command_key", "this van has no command key"
            )
        try:
            verify_command(
                command,
                key=self.key,
                device_id=self.device_id,
                now=self._clock(),
                nonces=self._nonces,
            )
        except CommandError as err:
            return self._refuse(command.command_id, command.name, err.reason, err.detail)
        run = self._run.get(command.name)
        if run is None:
            return self._refuse(
                command.command_id,
                command.name,
                "unknown_command",
                f"no command {command.name!r}; this van knows {sorted(self._run)}",
            )
        try:
            result = await run(command)
        except _BadArgs as err:
            return self._refuse(command.command_id, command.name, "bad_args", str(err))
        except CommandFailed as err:
            return self._refuse(command.command_id, command.name, err.reason, err.detail)
        except Exception as err:  # a bug must cost one command, not the uplink
            log.exception("command %s (%s) failed", command.command_id, command.name)
            return self._refuse(command.command_id, command.name, "failed", repr(err)[:500])
        self.stats.executed[command.name] += 1
        log.info("command %s (%s) carried out: %s", command.command_id, command.name, result)
        return self._answer(
            CommandAck(
                device_id=self.device_id,
                command_id=command.command_id,
                ok=True,
                name=command.name,
                result=result,
            )
        )

    def _refuse(self, command_id: UUID, name: str, reason: str, detail: str) -> CommandAck:
        self.stats.refused[reason] += 1
        log.warning("command %s (%s) refused: %s (%s)", command_id, name or "?", reason, detail)
        return self._answer(
            CommandAck(
                device_id=self.device_id,
                command_id=command_id,
                ok=False,
                reason=reason,
                name=name[:40],
                detail=detail[:500],
            )
        )

    def _answer(self, ack: CommandAck) -> CommandAck:
        self._reply(ack)
        return ack

    # -- the commands -----------------------------------------------------------------------------

    async def _set_reporting_profile(self, command: Command) -> CommandResult:
        settings = _profile_update(command.args, self._control.reporting)
        self._control.set_reporting(settings)
        return _profile_result(settings, str(command.args["profile"]))

    async def _send_position(self, command: Command) -> CommandResult:
        _no_args(command)
        fix = self._control.send_position_now()
        out: CommandResult = {"t": fix.t.isoformat(), "lat": fix.lat, "lon": fix.lon}
        if fix.speed_mps is not None:
            out["speed_mps"] = fix.speed_mps
        return out

    async def _read_dtcs(self, command: Command) -> CommandResult:
        _no_args(command)
        try:
            async with asyncio.timeout(DTC_TIMEOUT_S):
                dtcs = await self._control.read_dtcs()
        except TimeoutError:
            raise CommandFailed(
                "obd_unavailable", f"the car did not answer within {DTC_TIMEOUT_S:.0f} s"
            ) from None
        return {
            "count": len(dtcs),
            "codes": [d.code for d in dtcs],
            "descriptions": [d.description for d in dtcs],
        }

    async def _reload_settings(self, command: Command) -> CommandResult:
        _no_args(command)
        applied, restart = self._control.reload_settings()
        return {"applied": applied, "restart_needed": restart}


def _no_args(command: Command) -> None:
    if command.args:
        raise _BadArgs(f"{command.name} takes no arguments, got {sorted(command.args)}")
