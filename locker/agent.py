"""The locker agent: grants and signed commands in from the hub, codes in from the keypad, relays
out, events back.

Three loops share one task group: the uplink (broker session, outbox drain, grant and command
delivery), the keypad (submitted codes) and the doors (switch changes). Everything the agent does is
reported as a :class:`~protocol.messages.LockerEvent`, written to the durable outbox before anything
else learns of it, so the hub's record survives a lost connection or a power cut.

Flows. A compartment unlocked for a purpose holds a persisted *session* until its door has opened
and closed again; closing completes the flow with its proof event:

- courier deposit: a ``courier`` grant (the hub chose the compartment) or an offline courier code
  (:mod:`protocol.courier`; the locker picks the smallest free compartment, ties by number) →
  ``deposited`` (compartment, size), the compartment becomes occupied;
- customer pickup: a ``pickup`` grant → ``picked_up`` (time, locker, compartment: proof of delivery);
- return: a ``return`` grant (the courier takes an expired parcel back) → ``returned``;
- remote: a signed ``open_compartment`` command → no flow event, occupancy unchanged;
- revocation: a signed ``revoke_grant`` command spends a grant (a resent or revoked code).

Alarms: ``door_left_open`` (open longer than ``door_left_open_s``), ``door_forced`` (opened with no
unlock), ``unlock_not_opened`` (the pulse ended with the door shut: a jam or someone who walked
away; a later ``door_forced`` tells the jam), ``keypad_lockout`` and ``power_restored`` (the last
run did not stop cleanly).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from edge.outbox import Outbox
from edge.uplink import Uplink
from locker import __version__
from locker.errors import HardwareOperationError
from locker.grants import GrantStore, StoredGrant
from locker.hardware import Board, DoorChange
from locker.keypad import CodeEntry, Keypad, ReportsHealth
from locker.lockout import Lockout
from locker.settings import LockerSettings
from locker.state import Flow, LockerState, Session
from protocol.codec import decode, encode
from protocol.commands import Command, CommandError, verify_command
from protocol.courier import match_step, time_step
from protocol.errors import DecodeError
from protocol.messages import (
    CommandAck,
    CompartmentSize,
    DeviceStatus,
    Grant,
    GrantKind,
    LockerEvent,
    LockerEventKind,
)
from protocol.topics import Channel, locker_topic

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class LockerStats:
    """Counters for health reporting and tests. ``rejected_messages`` is keyed by reason."""

    grants_stored: int = 0
    grants_repeated: int = 0
    codes_accepted: int = 0
    codes_rejected: int = 0
    codes_ignored: int = 0
    lockouts: int = 0
    commands_executed: int = 0
    commands_refused: Counter[str] = field(default_factory=Counter)
    rejected_messages: Counter[str] = field(default_factory=Counter)


FLOW_OF_GRANT: dict[GrantKind, Flow] = {
    "pickup": "pickup",
    "courier": "deposit",
    "return": "return",
}
FLOW_EVENT: dict[Flow, LockerEventKind | None] = {
    "deposit": "deposited",
    "pickup": "picked_up",
    "return": "returned",
    "remote": None,
}
SIZE_ORDER: dict[CompartmentSize, int] = {"S": 0, "M": 1, "L": 2}


class _Nonces:
    """The agent's :class:`protocol.commands.NonceStore`: persisted, pruned at expiry."""

    def __init__(self, state: LockerState, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    def remember(self, nonce: str, *, expires_at: datetime) -> bool:
        return self._state.remember_nonce(nonce, expires_at=expires_at, now=self._clock())


class LockerAgent:
    """One locker. Build it in :mod:`locker.app`; run it with :meth:`run` until cancelled.

    The agent owns none of its parts' lifetimes: the composition root opens and closes the board,
    grant store, lockout store, state and outbox. It builds its own :class:`~edge.uplink.Uplink`,
    because the uplink's handler and status payload are the agent's own methods.
    """

    def __init__(
        self,
        *,
        settings: LockerSettings,
        hardware: Board,
        keypad: Keypad,
        grants: GrantStore,
        outbox: Outbox,
        lockout: Lockout,
        state: LockerState,
        clock: Clock = utcnow,
        status_interval_s: float = 60.0,
    ) -> None:
        if len(hardware) != settings.compartments:
            raise ValueError(
                f"hardware has {len(hardware)} compartments, settings say {settings.compartments}"
            )
        self._settings = settings
        self._id = settings.device_id
        self._hardware = hardware
        self._keypad = keypad
        self._grants = grants
        self._outbox = outbox
        self._lockout = lockout
        self._state = state
        self._clock = clock
        self._courier_key = settings.courier_secret()
        self._command_key = settings.command_secret()
        self._nonces = _Nonces(state, clock)
        self._events_topic = locker_topic(self._id, Channel.EVENTS)
        self._grants_topic = locker_topic(self._id, Channel.GRANTS)
        self._cmd_topic = locker_topic(self._id, Channel.CMD)
        self._ack_topic = locker_topic(self._id, Channel.CMD_ACK)
        self._relock: dict[int, asyncio.TimerHandle] = {}
        self._left_open: dict[int, asyncio.TimerHandle] = {}
        self._sessions: dict[int, Session] = {}
        self._started = time.monotonic()
        self._keypad_gone = False
        self.stats = LockerStats()
        self.uplink = Uplink(
            client_id=f"locker-{self._id}",
            settings=settings.mqtt,
            outbox=outbox,
            status_topic=locker_topic(self._id, Channel.STATUS),
            status_payload=self.status_payload,
            subscriptions=[self._grants_topic, self._cmd_topic],
            handler=self.handle_message,
            status_interval_s=status_interval_s,
        )

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled. Every relay is switched off first; door changes are captured from
        this call on; flows interrupted by a crash are resumed from the door states."""
        for compartment in self._hardware:
            self._release(compartment.number)
        unclean = self._state.begin_run()
        doors = self._hardware.door_changes()
        clean = False
        try:
            if unclean:
                log.warning("the last run did not stop cleanly (power cut or crash)")
                self._emit("power_restored", at=self._clock())
            self._resume()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run(), name="locker-uplink")
                tg.create_task(self._keypad_loop(), name="locker-keypad")
                if isinstance(self._keypad, ReportsHealth):
                    tg.create_task(self._watch_keypad(self._keypad), name="locker-keypad-health")
                tg.create_task(self._door_loop(doors), name="locker-doors")
        except asyncio.CancelledError:
            clean = True
            raise
        finally:
            doors.close()
            for handle in (*self._relock.values(), *self._left_open.values()):
                handle.cancel()
            self._relock.clear()
            self._left_open.clear()
            for compartment in self._hardware:
                self._release(compartment.number)
            if clean:
                self._state.end_run()

    def _resume(self) -> None:
        """Pick up the sessions a previous run left: the relays are off now, so an unopened one
        ends as ``unlock_not_opened``, and one whose door has shut since is completed."""
        now = self._clock()
        self._sessions = self._state.sessions()
        for number, session in sorted(self._sessions.items()):
            try:
                is_open = self._hardware[number].is_open
            except KeyError:
                self._drop_session(number)
                continue
            if session.stage == "unlocked" and not is_open:
                self._drop_session(number)
                self._emit_session("unlock_not_opened", session, at=now)
            elif is_open:
                if session.stage == "unlocked":
                    self._put_session(replace(session, stage="opened"))
                self._start_left_open(number)
            else:
                self._emit("door_closed", at=now, compartment=number)
                self._complete(session, at=now)
        for compartment in self._hardware:
            if compartment.is_open and compartment.number not in self._left_open:
                self._start_left_open(compartment.number)

    def status_payload(self, online: bool) -> bytes:
        return encode(
            DeviceStatus(
                device_id=self._id,
                kind="locker",
                online=online,
                version=__version__,
                uptime_s=time.monotonic() - self._started,
                outbox_depth=len(self._outbox),
                compartments=self._settings.compartments,
                health=self.health(),
                sizes=tuple(self._settings.sizes),
            )
        )

    def health(self) -> dict[str, str]:
        """What the retained status says about the keypad: its kind and ``ok``, or what failed."""
        if self._keypad_gone:
            state = "gone"
        elif isinstance(self._keypad, ReportsHealth):
            state = self._keypad.health
        else:
            state = "ok"
        return {"keypad": self._settings.keypad, "keypad_state": state}

    async def _watch_keypad(self, keypad: ReportsHealth, *, poll_s: float = 1.0) -> None:
        """A keypad's health is a plain attribute (set on its reader's thread or task): polled, and
        a change republishes the status at once, so the hub sees an unplugged keypad."""
        last = keypad.health
        while True:
            await asyncio.sleep(poll_s)
            if keypad.health != last:
                last = keypad.health
                log.warning("keypad %s", last)
                self.uplink.refresh_status()

    # -- messages from the hub -------------------------------------------------------------------

    async def handle_message(self, topic: str, payload: bytes) -> None:
        """Store a grant or carry out a command. A message we cannot use is logged, counted and
        dropped: the uplink acknowledges it anyway, because redelivering a bad message would not
        make it good."""
        if topic == self._grants_topic:
            self._on_grant(payload)
        elif topic == self._cmd_topic:
            await self._on_command(payload)
        else:
            self._reject("unexpected_topic", f"message on {topic!r}")

    def _on_grant(self, payload: bytes) -> None:
        try:
            grant = decode(payload, Grant)
        except DecodeError as err:
            self._reject("bad_payload", err.reason)
            return
        if grant.locker_id != self._id:
            self._reject("wrong_locker", f"grant {grant.grant_id} is for {grant.locker_id!r}")
            return
        if grant.compartment > self._settings.compartments:
            self._reject(
                "no_such_compartment",
                f"grant {grant.grant_id} names compartment {grant.compartment}",
            )
            return
        if grant.valid_until <= grant.valid_from:
            self._reject("empty_validity", f"grant {grant.grant_id} is never valid")
            return
        if self._grants.add(grant, now=self._clock()):
            self.stats.grants_stored += 1
            log.info(
                "%s grant %s for compartment %d stored (valid %s to %s)",
                grant.kind,
                grant.grant_id,
                grant.compartment,
                grant.valid_from.isoformat(),
                grant.valid_until.isoformat(),
            )
        else:
            self.stats.grants_repeated += 1

    def _reject(self, reason: str, detail: str) -> None:
        self.stats.rejected_messages[reason] += 1
        log.warning("message from the hub dropped: %s (%s)", reason, detail)

    async def _on_command(self, payload: bytes) -> None:
        try:
            command = decode(payload, Command)
        except DecodeError as err:
            self._reject("bad_command", err.reason)  # no command id to answer to
            return
        now = self._clock()
        if self._command_key is None:
            self._refuse(command, "no_command_key", "this locker has no command key", now)
            return
        try:
            verify_command(
                command, key=self._command_key, device_id=self._id, now=now, nonces=self._nonces
            )
        except CommandError as err:
            self._refuse(command, err.reason, err.detail, now)
            return
        if command.name == "revoke_grant":
            self._revoke(command, now)
            return
        if command.name != "open_compartment":
            self._refuse(command, "unknown_command", f"no command {command.name!r}", now)
            return
        number = command.args.get("compartment")
        if (
            not isinstance(number, int)
            or isinstance(number, bool)
            or not 1 <= number <= self._settings.compartments
        ):
            self._refuse(command, "bad_args", f"no compartment {number!r}", now)
            return
        session = Session(
            compartment=number,
            flow="remote",
            stage="unlocked",
            grant_id=None,
            command_id=command.command_id,
            started=now,
        )
        if not await self._unlock(session):
            self._refuse(command, "hardware_fault", f"relay {number} did not switch", now)
            return
        self.stats.commands_executed += 1
        log.info("command %s: compartment %d opened", command.command_id, number)
        self._ack(command, ok=True)
        self._emit("command_executed", at=now, compartment=number, command_id=command.command_id)
        self._emit("unlocked", at=now, compartment=number, command_id=command.command_id)

    def _revoke(self, command: Command, now: datetime) -> None:
        """The hub withdrew a grant (a code resent or revoked): it can never open a door again."""
        try:
            grant_id = UUID(str(command.args.get("grant_id")))
        except ValueError:
            self._refuse(command, "bad_args", f"no grant id {command.args.get('grant_id')!r}", now)
            return
        self._grants.mark_used(grant_id, at=now)  # spent is revoked: a repeat changes nothing
        self.stats.commands_executed += 1
        log.info("command %s: grant %s revoked", command.command_id, grant_id)
        self._ack(command, ok=True)
        self._emit("command_executed", at=now, grant_id=grant_id, command_id=command.command_id)

    def _refuse(self, command: Command, reason: str, detail: str, now: datetime) -> None:
        self.stats.commands_refused[reason] += 1
        log.warning("command %s refused: %s (%s)", command.command_id, reason, detail)
        self._ack(command, ok=False, reason=reason)
        self._emit("command_refused", at=now, command_id=command.command_id, reason=reason)

    def _ack(self, command: Command, *, ok: bool, reason: str = "") -> None:
        ack = CommandAck(device_id=self._id, command_id=command.command_id, ok=ok, reason=reason)
        self._outbox.put(self._ack_topic, encode(ack))
        self.uplink.wake()

    # -- codes from the keypad ---------------------------------------------------------------------

    async def _keypad_loop(self) -> None:
        entry = CodeEntry(
            self._keypad,
            max_len=self._settings.keypad_max_len,
            timeout_s=self._settings.keypad_timeout_s,
        )
        async for code in entry.codes():
            await self._on_code(code)
        log.warning("the keypad has gone away; doors still report, codes cannot be entered")
        self._keypad_gone = True
        self.uplink.refresh_status()

    async def _on_code(self, code: str) -> None:
        """Check one submitted code: lockout first, then hub grants, then the courier code."""
        now = self._clock()
        if self._lockout.is_locked(now=now):
            self.stats.codes_ignored += 1
            log.info("keypad locked out; entry ignored")
            return
        grant = self._grants.match(code, now=now)
        if grant is not None and not grant.spent:
            await self._open_for_grant(grant, now)
            return
        step = self._courier_step(code, now)
        if step is not None and not self._state.courier_step_spent(step):
            await self._open_for_courier(step, now)
            return
        reason = "unknown_or_expired" if grant is None and step is None else "used"
        self.stats.codes_rejected += 1
        log.info("code refused: %s", reason)
        self._emit("code_rejected", at=now, reason=reason)
        result = self._lockout.record_failure(now=now)
        if result.locked_until is not None:
            self.stats.lockouts += 1
            log.warning(
                "keypad locked out until %s after %d failed codes",
                result.locked_until.isoformat(),
                result.failures,
            )
            self._emit(
                "keypad_lockout", at=now, until=result.locked_until, failures=result.failures
            )

    def _courier_step(self, code: str, now: datetime) -> int | None:
        if self._courier_key is None:
            return None
        return match_step(
            self._courier_key,
            code,
            at=now,
            step_s=self._settings.courier_step_s,
            skew_steps=self._settings.courier_skew_steps,
        )

    async def _open_for_grant(self, grant: StoredGrant, now: datetime) -> None:
        session = Session(
            compartment=grant.compartment,
            flow=FLOW_OF_GRANT[grant.kind],
            stage="unlocked",
            grant_id=grant.grant_id,
            command_id=None,
            started=now,
        )
        if not await self._unlock(session):
            # The grant stays unused, so the person can try again once the relay is repaired.
            self.stats.codes_rejected += 1
            self._emit(
                "code_rejected",
                at=now,
                compartment=grant.compartment,
                grant_id=grant.grant_id,
                reason="hardware_fault",
            )
            return
        if grant.single_use:  # first, so no crash from here on can leave the code reusable
            self._grants.mark_used(grant.grant_id, at=now)
        self._lockout.record_success(now=now, resets=grant.single_use)
        self.stats.codes_accepted += 1
        log.info("code accepted: grant %s, compartment %d", grant.grant_id, grant.compartment)
        self._emit("code_accepted", at=now, compartment=grant.compartment, grant_id=grant.grant_id)
        self._emit("unlocked", at=now, compartment=grant.compartment, grant_id=grant.grant_id)

    async def _open_for_courier(self, step: int, now: datetime) -> None:
        number = self._free_compartment()
        if number is None:
            self.stats.codes_rejected += 1
            log.warning("courier code valid but no free compartment")
            self._emit("code_rejected", at=now, reason="no_free_compartment")
            return
        session = Session(
            compartment=number,
            flow="deposit",
            stage="unlocked",
            grant_id=None,
            command_id=None,
            started=now,
        )
        keep = time_step(now, step_s=self._settings.courier_step_s)
        keep -= self._settings.courier_skew_steps
        # Spent before the relay moves: a crash in between wastes a step, never reuses one.
        self._state.spend_courier_step(step, at=now, keep_after=keep)
        if not await self._unlock(session):
            self.stats.codes_rejected += 1
            self._emit("code_rejected", at=now, compartment=number, reason="hardware_fault")
            return
        self._lockout.record_success(now=now, resets=False)
        self.stats.codes_accepted += 1
        log.info("courier code accepted: compartment %d", number)
        size = self._settings.sizes[number - 1]
        self._emit("code_accepted", at=now, compartment=number, reason="courier_code", size=size)
        self._emit("unlocked", at=now, compartment=number, size=size)

    def _free_compartment(self) -> int | None:
        """The smallest free compartment (size S < M < L, then number): not occupied (the parcel
        sensor wins over our records), not in a flow, door shut."""
        occupied = self._state.occupied()
        candidates = []
        for c in self._hardware:
            sensed = c.occupied
            full = sensed if sensed is not None else c.number in occupied
            if full or c.number in self._sessions or c.is_open:
                continue
            candidates.append((SIZE_ORDER[self._settings.sizes[c.number - 1]], c.number))
        return min(candidates)[1] if candidates else None

    # -- relays ------------------------------------------------------------------------------------

    async def _unlock(self, session: Session) -> bool:
        """Persist the session, then energize the relay for one pulse; False (session dropped) if
        the relay did not switch. The session is in place before the await, so nothing running
        meanwhile (a command, the courier's free-compartment choice) takes the compartment."""
        number = session.compartment
        self._put_session(session)
        try:
            await self._hardware[number].unlock()
        except (HardwareOperationError, KeyError) as err:  # KeyError: grant older than a rewiring
            log.error("the lock of compartment %d did not release: %s", number, err)
            self._drop_session(number)
            return False
        self._start_pulse(number)
        return True

    def _start_pulse(self, number: int) -> None:
        """Keep the relay energized until the door opens (see :meth:`_on_door`) or the pulse
        elapses: a solenoid left on overheats, and an unopened door must lock again."""
        previous = self._relock.pop(number, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._relock[number] = loop.call_later(
            self._settings.unlock_pulse_s, self._end_pulse, number
        )

    def _end_pulse(self, number: int) -> None:
        self._relock.pop(number, None)
        self._release(number)
        log.info(
            "compartment %d not opened within %.1f s; locked again",
            number,
            self._settings.unlock_pulse_s,
        )
        session = self._sessions.get(number)
        if session is not None and session.stage == "unlocked":
            self._drop_session(number)
            self._emit_session("unlock_not_opened", session, at=self._clock())

    def _release(self, number: int) -> None:
        """De-energize a relay. A failure is logged, not raised: one bad relay must not stop the
        other compartments from opening."""
        try:
            self._hardware[number].lock()
        except HardwareOperationError as err:
            log.error("relay of compartment %d did not release: %s", number, err)

    # -- doors -------------------------------------------------------------------------------------

    async def _door_loop(self, doors: AsyncIterable[DoorChange]) -> None:
        async for change in doors:
            self._on_door(change)

    def _on_door(self, change: DoorChange) -> None:
        number = change.compartment
        session = self._sessions.get(number)
        if change.open:
            handle = self._relock.pop(number, None)
            if handle is not None:
                handle.cancel()
            self._release(number)
            self._emit("door_opened", at=change.at, compartment=number)
            if session is None:
                log.warning("compartment %d opened without an unlock", number)
                self._emit("door_forced", at=change.at, compartment=number)
            elif session.stage == "unlocked":
                self._put_session(replace(session, stage="opened"))
            self._start_left_open(number)
            return
        handle = self._left_open.pop(number, None)
        if handle is not None:
            handle.cancel()
        self._emit("door_closed", at=change.at, compartment=number)
        if session is not None and session.stage == "opened":
            self._complete(session, at=change.at)

    def _complete(self, session: Session, *, at: datetime) -> None:
        """The door of a session has opened and shut: record the flow's outcome."""
        number = session.compartment
        if session.flow == "deposit":
            self._state.set_occupied(number, True, at=at)
        elif session.flow in ("pickup", "return"):
            self._state.set_occupied(number, False, at=at)
        self._drop_session(number)
        kind = FLOW_EVENT[session.flow]
        if kind is not None:
            log.info("compartment %d: %s", number, kind)
            self._emit_session(kind, session, at=at)

    def _start_left_open(self, number: int) -> None:
        previous = self._left_open.pop(number, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._left_open[number] = loop.call_later(
            self._settings.door_left_open_s, self._door_left_open, number
        )

    def _door_left_open(self, number: int) -> None:
        self._left_open.pop(number, None)
        log.warning("compartment %d left open", number)
        self._emit("door_left_open", at=self._clock(), compartment=number)

    # -- sessions and events -----------------------------------------------------------------------

    def _put_session(self, session: Session) -> None:
        self._state.put_session(session)
        self._sessions[session.compartment] = session

    def _drop_session(self, number: int) -> None:
        self._state.drop_session(number)
        self._sessions.pop(number, None)

    def _emit_session(self, kind: LockerEventKind, session: Session, *, at: datetime) -> None:
        number = session.compartment
        self._emit(
            kind,
            at=at,
            compartment=number,
            grant_id=session.grant_id,
            command_id=session.command_id,
            size=self._settings.sizes[number - 1] if session.flow == "deposit" else None,
        )

    def _emit(
        self,
        kind: LockerEventKind,
        *,
        at: datetime,
        compartment: int | None = None,
        grant_id: UUID | None = None,
        reason: str = "",
        size: CompartmentSize | None = None,
        command_id: UUID | None = None,
        until: datetime | None = None,
        failures: int | None = None,
    ) -> None:
        def message(seq: int) -> bytes:
            return encode(
                LockerEvent(
                    locker_id=self._id,
                    seq=seq,
                    kind=kind,
                    at=at,
                    compartment=compartment,
                    grant_id=grant_id,
                    reason=reason,
                    size=size,
                    command_id=command_id,
                    until=until,
                    failures=failures,
                )
            )

        self._outbox.put(self._events_topic, message)
        self.uplink.wake()
