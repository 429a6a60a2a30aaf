"""Stories of the past in the ops dashboard, in a real browser against a real hub and broker: a
van's recorded day replayed on the map, and the KPI charts of a few days.

The day is a realistic one: ten hours at 1 Hz (36,000 fixes with receiver noise, from
``tests/cloud/track_rigs.py``) stored in the hub's database as ingest stores them; the driving
events are published through the broker as the van's agent would. The oracle is the hub's own API:
the page must list the trips and stops ``/trips`` and ``/stops`` derive, and chart the figures
``/kpis`` computes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.db import make_engine, make_session_factory
from cloud.fleet import FleetSettings, VehicleProfile
from cloud.models import Parcel, ParcelEvent, PositionRow, Vehicle
from cloud.settings import Role
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch, VehicleEvent
from protocol.topics import Channel, vehicle_topic
from tests.cloud.helpers import auth, eventually, mqtt_client
from tests.cloud.track_rigs import T0, TrackBuilder
from tests.dashboard.conftest import Stack, screenshot, sign_in, unlabelled_controls

pytestmark = pytest.mark.slow

DAY = T0.date().isoformat()
NEXT_DAY = (T0 + timedelta(days=1)).date().isoformat()
ROUNDS = 12  # a drive and a stop each: 12 x (35 + 15) min = 10 h
FIGURES = {  # the KPI field -> decimals the page's tables show (kpis.js FIGURES)
    "on_time_pct": 1,
    "first_attempt_success_pct": 1,
    "deliveries_per_hour": 2,
    "km_per_parcel": 2,
    "co2_g_per_parcel": 1,
}


@pytest.fixture
def hub_overrides() -> dict[str, Any]:
    """van-1 is an e-van of the "north" depot; van-2 a diesel van of the default depot."""
    return {"fleet": FleetSettings(vehicles={"van-1": VehicleProfile(type="e_van", depot="north")})}


def ten_hour_day() -> TrackBuilder:
    """Drives of 35 min in changing directions, each ended by a 15 min stop, at 1 Hz."""
    van = TrackBuilder(noise_m=2.0).start()
    for k in range(ROUNDS):
        van.drive(2100, speed_mps=6.0, heading_deg=(k * 75) % 360).park(900)
    return van


def short_day() -> TrackBuilder:
    return TrackBuilder(lat=52.36, lon=4.90, noise_m=2.0).start().drive(1200, speed_mps=8).park(600)


def _rows(vehicle_id: str, van: TrackBuilder) -> Iterator[dict[str, Any]]:
    for p in van.points:
        yield {
            "vehicle_id": vehicle_id,
            "t": p.t,
            "lat": p.lat,
            "lon": p.lon,
            "message_id": uuid.uuid4(),
        }


def _parcel(
    session: Session,
    *,
    vehicle_id: str,
    handed: datetime,
    outcome: str = "delivered",
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """A home parcel taken out at 07:00 and then delivered (or brought back) at ``handed``."""
    pid = uuid.uuid4()
    steps = [
        (T0 - timedelta(hours=2), None, "created"),
        (T0 - timedelta(hours=1), "created", "at_depot"),
        (T0, "at_depot", "out_for_delivery"),
        (handed, "out_for_delivery", outcome),
    ]
    session.add(
        Parcel(
            id=pid,
            status=outcome,
            vehicle_id=vehicle_id,
            locker_id=None,
            compartment=None,
            address="Dam 1",
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            created_at=steps[0][0],
            updated_at=handed,
        )
    )
    session.flush()
    for at, frm, to in steps:
        session.add(
            ParcelEvent(
                parcel_id=pid,
                at=at,
                kind=to,
                from_status=frm,
                to_status=to,
                source="test",
                detail={},
            )
        )


def store_the_day(stack: Stack) -> TrackBuilder:
    """The two vans' fixes and parcels, straight into the hub's database as ingest stores them."""
    day = ten_hour_day()
    engine = make_engine(stack.settings.database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            for van in ("van-1", "van-2"):
                if session.get(Vehicle, van) is None:
                    session.add(Vehicle(id=van, online=False, version=""))
            session.flush()
            session.execute(insert(PositionRow), list(_rows("van-1", day)))
            session.execute(insert(PositionRow), list(_rows("van-2", short_day())))
            h = timedelta(hours=1)
            window = (T0, T0 + 3 * h)
            _parcel(session, vehicle_id="van-1", handed=T0 + h, window=window)  # on time
            _parcel(session, vehicle_id="van-1", handed=T0 + 4 * h, window=window)  # late
            _parcel(session, vehicle_id="van-1", handed=T0 + 5 * h)
            _parcel(session, vehicle_id="van-1", handed=T0 + 6 * h, outcome="at_depot")  # failed
            _parcel(session, vehicle_id="van-2", handed=T0 + h / 4, window=window)
            _parcel(session, vehicle_id="van-2", handed=T0 + h / 3)
    finally:
        engine.dispose()
    return day


async def publish_driving_events(stack: Stack, day: TrackBuilder) -> list[VehicleEvent]:
    """As the van's agent reports them: on the van's events topic, with where they happened."""
    events = []
    for seq, (index, kind) in enumerate(((1000, "harsh_braking"), (9000, "overspeed")), start=1):
        p = day.points[index]
        events.append(
            VehicleEvent(
                vehicle_id="van-1",
                seq=seq,
                kind=kind,
                at=p.t,
                position=Position(t=p.t, lat=p.lat, lon=p.lon, fix="3d"),
                evidence={"speed_mps": 14.0},
            )
        )
    async with mqtt_client(stack.mqtt, f"test-van-1-{uuid.uuid4().hex[:6]}") as client:
        for e in events:
            await client.publish(vehicle_topic("van-1", Channel.EVENTS), encode(e), qos=1)

    async def stored() -> bool:
        r = await stack.api.get(
            "/api/v1/events", params={"device_id": "van-1"}, headers=auth(Role.VIEWER)
        )
        return r.status_code == 200 and r.json()["count"] == len(events)

    await eventually(stored, timeout=15, what="the van's driving events stored")
    return events


async def _get(stack: Stack, path: str, **params: str) -> Any:
    r = await stack.api.get(f"/api/v1{path}", params=params, headers=auth(Role.VIEWER))
    assert r.status_code == 200, r.text
    return r.json()


def utc(iso: str) -> str:
    """How the page writes a time: the UTC clock time."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S UTC")


