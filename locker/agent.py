"""The locker agent: grants in from the hub, codes in from the keypad, relays out, events back.

Three loops share one task group: the uplink (broker session, outbox drain, grant delivery), the
keypad (submitted codes) and the doors (switch changes). Everything the agent does is reported as a
:class:`~protocol.messages.LockerEvent`, written to the durable outbox before anything else
learns of it, so the hub's record survives a lost connection or a power cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from edge.outbox import Outbox
from edge.uplink import Uplink
from locker import __version__
from locker.errors import HardwareOperationError
from locker.grants import GrantStore
from locker.hardware import DoorChange, LockerHardware
from locker.keypad import CodeEntry, Keypad
from locker.settings import LockerSettings
from protocol.codec import decode, encode
from protocol.errors import DecodeError
from protocol.messages import DeviceStatus, Grant, LockerEvent, LockerEventKind
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
    rejected_messages: Counter[str] = field(default_factory=Counter)


class LockerAgent:
    """One locker. Build it in :mod:`locker.app`; run it with :meth:`run` until cancelled.

    The agent owns none of its parts' lifetimes: the composition root opens and closes the hardware,
    grant store and outbox. It builds its own :class:`~edge.uplink.Uplink`, because the uplink's
    handler and status payload are the agent's own methods.
    """

    def __init__(
        self,
        *,
        settings: LockerSettings,
        hardware: LockerHardware,
        keypad: Keypad,
        grants: GrantStore,
        outbox: Outbox,
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
        self._clock = clock
        self._events_topic = locker_topic(self._id, Channel.EVENTS)
        self._grants_topic = locker_topic(self._id, Channel.GRANTS)
        self._relock: dict[int, asyncio.TimerHandle] = {}
        self._started = time.monotonic()
        self.stats = LockerStats()
        self.uplink = Uplink(
            client_id=f"locker-{self._id}",
            settings=settings.mqtt,
            outbox=outbox,
            status_topic=locker_topic(self._id, Channel.STATUS),
            status_payload=self.status_payload,
            subscriptions=[self._grants_topic],
            handler=self.handle_message,
            status_interval_s=status_interval_s,
        )

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled. Door changes are captured from this call on."""
        doors = self._hardware.door_changes()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.uplink.run(), name="locker-uplink")
                tg.create_task(self._keypad_loop(), name="locker-keypad")
                tg.create_task(self._door_loop(doors), name="locker-doors")
        finally:
            doors.close()
            for handle in self._relock.values():
                handle.cancel()
            self._relock.clear()
            for compartment in self._hardware:
                self._release(compartment.number)

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
            )
        )

    # -- grants from the hub -----------------------------------------------------------------------

    async def handle_message(self, topic: str, payload: bytes) -> None:
        """Store a grant from the hub. A message we cannot use is logged, counted and dropped: the
        uplink acknowledges it anyway, because redelivering a bad message would not make it good."""
        if topic != self._grants_topic:
            self._reject("unexpected_topic", f"message on {topic!r}")
            return
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
                "grant %s for compartment %d stored (valid %s to %s)",
                grant.grant_id,
                grant.compartment,
                grant.valid_from.isoformat(),
                grant.valid_until.isoformat(),
            )
        else:
            self.stats.grants_repeated += 1

    def _reject(self, reason: str, detail: str) -> None:
        self.stats.rejected_messages[reason] += 1
        log.warning("message on the grants topic dropped: %s (%s)", reason, detail)

    # -- codes from the keypad ---------------------------------------------------------------------

    async def _keypad_loop(self) -> None:
        entry = CodeEntry(
            self._keypad,
            max_len=self._settings.keypad_max_len,
            timeout_s=self._settings.keypad_timeout_s,
        )
        async for code in entry.codes():
            self._on_code(code)
        log.warning("the keypad has gone away; doors still report, codes cannot be entered")

    def _on_code(self, code: str) -> None:
        """Check one submitted code. The place for brute-force lockout, later: before the match."""
        now = self._clock()
        grant = self._grants.match(code, now=now)
        if grant is None or grant.spent:
            reason = "unknown_or_expired" if grant is None else "used"
            self.stats.codes_rejected += 1
            log.info("code refused: %s", reason)
            self._emit("code_rejected", at=now, reason=reason)
            return
        try:
            self._hardware[grant.compartment].unlock()
        except (HardwareOperationError, KeyError) as err:  # KeyError: grant older than a rewiring
            # The grant stays unused, so the person can try again once the relay is repaired.
            log.error("code matched but the lock did not release: %s", err)
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
        self.stats.codes_accepted += 1
        log.info("code accepted: grant %s, compartment %d", grant.grant_id, grant.compartment)
        self._emit("code_accepted", at=now, compartment=grant.compartment, grant_id=grant.grant_id)
        self._emit("unlocked", at=now, compartment=grant.compartment, grant_id=grant.grant_id)
        self._start_pulse(grant.compartment)

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
        if change.open:
            handle = self._relock.pop(change.compartment, None)
            if handle is not None:
                handle.cancel()
            self._release(change.compartment)
        self._emit(
            "door_opened" if change.open else "door_closed",
            at=change.at,
            compartment=change.compartment,
        )

    # -- events ------------------------------------------------------------------------------------

    def _emit(
        self,
        kind: LockerEventKind,
        *,
        at: datetime,
        compartment: int | None = None,
        grant_id: UUID | None = None,
        reason: str = "",
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
                )
            )

        self._outbox.put(self._events_topic, message)
        self.uplink.wake()
