"""The rules of the parcel flows on stored locker events, without a broker: each event applied
once, events that match no parcel counted (not fatal), an offline courier deposit matched to the
oldest parcel on its way, and an uncollected parcel's pickup code expiring into a return code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.flows import ParcelFlows
from cloud.models import (
    Locker,
    LockerEventRow,
    OutboundMessage,
    Parcel,
    ParcelEvent,
    ParcelGrant,
    ParcelStatus,
    WebhookDelivery,
)
from cloud.services import parcels as service
from cloud.services.codes import CodeSecrets
from cloud.services.locker_flows import FlowPolicy
from protocol.codec import decode
from protocol.messages import Grant
from tests.cloud.helpers import MASTER_SECRET

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SECRETS = CodeSecrets(master_secret=MASTER_SECRET.encode(), digits=8)
POLICY = FlowPolicy(
    secrets=SECRETS,
    pickup_validity=timedelta(hours=1),
    return_validity=timedelta(hours=2),
    courier_validity=timedelta(hours=3),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _out_for_delivery(session: Session, reference: str, clock: Clock) -> uuid.UUID:
    made = service.create_parcel(
        session,
        new=service.NewParcel(
            reference=reference,
            size="M",
            locker_id="locker-1",
            address=None,
            lat=None,
            lon=None,
            window_start=None,
            window_end=None,
        ),
        tracking_validity=timedelta(days=1),
        now=clock,
    )
    for to in ("at_depot", "out_for_delivery"):
        service.transition(
            session,
            parcel_id=made.parcel.id,
            to=ParcelStatus(to),
            vehicle_id=None,
            reason="",
            now=clock,
        )
        clock.now += timedelta(seconds=1)
    return made.parcel.id


def _event(session: Session, seq: int, kind: str, **kw: object) -> None:
    session.add(
        LockerEventRow(
            locker_id="locker-1",
            seq=seq,
            kind=kind,
            at=kw.pop("at", T0 + timedelta(minutes=seq)),
            reason="",
            message_id=uuid.uuid4(),
            **kw,
        )
    )


def test_offline_deposit_unmatched_events_single_application_and_expiry(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock()
    with session_factory() as session, session.begin():
        session.add(Locker(id="locker-1", compartments=4, online=True, version=""))
    with session_factory() as session:
        older = _out_for_delivery(session, "older", clock)
        newer = _out_for_delivery(session, "newer", clock)
    with session_factory() as session, session.begin():
        # an offline courier code (no grant): the locker chose compartment 3
        _event(session, 1, "deposited", compartment=3)
        _event(session, 2, "picked_up", compartment=2, grant_id=uuid.uuid4())  # unknown grant
        _event(session, 3, "returned", compartment=3)  # no grant at all
        _event(session, 4, "door_opened", compartment=3)  # not a flow event: left alone
    flows = ParcelFlows(session_factory=session_factory, policy=POLICY, clock=clock)
    assert flows.step() is False
    assert flows.step() is False  # nothing is applied twice
    assert (flows.stats.applied, flows.stats.unmatched, flows.stats.codes_issued) == (3, 2, 1)

    with session_factory() as session:
        p_old = session.get(Parcel, older)
        p_new = session.get(Parcel, newer)
        assert p_old is not None and p_new is not None
        assert (p_old.status, p_old.compartment) == ("deposited", 3)
        assert p_new.status == "out_for_delivery"
        pickup = session.scalars(select(ParcelGrant).where(ParcelGrant.parcel_id == older)).one()
        assert (pickup.kind, pickup.compartment, pickup.state) == ("pickup", 3, "active")
        assert pickup.valid_until == T0 + timedelta(minutes=1, hours=1)
        sent = [decode(m.payload, Grant) for m in session.scalars(select(OutboundMessage))]
        assert [(g.kind, g.compartment, g.grant_id) for g in sent] == [
            ("pickup", 3, pickup.grant_id)
        ]

    clock.now = pickup.valid_until + timedelta(seconds=1)  # nobody came
    flows.step()
    assert flows.stats.expired == 1
    with session_factory() as session:
        states = [
            (g.kind, g.state, g.compartment)
            for g in session.scalars(
                select(ParcelGrant)
                .where(ParcelGrant.parcel_id == older)
                .order_by(ParcelGrant.issued_at)
            )
        ]
        kinds = [
            e.kind
            for e in session.scalars(
                select(ParcelEvent).where(ParcelEvent.parcel_id == older).order_by(ParcelEvent.id)
            )
        ]
        assert session.scalars(select(WebhookDelivery)).all() == []  # nobody subscribed
    assert states == [("pickup", "expired", 3), ("return", "active", 3)]
    assert kinds[-4:] == ["deposited", "pickup_code_issued", "code_expired", "return_code_issued"]


def test_an_event_the_database_refuses_is_counted_and_the_next_one_still_applies(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock()
    with session_factory() as session, session.begin():
        session.add(Locker(id="locker-1", compartments=4, online=True, version=""))
    with session_factory() as session:
        first = _out_for_delivery(session, "first", clock)
        holder = _out_for_delivery(session, "holder", clock)
        issued = service.issue_code(
            session,
            parcel_id=holder,
            kind="courier",
            compartment=1,
            secrets=SECRETS,
            validity=timedelta(hours=1),
            now=clock,
        )
    with session_factory() as session, session.begin():
        # an offline deposit into compartment 1, which the hub has reserved for "holder": it is
        # matched to "first" (the oldest on its way), and the unique reservation refuses it
        _event(session, 1, "deposited", compartment=1)
        _event(session, 2, "deposited", compartment=2, grant_id=issued.grant.grant_id)
    flows = ParcelFlows(session_factory=session_factory, policy=POLICY, clock=clock)
    flows.step()
    assert (flows.stats.applied, flows.stats.unmatched) == (2, 1)
    with session_factory() as session:
        p_first, p_holder = session.get(Parcel, first), session.get(Parcel, holder)
        assert p_first is not None and p_holder is not None
        assert p_first.status == "out_for_delivery"
        assert (p_holder.status, p_holder.compartment) == ("deposited", 2)