async def marker(page: Page) -> dict[str, str]:
    found = await page.locator(".replay-marker").evaluate("el => ({ ...el.dataset })")
    assert isinstance(found, dict)
    return found


async def test_a_vans_recorded_day_replays_with_its_trips_stops_and_events(
    stack: Stack, browser: Browser
) -> None:
    day = store_the_day(stack)
    events = await publish_driving_events(stack, day)
    window = {"from": T0.replace(hour=0).isoformat(), "to": (T0 + timedelta(hours=17)).isoformat()}
    trips = (await _get(stack, "/vehicles/van-1/trips", **window, limit="1000"))["data"]
    stops = (await _get(stack, "/vehicles/van-1/stops", **window, limit="1000"))["data"]
    assert len(trips) == ROUNDS and len(stops) >= ROUNDS - 1, (len(trips), len(stops))

    viewer = await sign_in(browser, stack, Role.VIEWER)  # read-only, and still offered the replay
    page = viewer.page
    await page.get_by_role("button", name="Day replay").click()
    await page.locator("#replay-van").select_option("van-1")
    await page.get_by_label("Day (UTC)").fill(DAY)
    await page.get_by_role("button", name="Show the day").click()
    await expect(page.locator("#replay-result")).to_have_text(
        f"van-1 on {DAY} (UTC): {len(day.points)} fixes, {len(trips)} trips, {len(stops)} stops, "
        f"{len(events)} driving events.",
        timeout=30_000,
    )
    # Every trip and stop the hub derived is listed with its times; each trip is drawn.
    trip_rows = page.locator("#replay-trips tbody tr")
    await expect(trip_rows).to_have_count(len(trips))
    for k, trip in enumerate(trips):
        cells = trip_rows.nth(k).locator("td")
        await expect(cells.nth(1)).to_have_text(utc(trip["start"]))
        await expect(cells.nth(2)).to_have_text(utc(trip["end"]))
        await expect(cells.nth(4)).to_have_text(f"{trip['distance_m'] / 1000:.1f} km")
    stop_rows = page.locator("#replay-stops tbody tr")
    await expect(stop_rows).to_have_count(len(stops))
    for k, stop in enumerate(stops):
        await expect(stop_rows.nth(k).locator("td").nth(1)).to_have_text(utc(stop["start"]))
        await expect(stop_rows.nth(k).locator("td").nth(2)).to_have_text(utc(stop["end"]))
    await expect(page.locator("path.replay-trip")).to_have_count(len(trips))
    await expect(page.locator(".replay-stop-marker")).to_have_count(len(stops))
    await expect(page.locator(".replay-stop-marker").first).to_have_attribute(
        "title", re.compile(rf"^Stop 1: arrived {utc(stops[0]['start'])}, left .*, 1[45] min")
    )
    # The driving events sit on the track, and are listed.
    for e in events:
        await expect(page.locator(f'.event-marker[data-kind="{e.kind}"]')).to_have_count(1)
        await expect(page.locator(f'#replay-events li[data-kind="{e.kind}"]')).to_contain_text(
            e.at.strftime("%H:%M:%S UTC")
        )
    # Drawn simplified: far fewer vertices than fixes.
    drawn = int(await page.locator("#view-replay").get_attribute("data-drawn") or "0")
    assert 2 * len(trips) <= drawn < len(day.points) / 10, drawn

    # The slider starts at the first fix; the keyboard moves it, the marker follows.
    slider = page.get_by_label("Time", exact=True)
    first, last = day.points[0], day.points[-1]
    assert (await marker(page))["index"] == "0"
    await slider.focus()
    await page.keyboard.press("End")
    await expect(page.locator(".replay-marker")).to_have_attribute(
        "data-index", str(len(day.points) - 1)
    )
    at_end = await marker(page)
    assert (float(at_end["lat"]), float(at_end["lon"])) == pytest.approx(
        (last.lat, last.lon), abs=1e-6
    )
    await page.keyboard.press("Home")
    await expect(page.locator(".replay-marker")).to_have_attribute("data-index", "0")
    for _ in range(5):
        await page.keyboard.press("ArrowRight")
    await expect(page.locator(".replay-marker")).to_have_attribute("data-index", "5")
    assert (await marker(page))["t"] == (first.t + timedelta(seconds=5)).isoformat().replace(
        "+00:00", ".000Z"
    )
    await expect(slider).to_have_attribute(
        "aria-valuetext", re.compile(r"^07:00:05 UTC, \d+ km/h$")
    )
    await expect(page.locator("#replay-clock")).to_have_text("07:00:05 UTC")
    # A stop's button takes the replay to its arrival, where the van stands.
    await page.get_by_role("button", name="Stop 3", exact=True).click()
    third = stops[2]
    at_stop = await marker(page)
    assert at_stop["t"].startswith(third["start"][:19]), (at_stop, third)
    assert float(at_stop["lat"]) == pytest.approx(third["lat"], abs=5e-4)
    assert float(at_stop["lon"]) == pytest.approx(third["lon"], abs=8e-4)

    # Play runs time forward (at 300x), pause holds it.
    await page.get_by_label("Speed", exact=True).select_option("300")
    play = page.get_by_role("button", name="Play", exact=True)
    await play.click()
    await expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    start_index = int(at_stop["index"])
    await eventually(
        lambda: _index_past(page, start_index + 600), timeout=30, what="the replay playing on"
    )
    await page.get_by_role("button", name="Pause", exact=True).click()
    held = (await marker(page))["index"]
    await page.wait_for_timeout(500)
    assert (await marker(page))["index"] == held
    assert int(held) > start_index

    await screenshot(page, "replay")
    assert await unlabelled_controls(page) == []
    assert viewer.errors == []


