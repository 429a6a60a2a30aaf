"""The van agent: GNSS fixes in, chosen points batched out through the durable outbox.

Pipeline: source → :class:`~edge.reporting.Reporter` (which fixes are worth a point) →
:class:`~edge.batcher.Batcher` (how many points per message) → outbox → uplink. The source's health
rides in the retained status, and a change of health republishes the status at once.

Vehicle-bus sources (CAN, OBD-II; :class:`SignalSource`) run beside it: the agent keeps the latest value
of every signal and turns the few discrete changes a fleet acts on into ``VehicleEvent`` messages
(see :class:`SignalEvents` for which). Events go through the outbox at priority 1, so after an outage
they reach the hub before the backlog of positions.

Remote commands arrive on ``fleet/{id}/cmd`` and are checked and carried out by
:class:`~edge.commands.CommandHandler` (the agent is its :class:`~edge.commands.VehicleControl`);
their acks go through the outbox at event priority too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from edge import __version__
from edge.batcher import Batcher
from edge.commands import CommandHandler
from edge.config import VehicleSettings
from edge.driving import DrivingEvent, DrivingMonitor
from edge.errors import CommandFailed, ConfigError
from edge.gnss.source import GnssSource
from edge.obd.connection import Dtc
from edge.obd.errors import ObdError
from edge.outbox import Outbox
from edge.reporting import Reporter, ReportingSettings
from edge.routes import FollowsRoutes, MemoryRoutes, RouteKeeper, RouteStore
from edge.signals import Health, SignalUpdate
from edge.uplink import Uplink
from protocol.codec import encode
from protocol.commands import MemoryNonces, NonceStore
from protocol.messages import (
    CommandAck,
    DeviceStatus,
    Evidence,
    Position,
    Route,
    TelemetryBatch,
    VehicleEvent,
)
from protocol.topics import Channel, vehicle_topic

log = logging.getLogger(__name__)

EVENT_PRIORITY = 1
"""Outbox priority of vehicle events: above positions (0), so they drain first after an outage."""


class SignalSource(Protocol):
    """A vehicle-bus source (:class:`edge.can.CanSource`, :class:`edge.obd.ObdSource`): an endless
    stream of updates that reconnects by itself, and its current health."""

    @property
    def health(self) -> Health: ...

    def updates(self) -> AsyncIterator[SignalUpdate]: ...


@runtime_checkable
class DtcReader(Protocol):
    """A source that reads trouble codes on demand (:class:`edge.obd.ObdSource`)."""

    async def read_dtcs(self) -> tuple[Dtc, ...]: ...


class SignalEvents:
    """Which signal updates are events for the fleet. Deliberately small; pure, so it is tested alone.

    Signals are recognised by the name they arrive under (a CAN signal's alias if it has one):

    - ``DOOR_*`` / ``door_*``: ``door_opened`` when the value becomes non-zero, ``door_closed`` when
      it returns to 0;
    - ``GEAR`` / ``gear``: ``gear_changed`` whenever the value changes;
    - ``RPM`` / ``ENGINE_RPM`` (any case): ``ignition_on`` when the engine speed goes above
      :attr:`RPM_ON`, ``ignition_off`` once it has read 0 for :attr:`OFF_AFTER_S` (stamped at the first
      zero). The ignition starts as off, so a van started with the engine running reports
      ``ignition_on`` once. "Off" is confirmed by the first RPM update ``OFF_AFTER_S`` after the first
      zero: the sources' heartbeat (``max_interval_s`` on CAN, the poll interval on OBD) provides it.

    The first value of a door or gear is not an event: there is no change to report. Times are the
    updates' own (signal time), so a burst of replayed frames is judged as the car lived it.
    """

    RPM_ON = 300.0
    OFF_AFTER_S = 5.0
    RPM_SIGNALS = frozenset({"rpm", "engine_rpm"})

    def __init__(self) -> None:
        self.latest: dict[str, SignalUpdate] = {}
        self.ignition_on = False
        self._rpm_zero_since: float | None = None

    def offer(self, update: SignalUpdate) -> list[tuple[str, float]]:
        """Remember ``update``; return the events it causes as ``(kind, t)``."""
        name = update.name
        previous = self.latest.get(name)
        self.latest[name] = update
        if name.startswith(("DOOR_", "door_")):
            if previous is not None and (previous.value != 0) != (update.value != 0):
                return [("door_opened" if update.value != 0 else "door_closed", update.t)]
        elif name.lower() == "gear":
            if previous is not None and previous.value != update.value:
                return [("gear_changed", update.t)]
        elif name.lower() in self.RPM_SIGNALS:
            return self._ignition(update)
        return []

    def _ignition(self, update: SignalUpdate) -> list[tuple[str, float]]:
        if update.value > self.RPM_ON:
            self._rpm_zero_since = None
            if not self.ignition_on:
                self.ignition_on = True
                return [("ignition_on", update.t)]
        elif update.value <= 0:
            if self._rpm_zero_since is None:
                self._rpm_zero_since = update.t
            if self.ignition_on and update.t - self._rpm_zero_since >= self.OFF_AFTER_S:
                self.ignition_on = False
                return [("ignition_off", self._rpm_zero_since)]
        else:
            self._rpm_zero_since = None  # idling below RPM_ON, or cranking: no change either way
        return []


class VehicleAgent:
    """Owns one van's sources and link. Everything it produces goes through ``outbox`` first."""

    def __init__(
        self,
        *,
        settings: VehicleSettings,
        gnss: GnssSource,
        outbox: Outbox,
        uplink: Uplink | None = None,
        reporter: Reporter | None = None,
        signal_sources: Mapping[str, SignalSource] | None = None,
        health_poll_s: float = 1.0,
        nonces: NonceStore | None = None,
        reload_settings: Callable[[], VehicleSettings] | None = None,
        routes: RouteStore | None = None,
    ) -> None:
        """``signal_sources`` are keyed by the name their health has in the status (``can``,
        ``obd``). Their health is a plain attribute, so it is polled every ``health_poll_s``.

        Remote commands (:mod:`edge.commands`) are checked against ``nonces`` (the composition
        root passes a durable store; in memory by default, for tests) and ``reload_settings``
        re-reads the config file (None: the ``reload_settings`` command is refused)."""
        self.settings = settings
        self.vehicle_id = settings.device_id
        self._gnss = gnss
        self._outbox = outbox
        self._started = time.monotonic()
        self._telemetry_topic = vehicle_topic(self.vehicle_id, Channel.TELEMETRY)
        self._events_topic = vehicle_topic(self.vehicle_id, Channel.EVENTS)
        self._signal_sources = dict(signal_sources or {})
        self._signal_updates = dict.fromkeys(self._signal_sources, 0)
        self._health_poll_s = health_poll_s
        self.signal_events = SignalEvents()
        # Driving events (edge/driving/): ignition is inferred from motion only without a vehicle bus.
        self.driving = DrivingMonitor(
            settings=settings.driving, infer_ignition=not self._signal_sources
        )
        self.last_fix: Position | None = None
        self._last_reported: Position | None = None
        self.reporter = reporter or Reporter(settings=settings.reporting)
        self._batcher = Batcher(
            max_points=settings.batch.max_points, max_age_s=settings.batch.max_age_s
        )
        self._batch_opened: float | None = None  # loop time of the open batch's first point
        self._batch_open = asyncio.Event()
        self._cmd_topic = vehicle_topic(self.vehicle_id, Channel.CMD)
        self._ack_topic = vehicle_topic(self.vehicle_id, Channel.CMD_ACK)
        self._reload = reload_settings
        self.commands = CommandHandler(
            device_id=self.vehicle_id,
            key=settings.command_secret(),
            nonces=nonces if nonces is not None else MemoryNonces(),
            control=self,
            reply=self._queue_ack,
        )
        # The route from the hub (edge.routes): durable when the composition root passes a store.
        self._route_topic = vehicle_topic(self.vehicle_id, Channel.ROUTE)
        self.routes = RouteKeeper(
            device_id=self.vehicle_id,
            store=routes or MemoryRoutes(),
            reply=self._queue_ack,
            key=settings.command_secret(),
            on_route=self._drive_route if isinstance(gnss, FollowsRoutes) else None,
        )
        self.uplink = uplink or Uplink(
            client_id=f"vehicle-{self.vehicle_id}",
            settings=settings.mqtt,
            outbox=outbox,
            status_topic=vehicle_topic(self.vehicle_id, Channel.STATUS),
            status_payload=self.status_payload,
            status_interval_s=settings.status_interval_s,
            subscriptions=[self._cmd_topic, self._route_topic],
            handler=self.handle_message,
        )
        self.points_queued = 0
        self.events_queued = 0

    def health(self) -> dict[str, str]:
        """What the retained status says about this van's sensors (strings: the contract's type)."""
        h = self._gnss.health
        out = {"gnss": self.settings.gnss, "gnss_state": str(h.state)}
        if h.error:
            out["gnss_error"] = h.error
        out.update({f"gnss_{k}": str(v) for k, v in self._gnss.counters().items()})
        out["reported"] = str(sum(self.reporter.reasons.values()))
        for name, source in self._signal_sources.items():
            out[name] = source.health
            out[f"{name}_updates"] = str(self._signal_updates[name])
        out.update({f"driving_{k}": str(v) for k, v in self.driving.all_counters().items()})
        out["commands_executed"] = str(sum(self.commands.stats.executed.values()))
        out["commands_refused"] = str(sum(self.commands.stats.refused.values()))
        out["routes_refused"] = str(sum(self.routes.refused.values()))
        return out

    @property
    def latest_signals(self) -> Mapping[str, SignalUpdate]:
        """The last update of every signal seen, by name."""
        return self.signal_events.latest

    def status_payload(self, online: bool) -> bytes:
        rows, size = self._outbox.depth()
        return encode(
            DeviceStatus(
                device_id=self.vehicle_id,
                kind="vehicle",
                online=online,
                version=__version__,
                uptime_s=round(time.monotonic() - self._started, 1),
                outbox_depth=rows,
                health=self.health(),
                outbox_bytes=size,
                outbox_dropped=self._outbox.drops(),
            )
        )

    async def run(self) -> None:
        """Run until cancelled. On cancellation the open batch is queued, so no point is dropped."""
        self.routes.start()  # acks for a kept route dropped on start (expired while off)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.uplink.run(), name="uplink")
            tg.create_task(self._collect(), name="gnss")
            tg.create_task(self._watch_health(), name="gnss-health")
            tg.create_task(self._age_out(), name="batch-age")
            for name, source in self._signal_sources.items():
                tg.create_task(self._signals(name, source), name=f"signals-{name}")
            if self._signal_sources:
                tg.create_task(self._watch_signal_health(), name="signals-health")

    async def _collect(self) -> None:
        try:
            async for fix in self._gnss.fixes():
                self.last_fix = fix
                for event in self.driving.offer_fix(fix):
                    self._queue_driving_event(event)  # forces this very fix to be reported
                if self.reporter.offer(fix) is not None:
                    self._last_reported = fix
                    self._add(fix)
        finally:
            self._flush()

    async def _watch_health(self) -> None:
        async for h in self._gnss.health_changes():
            log.info("gnss %s%s", h.state, f": {h.error}" if h.error else "")
            self.uplink.refresh_status()

    async def _signals(self, name: str, source: SignalSource) -> None:
        async for update in source.updates():
            self._signal_updates[name] += 1
            for kind, t in self.signal_events.offer(update):
                self._queue_event(kind, t, {update.name: update.value})
                self.reporter.force()  # every event, ignition and doors included, gets its point
            for event in self.driving.offer_signal(update):
                self._queue_driving_event(event)

    async def _watch_signal_health(self) -> None:
        """Republish the status when a source's health changes (the sources expose no stream of it)."""
        seen: dict[str, Health] = {}
        while True:
            now = {name: s.health for name, s in self._signal_sources.items()}
            if now != seen:
                if seen:
                    log.info("signal sources: %s", now)
                    self.uplink.refresh_status()
                seen = now
            await asyncio.sleep(self._health_poll_s)

    def _queue_event(
        self, kind: str, t: float, evidence: Evidence, position: Position | None = None
    ) -> None:
        vid = self.vehicle_id
        at = datetime.fromtimestamp(t, UTC)
        position = position if position is not None else self.last_fix
        self._outbox.put(
            self._events_topic,
            lambda seq: encode(
                VehicleEvent(
                    vehicle_id=vid,
                    seq=seq,
                    kind=kind,
                    at=at,
                    position=position,
                    evidence=evidence,
                )
            ),
            priority=EVENT_PRIORITY,
        )
        self.events_queued += 1
        log.info("vehicle event %s %s", kind, evidence)
        self.uplink.wake()

    def _queue_driving_event(self, event: DrivingEvent) -> None:
        """A driving event goes out like any vehicle event (priority 1) and forces a point, so the
        track on the map shows where it happened."""
        self._queue_event(event.kind, event.t, event.evidence, event.position)
        self.reporter.force()

    async def _age_out(self) -> None:
        """Close a batch by wall-clock age too. The batcher closes batches when a point arrives, but
        a parked van reports every few minutes, and a point kept in memory that long is outside the
        outbox and lost if the power goes."""
        loop = asyncio.get_running_loop()
        max_age = self.settings.batch.max_age_s
        while True:
            await self._batch_open.wait()
            opened = self._batch_opened
            if opened is None:  # closed between the event and now
                self._batch_open.clear()
                continue
            await asyncio.sleep(max(0.0, opened + max_age - loop.time()))
            if self._batch_opened == opened:
                self._flush()

    def _add(self, fix: Position) -> None:
        if self._batch_opened is None:
            self._batch_opened = asyncio.get_running_loop().time()
            self._batch_open.set()
        batch = self._batcher.add(fix)
        if batch:
            self._queue(batch)

    def _flush(self) -> None:
        rest = self._batcher.flush()
        if rest:
            self._queue(rest)

    def _queue(self, points: list[Position]) -> None:
        self._batch_opened = None
        self._batch_open.clear()
        vid = self.vehicle_id
        self._outbox.put(
            self._telemetry_topic,
            lambda seq: encode(TelemetryBatch(vehicle_id=vid, seq=seq, points=tuple(points))),
        )
        self.points_queued += len(points)
        self.uplink.wake()

    # -- remote commands (edge.commands.VehicleControl) -------------------------------------------

    async def handle_message(self, topic: str, payload: bytes) -> None:
        """The uplink's handler: commands are answered, anything else is logged and dropped."""
        if topic == self._cmd_topic:
            await self.commands.handle(payload)
        elif topic == self._route_topic:
            self.routes.handle(payload)
        else:
            log.warning("message on unexpected topic %r dropped", topic)

    def _drive_route(self, route: Route) -> None:
        """A simulated van drives the route it was given (edge.gnss.sim); a real one has a driver."""
        if isinstance(self._gnss, FollowsRoutes):
            self._gnss.follow_route([(s.lat, s.lon) for s in route.stops])

    def _queue_ack(self, ack: CommandAck) -> None:
        # Priority of events: after an outage the hub hears what became of its commands before
        # the backlog of positions.
        self._outbox.put(
            self._ack_topic,
            lambda seq: encode(ack.model_copy(update={"seq": seq})),
            priority=EVENT_PRIORITY,
        )
        self.uplink.wake()

    @property
    def reporting(self) -> ReportingSettings:
        return self.reporter.settings

    def set_reporting(self, settings: ReportingSettings) -> None:
        log.info("reporting profiles now %s", settings)
        self.reporter.reconfigure(settings)

    def send_position_now(self) -> Position:
        """Queue the latest fix at once, closing the open batch with it. Raises CommandFailed
        (``no_fix``) before the receiver has given one."""
        fix = self.last_fix
        if fix is None:
            raise CommandFailed("no_fix", "the receiver has not given a position yet")
        if fix is not self._last_reported:
            self.reporter.force()
            self.reporter.offer(fix)
            self._last_reported = fix
            self._add(fix)
        self._flush()
        return fix

    async def read_dtcs(self) -> tuple[Dtc, ...]:
        source = self._signal_sources.get("obd")
        if source is None or not isinstance(source, DtcReader):
            raise CommandFailed("no_obd", "this van has no OBD-II source configured")
        try:
            return await source.read_dtcs()
        except ObdError as err:
            raise CommandFailed("obd_unavailable", str(err)) from None

    def reload_settings(self) -> tuple[list[str], list[str]]:
        """Re-read the config file; apply the reporting profiles, outbox bounds and command key
        now, and name the other changed fields (they need a restart)."""
        if self._reload is None:
            raise CommandFailed("no_config_file", "this agent was not started from a config file")
        try:
            new = self._reload()
        except ConfigError as err:
            raise CommandFailed("config_invalid", str(err)) from None
        if new.device_id != self.vehicle_id:
            raise CommandFailed("config_invalid", f"the file is for {new.device_id!r} now")
        applied: list[str] = []
        restart: list[str] = []
        live: dict[str, object] = {}
        if new.reporting != self.reporter.settings:  # also undoes set_reporting_profile
            self.reporter.reconfigure(new.reporting)
            applied.append("reporting")
        for name in sorted(VehicleSettings.model_fields):
            if name == "reporting" or getattr(new, name) == getattr(self.settings, name):
                continue
            if name == "outbox":
                self._outbox.limits = new.outbox
            elif name == "command_key":
                self.commands.key = new.command_secret()
                self.routes.key = new.command_secret()  # the route key derives from it
            else:
                restart.append(name)
                continue
            applied.append(name)
            live[name] = getattr(new, name)
        self.settings = self.settings.model_copy(update={"reporting": new.reporting, **live})
        log.info("settings reloaded: applied %s, restart needed for %s", applied, restart)
        return applied, restart
