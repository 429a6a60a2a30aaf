"""The KPI definitions on a hand-made day whose answers are worked out by hand below."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from cloud.fleet import FleetSettings, VehicleProfile
from cloud.services.kpis import (
    KpiRow,
    LockerFacts,
    ParcelFacts,
    Transition,
    VehicleDay,
    compute,
    percentile,
)

D = date(2026, 11, 23)
H = 3600.0
FLEET = FleetSettings(
    default_depot="north",
    vehicles={
        "van-1": VehicleProfile(type="diesel_van", depot="north"),
        "van-2": VehicleProfile(type="e_van", depot="south"),
    },
    lockers={"locker-1": "north"},
)


def at(hour: float, day: date = D) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)


def parcel(
    name: str,
    *steps: tuple[float, str, str],
    vehicle: str | None = "van-1",
    locker: str | None = None,
    window: tuple[float, float] | None = None,
    day: date = D,
) -> ParcelFacts:
    """A parcel created at depot and sent out at 07:00, then ``steps`` (hour, from, to)."""
    chain = [
        Transition(at(6, day), None, "created"),
        Transition(at(6.5, day), "created", "at_depot"),
        Transition(at(7, day), "at_depot", "out_for_delivery"),
    ]
    chain += [Transition(at(h, day), frm, to) for h, frm, to in steps]
    return ParcelFacts(
        parcel_id=name,
        vehicle_id=vehicle,
        locker_id=locker,
        window_start=at(window[0], day) if window else None,
        window_end=at(window[1], day) if window else None,
        transitions=tuple(chain),
    )


OFD = "out_for_delivery"
PARCELS = [
    # on time, first attempt
    parcel("P1", (11, OFD, "delivered"), window=(10, 12)),
    # failed first attempt, then delivered late
    parcel(
        "P2",
        (10.5, OFD, "at_depot"),
        (11, "at_depot", OFD),
        (13, OFD, "delivered"),
        window=(10, 12),
    ),
    # delivered before its window: nobody home yet, not on time
    parcel("P3", (13.5, OFD, "delivered"), window=(14, 16)),
    # deposited before the end of its window: on time; picked up 6 h later
    parcel(
        "P4",
        (9, OFD, "deposited"),
        (15, "deposited", "picked_up"),
        locker="locker-1",
        window=(10, 12),
    ),
    # no window: a handover, not counted for on-time; 2 h dwell
    parcel("P5", (10, OFD, "deposited"), (12, "deposited", "picked_up"), locker="locker-1"),
    # deposited the evening before, no van on record: only its pickup (12 h dwell) is today's
    ParcelFacts(
        parcel_id="P6",
        vehicle_id=None,
        locker_id="locker-1",
        window_start=None,
        window_end=None,
        transitions=(
            Transition(at(20, D - timedelta(days=1)), OFD, "deposited"),
            Transition(at(8), "deposited", "picked_up"),
        ),
    ),
    # van-2 of the south depot deposits at 18:00 into the north locker; still inside
    parcel("P7", (18, OFD, "deposited"), vehicle="van-2", locker="locker-1"),
]
VANS = [
    VehicleDay(vehicle_id="van-1", day=D, distance_m=40_000, road_s=8 * H),
    VehicleDay(vehicle_id="van-2", day=D, distance_m=10_000, road_s=2 * H),
]
LOCKERS = [LockerFacts(locker_id="locker-1", compartments=4)]


def _rows(now: datetime) -> dict[tuple[str, str | None], KpiRow]:
    report = compute(
        first=D, last=D, parcels=PARCELS, vehicle_days=VANS, lockers=LOCKERS, fleet=FLEET, now=now
    )
    assert {r.day for r in report.rows} == {D}
    return {(r.depot, r.vehicle_id): r for r in report.rows}


def test_a_vans_day_counts_handovers_punctuality_first_attempts_and_its_road_figures() -> None:
    van = _rows(at(6, D + timedelta(days=1)))[("north", "van-1")]
    assert van.handovers == 5  # P1, P2, P3 delivered; P4, P5 deposited
    assert (van.on_time, van.on_time_eligible) == (2, 4)  # P1 and P4 of P1..P4
    assert van.on_time_pct == 50.0
    assert (van.first_attempt_successes, van.first_attempts) == (4, 5)  # P2 failed first
    assert van.first_attempt_success_pct == 80.0
    assert van.deliveries_per_hour == pytest.approx(5 / 8)
    assert van.km_per_parcel == pytest.approx(8.0)
    assert van.co2_g == pytest.approx(40 * 250)  # diesel van, 250 g/km by default
    assert van.co2_g_per_parcel == pytest.approx(2000.0)
    assert van.pickups == 2  # P4 after 6 h, P5 after 2 h
    assert van.dwell_median_s == pytest.approx(4 * H)
    assert van.dwell_p90_s == pytest.approx((2 + 0.9 * 4) * H)
    assert van.locker_utilisation_pct is None  # a van has no lockers


def test_a_depot_sums_its_vans_and_its_lockers_and_counts_parcels_of_no_van() -> None:
    rows = _rows(at(6, D + timedelta(days=1)))
    north = rows[("north", None)]
    assert north.handovers == 5  # P6's deposit was yesterday
    assert north.pickups == 3  # P6's pickup counts for its locker's depot
    assert north.dwell_median_s == pytest.approx(6 * H)  # of 2, 6, 12 h
    assert north.dwell_p90_s == pytest.approx((6 + 0.8 * 6) * H)
    # locker-1: P4 6 h, P5 2 h, P6 8 h (since midnight), P7 6 h (until midnight) of 4 x 24 h
    assert north.locker_occupied_s == pytest.approx(22 * H)
    assert north.locker_utilisation_pct == pytest.approx(100 * 22 / 96)
    south = rows[("south", "van-2")]
    assert (south.handovers, south.on_time_eligible, south.on_time_pct) == (1, 0, None)
    assert south.first_attempt_success_pct == 100.0
    assert south.deliveries_per_hour == pytest.approx(0.5)
    assert south.co2_g_per_parcel == pytest.approx(10 * 50)  # e-van, 50 g/km
    assert rows[("south", None)].locker_utilisation_pct is None  # no lockers in the south
    assert set(rows) == {("north", None), ("north", "van-1"), ("south", None), ("south", "van-2")}


def test_the_lockers_day_so_far_is_measured_against_the_hours_gone_by() -> None:
    noon = at(12)
    so_far = [
        replace(p, transitions=tuple(t for t in p.transitions if t.at <= noon)) for p in PARCELS
    ]
    report = compute(
        first=D,
        last=D + timedelta(days=1),
        parcels=so_far,
        vehicle_days=[],
        lockers=LOCKERS,
        fleet=FLEET,
        now=noon,
    )
    today, tomorrow = report.lockers
    # by noon: P4 9-12 (still inside), P5 10-12, P6 0-8 = 13 h of 4 x 12 h; P7 not there yet
    assert today.occupied_s == pytest.approx(13 * H)
    assert today.available_s == pytest.approx(48 * H)
    assert today.utilisation_pct == pytest.approx(100 * 13 / 48)
    assert today.pickups == 2  # P6 at 08:00, P5 at 12:00
    assert today.dwell_median_s == pytest.approx((12 + 2) / 2 * H)
    assert (tomorrow.available_s, tomorrow.utilisation_pct) == (0.0, None)


def test_a_van_that_did_not_drive_has_no_rates_and_no_division_by_zero() -> None:
    report = compute(
        first=D,
        last=D,
        parcels=[parcel("P1", (11, OFD, "delivered"), window=(10, 12))],
        vehicle_days=[VehicleDay(vehicle_id="van-1", day=D, distance_m=0, road_s=0)],
        lockers=[],
        fleet=FLEET,
        now=at(23),
    )
    van = next(r for r in report.rows if r.vehicle_id == "van-1")
    assert (van.handovers, van.deliveries_per_hour, van.km_per_parcel) == (1, None, 0.0)
    assert van.co2_g_per_parcel == 0.0


def test_percentiles_interpolate_between_order_statistics() -> None:
    assert percentile([4, 1, 3, 2], 0.9) == pytest.approx(3.7)
    assert percentile([5], 0.9) == 5
    assert percentile([1, 2, 3], 0.5) == 2
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_a_vehicle_type_without_an_emission_factor_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no emission factor for vehicle type.*hydrogen_van"):
        FleetSettings(vehicles={"van-9": VehicleProfile(type="hydrogen_van")})