async def _index_past(page: Page, index: int) -> bool:
    return int((await marker(page))["index"]) > index


SEARCH_AND_SIMPLIFY = """async () => {
  const { indexAt, simplify } = await import("/dashboard/js/replay.js");
  // The last fix at or before t; two fixes share t=20.
  const times = Float64Array.from([10, 20, 20, 30, 45]);
  const at = [5, 10, 15, 20, 25, 30, 44, 45, 99].map((t) => indexAt(times, t));
  // 1000 fixes eastwards zig-zagging 1 m north and back (odd fixes north), with one 50 m spike
  // at fix 500: at 3 m, the ends, the spike and the even fixes either side of it (farther from
  // the steep lines to the spike than the odd ones, by the zig-zag's metre) are all that is drawn.
  const n = 1000, lat = new Float64Array(n), lon = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    lat[i] = 52 + (i % 2) * 9e-6 + (i === 500 ? 4.5e-4 : 0);
    lon[i] = 4.9 + i * 1e-5;
  }
  return { at, kept: simplify({ lat, lon }, 0, n - 1, 3) };
}"""


async def test_a_day_the_van_sent_through_the_broker_replays_with_its_speeds(
    stack: Stack, browser: Browser
) -> None:
    """The whole path: fixes published by the van for a past morning, stored by ingest, replayed
    on a tablet held upright; the speed shown is the one the van sent."""
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    van = TrackBuilder(t=start, lat=52.365, lon=4.885).start()
    van.drive(600, speed_mps=10.0, heading_deg=45.0).park(400).drive(300, speed_mps=10.0)
    speeds = [0.0] + [10.0] * 600 + [0.0] * 400 + [10.0] * 300
    fixes = [
        Position(t=p.t, lat=p.lat, lon=p.lon, speed_mps=v, fix="3d")
        for p, v in zip(van.points, speeds, strict=True)
    ]
    async with mqtt_client(stack.mqtt, f"test-van-4-{uuid.uuid4().hex[:6]}") as client:
        for seq, at in enumerate(range(0, len(fixes), 500), start=1):
            batch = TelemetryBatch(vehicle_id="van-4", seq=seq, points=tuple(fixes[at : at + 500]))
            await client.publish(vehicle_topic("van-4", Channel.TELEMETRY), encode(batch), qos=1)
    day = {"since": start.isoformat(), "until": (start + timedelta(hours=1)).isoformat()}

    async def all_stored() -> bool:
        r = await stack.api.get(
            "/api/v1/vehicles/van-4/positions",
            params={**day, "limit": "10000"},
            headers=auth(Role.VIEWER),
        )
        return r.status_code == 200 and r.json()["count"] == len(fixes)

    await eventually(all_stored, timeout=30, what="the van's fixes stored by ingest")
    window = {"from": day["since"], "to": day["until"]}
    trips = (await _get(stack, "/vehicles/van-4/trips", **window))["data"]
    stops = (await _get(stack, "/vehicles/van-4/stops", **window))["data"]
    assert (len(trips), len(stops)) == (2, 1), (trips, stops)

    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.get_by_role("button", name="Day replay").click()
    await page.locator("#replay-van").select_option("van-4")
    await page.get_by_label("Day (UTC)").fill("2026-11-24")
    await page.get_by_role("button", name="Show the day").click()
    await expect(page.locator("#replay-result")).to_have_text(
        f"van-4 on 2026-11-24 (UTC): {len(fixes)} fixes, 2 trips, 1 stop, 0 driving events."
    )
    await expect(page.locator("#replay-no-events")).to_be_visible()
    slider = page.get_by_label("Time", exact=True)
    await slider.focus()
    for _ in range(120):
        await page.keyboard.press("ArrowRight")
    await expect(slider).to_have_attribute("aria-valuetext", "09:02:00 UTC, 36 km/h")
    await expect(page.locator("#replay-speed-now")).to_have_text("36 km/h")
    await expect(page.locator(".replay-marker")).to_have_attribute("data-index", "120")
    # In the stop, the van sent 0 m/s.
    await page.get_by_role("button", name="Stop 1", exact=True).click()
    await slider.focus()
    for _ in range(60):
        await page.keyboard.press("ArrowRight")
    await expect(page.locator("#replay-speed-now")).to_have_text("0 km/h")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 768
    await screenshot(page, "replay-portrait")
    # The two pieces that keep a long day quick, on cases worked by hand.
    found = await page.evaluate(SEARCH_AND_SIMPLIFY)
    assert found["at"] == [0, 0, 0, 2, 2, 3, 3, 4, 4]
    assert found["kept"] == [0, 498, 500, 502, 999]
    assert ops.errors == []


def _cells(rows: list[dict[str, Any]], series: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["day"], r[series]): r for r in rows}


async def _table(page: Page, figure: str) -> dict[tuple[str, str], str]:
    """The fallback table of one chart as {(day, series): text}."""
    got = await page.locator(f"#kpi-table-{figure}").evaluate(
        """t => [...t.tBodies[0].rows].flatMap(row => [...row.querySelectorAll("td")]
             .map(td => [row.dataset.day, td.dataset.series, td.textContent]))"""
    )
    return {(d, s): text for d, s, text in got}


async def _chart(page: Page, figure: str) -> dict[str, Any]:
    """What Chart.js itself holds for a chart: its labels and each dataset's values."""
    got = await page.evaluate(
        """key => { const c = Chart.getChart(document.getElementById(`kpi-chart-${key}`));
             return { labels: c.data.labels,
                      data: Object.fromEntries(c.data.datasets.map(d => [d.label, d.data])) }; }""",
        figure,
    )
    assert isinstance(got, dict)
    return got


async def _check_kpis(page: Page, rows: list[dict[str, Any]], series: str) -> None:
    want = _cells(rows, series)
    names = sorted({name for _, name in want})
    for figure, digits in FIGURES.items():
        table = await _table(page, figure)
        assert set(table) == {(d, n) for d in (DAY, NEXT_DAY) for n in names}, figure
        for (d, n), text in table.items():
            value = want.get((d, n), {}).get(figure)
            assert text == ("\u2013" if value is None else f"{value:.{digits}f}"), (
                figure,
                d,
                n,
                text,
            )
        chart = await _chart(page, figure)
        assert chart["labels"] == [DAY, NEXT_DAY]
        assert chart["data"] == {
            n: [want.get((d, n), {}).get(figure) for d in (DAY, NEXT_DAY)] for n in names
        }, figure


async def test_the_kpi_charts_draw_the_apis_figures_per_van_and_per_depot(
    stack: Stack, browser: Browser
) -> None:
    store_the_day(stack)
    report = await _get(stack, "/kpis", **{"from": DAY, "to": NEXT_DAY})
    vans = [r for r in report["data"] if r["vehicle_id"] is not None]
    depots = [r for r in report["data"] if r["vehicle_id"] is None]
    assert {r["vehicle_id"] for r in vans if r["day"] == DAY} == {"van-1", "van-2"}
    assert {r["depot"] for r in depots if r["day"] == DAY} == {"north", "main"}
    first_day = _cells(vans, "vehicle_id")
    # The seeded parcels make every figure a number on the first day, some differing by van.
    assert first_day[(DAY, "van-1")]["on_time_pct"] == 50.0
    assert first_day[(DAY, "van-1")]["first_attempt_success_pct"] == 75.0
    assert all(first_day[(DAY, "van-1")][f] is not None for f in FIGURES)

    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await page.get_by_role("button", name="KPIs").click()
    await page.locator("#kpi-from").fill(DAY)
    await page.get_by_label("To", exact=True).fill(NEXT_DAY)
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.locator("#kpi-result")).to_have_text("2 vans, 2 days (UTC).")
    await _check_kpis(page, vans, "vehicle_id")
    on_time = page.get_by_role("img", name=re.compile(r"^On time \(%\) per day"))
    await expect(on_time).to_be_visible()
    # The tables are for screen readers, and shown on request.
    tables = page.locator("table.kpi-table")
    await expect(tables).to_have_count(len(FIGURES))
    await expect(tables.first).to_have_class(re.compile(r"\bvisually-hidden\b"))
    await page.get_by_role("button", name="Show the data tables").click()
    await expect(tables.first).not_to_have_class(re.compile(r"\bvisually-hidden\b"))
    await screenshot(page, "kpis")

    await page.get_by_label("depot", exact=True).check()
    await expect(page.locator("#kpi-result")).to_have_text("2 depots, 2 days (UTC).")
    await _check_kpis(page, depots, "depot")
    await screenshot(page, "kpis-depots")

    # A range backwards is said, not asked for.
    await page.locator("#kpi-from").fill(NEXT_DAY)
    await page.get_by_label("To", exact=True).fill(DAY)
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.locator("#kpi-result")).to_have_text(
        f"The first day ({NEXT_DAY}) is after the last ({DAY})."
    )
    assert await unlabelled_controls(page) == []
    assert ops.errors == []
