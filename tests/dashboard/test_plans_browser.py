"""Stories of planning in the ops dashboard, in a real browser against a real hub and broker: a plan
started in the page runs, is dispatched from the page and a real (simulated) van agent acknowledges
its route; the routes are drawn on the map with their ETAs, done and late stops; a viewer sees the
plans but is offered no start, dispatch or re-plan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from cloud.settings import Role
from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import VehicleSettings
from edge.outbox import Outbox
from edge.routes import MemoryRoutes
from edge.settings import MqttSettings, load_settings
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic
from tests.cloud import plan_rigs
from tests.cloud.helpers import MASTER_SECRET, auth, mqtt_client
from tests.dashboard.conftest import (
    LOCKER,
    SITE,
    Stack,
    screenshot,
    sign_in,
    unlabelled_controls,
)
from tests.van_rig import sim_van_config

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def van_agent(tmp_path: Path, mqtt: MqttSettings, vehicle_id: str) -> AsyncIterator[None]:
    """A whole van agent on the simulated receiver: it keeps and acknowledges the route it is sent
    and drives it (at real speed, so it is still on its way while the test looks)."""
    config = sim_van_config(
        tmp_path, mqtt, vehicle_id, time_scale=1, seed=3, batch_age_s=1, master=MASTER_SECRET
    )
    settings = load_settings(VehicleSettings, config)
    outbox = Outbox(settings.state_dir / "outbox.db", limits=settings.outbox)
    agent = VehicleAgent(
        settings=settings, gnss=build_gnss(settings), outbox=outbox, routes=MemoryRoutes()
    )
    task = asyncio.create_task(agent.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()


async def _open_plans(page: Page) -> None:
    await page.get_by_role("button", name="Planning").click()
    await expect(page.locator("#view-plans")).to_be_visible()


async def _planned_by_api(stack: Stack, **overrides: Any) -> dict[str, Any]:
    r = await stack.api.post(
        "/api/v1/plans", json=plan_rigs.request(**overrides), headers=auth(Role.OPS)
    )
    assert r.status_code == 202, r.text
    done = await plan_rigs.finished(stack.api, r.json()["id"], headers=auth(Role.OPS))
    assert done["status"] == "done", done
    return done


def _van_stops(plan: dict[str, Any]) -> dict[str, list[str]]:
    return {
        r["van_id"]: [v["stop_id"] for v in r["visits"] if v["kind"] == "stop"]
        for r in plan["plan"]["routes"]
    }


async def _not_at_midnight(*, margin_s: float = 180.0) -> None:
    """Wait for the next UTC day if this one ends within ``margin_s``: a plan is for the day it is
    started on, and the hub refreshes its ETAs from that day's fixes only, so a story that began
    at 23:59 would see the van's fixes of 00:00 count for nothing."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    left = (midnight - now).total_seconds()
    if left < margin_s:
        await asyncio.sleep(left + 1)


async def test_ops_plans_in_the_page_dispatches_and_the_van_acknowledges_its_route(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    await _not_at_midnight()
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await _open_plans(page)
    assert await unlabelled_controls(page) == []

    # A problem of its own is the advanced way, folded away under the hub's own parcels.
    await page.get_by_text("Advanced: plan a problem file").click()
    # Garbage is refused in the page, a problem the hub cannot build by the hub, each saying why.
    await page.get_by_label("Problem JSON").fill("{not json")
    await page.get_by_role("button", name="Start plan").click()
    await expect(page.locator("#start-plan-error")).to_contain_text("The problem is not JSON")
    bad = plan_rigs.problem()
    bad["vans"][0]["depot"] = "nowhere"
    await page.get_by_label("Problem JSON").fill(json.dumps(bad))
    await page.get_by_role("button", name="Start plan").click()
    await expect(page.locator("#start-plan-error")).to_contain_text("The hub refused (422")
    await expect(page.locator("#start-plan-error")).to_contain_text("nowhere")
    # Chromium logs the refused request itself; that one, and nothing else, is expected.
    assert len(ops.errors) == 1 and "422" in ops.errors[0], ops.errors
    ops.errors.clear()

    # The problem comes from a file, as an operator would upload it.
    problem_file = tmp_path / "amsterdam.json"
    problem_file.write_text(json.dumps(plan_rigs.problem(), indent=2))
    await page.get_by_label("Problem file (JSON)").set_input_files(str(problem_file))
    # Read into the box, in place of the refused problem (the file's own text, indented).
    await expect(page.get_by_label("Problem JSON")).to_have_value(problem_file.read_text())
    await page.get_by_label("Search time (s)").first.fill("3")
    await page.get_by_role("button", name="Start plan").click()
    detail = page.locator("#plan-detail")
    # The job's progress is shown (and announced) while it runs, then its summary.
    await expect(page.locator("#plan-progress-text")).to_have_text(
        re.compile(r"^(Queued for the planner\.|Planning: \d+ %)$"), timeout=10_000
    )
    await expect(page.locator("#plan-job")).to_be_visible()
    await expect(page.locator("#plan-progress-text")).to_have_text("Planning done.", timeout=30_000)
    await expect(detail).to_have_attribute("data-status", "done")
    plan_id = await detail.get_attribute("data-plan")
    assert plan_id is not None
    stored = (await stack.api.get(f"/api/v1/plans/{plan_id}", headers=auth(Role.OPS))).json()
    planned = _van_stops(stored)
    assert set(planned) == {"van-1", "van-2"}
    summary = page.locator("#plan-summary")
    await expect(summary.locator("dl.facts")).to_contain_text("Stops4")
    dropped = summary.locator('ul.dropped li[data-stop="early"]')
    await expect(dropped).to_contain_text(stored["plan"]["dropped"][0]["reason"])
    await expect(summary.locator("h4")).to_have_text("Dropped stops (1)")
    for van, stops in planned.items():
        await expect(summary.locator(f'.plan-vans tr[data-vehicle="{van}"]')).to_contain_text(
            " → ".join(stops) if stops else "none"
        )
    assert await unlabelled_controls(page) == []
    await screenshot(page, "planning")

    async with van_agent(tmp_path, stack.mqtt, "van-1"):
        # Dispatch asks first; cancelling sends nothing.
        await page.get_by_role("button", name="Dispatch plan").click()
        dialog = page.locator("#confirm-dispatch")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("4 stops on 2 vans")
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        again = await stack.api.get(f"/api/v1/plans/{plan_id}", headers=auth(Role.OPS))
        assert again.json()["dispatched_at"] is None
        await page.get_by_role("button", name="Dispatch plan").click()
        await page.get_by_role("button", name="Send the routes").click()
        await expect(page.locator("#plan-result")).to_contain_text(f"Plan {plan_id[:8]} dispatched")
        await expect(page.get_by_role("button", name="Dispatch plan")).to_have_count(0)
        # The van agent keeps its route and answers; the page hears of it over the stream.
        states = page.locator(".route-states")
        await expect(states.locator('tr[data-vehicle="van-1"]')).to_have_attribute(
            "data-state", "acknowledged", timeout=45_000
        )
        await expect(states.locator('tr[data-vehicle="van-2"]')).to_have_attribute(
            "data-state", "sent"
        )
        record = (await stack.api.get(f"/api/v1/plans/{plan_id}", headers=auth(Role.OPS))).json()
        assert {r["vehicle_id"]: r["state"] for r in record["routes"]} == {
            "van-1": "acknowledged",
            "van-2": "sent",
        }
        await screenshot(page, "planning-dispatched")

        # On the map: each route in its van's colour, its stops numbered, with ETAs.
        await page.get_by_role("button", name="Map").click()
        card = page.locator('.route-card[data-vehicle="van-1"]')
        await expect(card).to_have_attribute("data-state", "acknowledged")
        await expect(card.locator(".count")).to_have_text(
            re.compile(rf"^\d of {len(planned['van-1'])} done$")
        )
        for van, stops in planned.items():
            markers = page.locator(f'.stop-marker[data-vehicle="{van}"]')
            await expect(markers).to_have_count(len(stops))
            assert await markers.evaluate_all("els => els.map(e => e.dataset.stop)") == stops
            first = markers.first
            await expect(first).to_have_attribute(
                "aria-label", re.compile(rf"^Van {van} stop 1 of {len(stops)}, {stops[0]}")
            )
            await expect(first.locator("span")).to_have_text(re.compile(r"^1[✓!]?$"))
        # van-2 has no agent and no fix: its ETAs are the plan's. van-1 drives: the hub refreshes
        # its ETAs from its fixes (or it has already done the stop).
        await expect(
            page.locator('.route-card[data-vehicle="van-2"] li .eta').first
        ).to_contain_text("(planned)")
        refreshed = page.locator('.route-card[data-vehicle="van-1"] li').first
        await expect(refreshed).to_contain_text(re.compile(r"ETA \d|✓ done"))
        await expect(refreshed).not_to_contain_text("(planned)", timeout=45_000)
        lines = page.locator("path.route-line")
        routed = [v for v, s in planned.items() if len(s) > 1]
        await expect(lines).to_have_count(len(routed))
        colours = await page.evaluate(
            """() => [...document.querySelectorAll('.route-card')].map((c) => [
                c.dataset.vehicle,
                c.style.getPropertyValue('--van'),
            ])"""
        )
        strokes = await lines.evaluate_all("els => els.map(e => e.getAttribute('stroke'))")
        assert sorted(strokes) == sorted(c for v, c in colours if v in routed)
        assert len({c for _, c in colours}) == 2  # two vans, two colours
        await page.get_by_role("button", name="Show every van and locker").click()
        await screenshot(page, "map-routes")
    assert await unlabelled_controls(page) == []
    assert ops.errors == []


async def _publish_at(
    stack: Stack, van: str, seq: int, where: tuple[float, float], at: datetime
) -> None:
    """As the van's modem would: a few fixes at ``where`` from ``at`` on."""
    batch = TelemetryBatch(
        vehicle_id=van,
        seq=seq,
        points=tuple(
            Position(t=at + timedelta(seconds=k), lat=where[0], lon=where[1], fix="3d")
            for k in range(3)
        ),
    )
    async with mqtt_client(stack.mqtt, f"test-{van}-{uuid.uuid4().hex[:6]}") as client:
        await client.publish(vehicle_topic(van, Channel.TELEMETRY), encode(batch), qos=1)


async def test_the_map_shows_done_and_late_stops_as_the_vans_report(
    stack: Stack, browser: Browser
) -> None:
    # Yesterday's plan, seen after its day: a stop with a window (s1 closes at 12:00) that is not
    # done is late whatever the clock says now, so the story does not depend on the hour.
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    done = await _planned_by_api(stack, day=day.isoformat())
    planned = _van_stops(done)
    r = await stack.api.post(f"/api/v1/plans/{done['id']}/dispatch", headers=auth(Role.OPS))
    assert r.status_code == 202, r.text
    holder = next(v for v, stops in planned.items() if "s1" in stops)
    other = next(v for v in planned if v != holder)
    assert planned[other], planned

    viewer = await sign_in(browser, stack, Role.VIEWER)
    page = viewer.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    late = page.locator(f'.route-card[data-vehicle="{holder}"] li[data-stop="s1"]')
    # No fix yet: the planned ETA, and s1 late because its window has closed undone.
    await expect(late).to_have_class("late")
    await expect(late).to_contain_text("(planned)")
    await expect(late.locator(".late-text")).to_contain_text("late by")

    # The vans report (fixes of that day): `other` waits at its first stop, `holder` at the depot.
    evening = datetime(day.year, day.month, day.day, 23, 50, tzinfo=UTC)
    stop_at = {s["id"]: tuple(s["location"]) for s in plan_rigs.PROBLEM["stops"]}
    depot = tuple(plan_rigs.PROBLEM["depots"][0]["location"])
    await _publish_at(stack, other, 1, stop_at[planned[other][0]], evening)
    await _publish_at(stack, holder, 1, depot, evening)

    first = page.locator(f'.route-card[data-vehicle="{other}"] li').first
    await expect(first).to_have_class("done", timeout=45_000)
    await expect(first).to_contain_text("✓ done")
    await expect(page.locator(f'.route-card[data-vehicle="{other}"] .count')).to_have_text(
        f"1 of {len(planned[other])} done"
    )
    await expect(page.locator(f'.route-card[data-vehicle="{other}"] progress')).to_have_attribute(
        "value", "1"
    )
    # The hub's own refreshed ETA from the van's fix now says s1 is late.
    await expect(late).not_to_contain_text("(planned)", timeout=45_000)
    await expect(late).to_have_class("late")
    marker = page.locator(f'.stop-marker[data-vehicle="{holder}"][data-stop="s1"]')
    await expect(marker).to_have_class(re.compile(r"\blate\b"))
    await expect(marker.locator("span")).to_have_text(re.compile(r"^\d!$"))
    await expect(marker).to_have_attribute("aria-label", re.compile(r", late by \d+"))
    done_marker = page.locator(f'.stop-marker[data-vehicle="{other}"]').first
    await expect(done_marker).to_have_class(re.compile(r"\bdone\b"))
    await expect(done_marker.locator("span")).to_have_text("1✓")
    record = (await stack.api.get(f"/api/v1/plans/{done['id']}", headers=auth(Role.VIEWER))).json()
    assert any(e["stop_id"] == "s1" and e["late_by_s"] > 0 for e in record["late"]), record
    await page.get_by_role("button", name="Show every van and locker").click()
    await screenshot(page, "map-routes-late")
    assert viewer.errors == []


async def test_a_viewer_sees_the_plans_but_is_offered_no_start_dispatch_or_replan(
    stack: Stack, browser: Browser
) -> None:
    undispatched = await _planned_by_api(stack)
    dispatched = await _planned_by_api(stack, seed=2)
    r = await stack.api.post(f"/api/v1/plans/{dispatched['id']}/dispatch", headers=auth(Role.OPS))
    assert r.status_code == 202, r.text
    viewer = await sign_in(browser, stack, Role.VIEWER)
    page = viewer.page
    await _open_plans(page)
    rows = page.locator("#plan-table tbody tr")
    await expect(rows).to_have_count(2)
    for plan in (undispatched, dispatched):
        await page.get_by_role("button", name=f"Show plan {plan['id'][:8]}").click()
        await expect(page.locator("#plan-detail")).to_have_attribute("data-plan", plan["id"])
        await expect(page.locator("#plan-summary dl.facts")).to_contain_text("Stops4")
        await expect(page.locator("#plan-actions button")).to_have_count(0)
    await expect(page.locator(".route-states tr[data-vehicle]")).to_have_count(2)
    # Not offered at all: not in the page, not merely disabled or hidden.
    for gone in (
        "#hub-plan",
        "#plan-advanced",
        "#start-plan",
        "#replan-form",
        "#confirm-dispatch",
        "#plan-problem",
    ):
        await expect(page.locator(gone)).to_have_count(0)
    await expect(
        page.get_by_role("button", name=re.compile("Dispatch|Re-plan|Start|Plan the"))
    ).to_have_count(0)
    assert await unlabelled_controls(page) == []
    await screenshot(page, "planning-viewer")
    # A tablet held upright: the detail goes under the list, nothing scrolls sideways.
    await page.set_viewport_size({"width": 768, "height": 1024})
    detail, table = page.locator("#plan-detail"), page.locator("#plan-table")
    detail_box, table_box = await detail.bounding_box(), await table.bounding_box()
    assert detail_box is not None and table_box is not None
    assert detail_box["y"] >= table_box["y"] + table_box["height"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= 768
    await screenshot(page, "planning-viewer-portrait")
    await page.get_by_role("button", name="Map").click()
    await expect(page.locator(".route-card")).to_have_count(2)
    assert viewer.errors == []


async def test_ops_replans_from_the_page_without_a_cancelled_stop(
    stack: Stack, browser: Browser
) -> None:
    # Tomorrow's plan: re-planned from now, every van's shift is still ahead whatever the hour.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    parent = await _planned_by_api(stack, day=tomorrow.isoformat())
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await _open_plans(page)
    await page.get_by_role("button", name=f"Show plan {parent['id'][:8]}").click()
    await page.get_by_role("button", name="Re-plan").click()
    # The form opens with the focus in it; the keyboard can fill and send it.
    await expect(page.get_by_label("Cancelled stops")).to_be_focused()
    await page.keyboard.type("s2")
    await page.locator("#replan-time-limit").fill("0.5")
    await page.get_by_role("button", name="Start re-plan").click()
    title = page.locator("#plan-detail-title")
    await expect(title).to_contain_text(f"re-plan of {parent['id'][:8]}")
    await expect(title).to_contain_text("done", timeout=30_000)
    await expect(page.locator("#plan-result")).to_contain_text(
        f"of plan {parent['id'][:8]} started"
    )
    child = await page.locator("#plan-detail").get_attribute("data-plan")
    assert child is not None and child != parent["id"]
    stored = (await stack.api.get(f"/api/v1/plans/{child}", headers=auth(Role.OPS))).json()
    assert stored["parent_id"] == parent["id"]
    served = [s for stops in _van_stops(stored).values() for s in stops]
    assert "s2" not in served, stored
    for van, stops in _van_stops(stored).items():
        await expect(
            page.locator(f'#plan-summary .plan-vans tr[data-vehicle="{van}"]')
        ).to_contain_text(" → ".join(stops) if stops else "none")
    await expect(page.locator("#plan-table tbody tr")).to_have_count(2)
    assert ops.errors == []


DEPOT = "north"
DEPOT_AT = (52.3700, 4.9000)
HOMES = {"HOME-A": (52.3755, 4.8850), "HOME-B": (52.3680, 4.9060)}


async def _hub_parcel(stack: Stack, **body: Any) -> str:
    """A parcel created through the API and moved to the depot, as a shipper's integration would."""
    r = await stack.api.post("/api/v1/parcels", json=body, headers=auth(Role.OPS))
    assert r.status_code == 201, r.text
    pid = str(r.json()["id"])
    r = await stack.api.post(
        f"/api/v1/parcels/{pid}/transitions", json={"to": "at_depot"}, headers=auth(Role.OPS)
    )
    assert r.status_code == 200, r.text
    return pid


async def test_ops_plans_a_depots_day_from_the_hubs_parcels_and_they_go_out_on_the_van(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    await _not_at_midnight()
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await _open_plans(page)
    # No depot has a site yet: the page says how to set one and offers no plan of nothing.
    form = page.locator("#hub-plan")
    await expect(form.locator("#hub-plan-no-depot")).to_be_visible()
    await expect(page.get_by_role("button", name="Plan the depot's day")).to_be_disabled()
    # The problem upload is the advanced way, folded away.
    await expect(page.get_by_label("Problem JSON")).to_be_hidden()

    # Sites through the API: the depot (open past midnight, so the story does not depend on the
    # hour), its van, and the simulated locker with its 6 M compartments.
    late = 48 * 3600
    puts = [
        (f"/api/v1/depots/{DEPOT}", {"lat": DEPOT_AT[0], "lon": DEPOT_AT[1], "closes_s": late}),
        (
            f"/api/v1/depots/{DEPOT}/vans/van-1",
            {"capacity_parcels": 20, "shift_start_s": 0, "shift_end_s": late},
        ),
        (f"/api/v1/depots/{DEPOT}/lockers/{LOCKER}", {"lat": SITE[0], "lon": SITE[1]}),
    ]
    r = await stack.api.put(puts[0][0], json=puts[0][1], headers=auth(Role.OPS))
    assert r.status_code == 200, r.text
    # A depot without a van: the hub refuses to plan it, and the page says why.
    await page.get_by_role("button", name="Map").click()
    await _open_plans(page)
    await expect(page.get_by_label("Depot", exact=True)).to_have_value(DEPOT)
    await page.get_by_role("button", name="Plan the depot's day").click()
    await expect(page.locator("#hub-plan-error")).to_contain_text("The hub refused (422")
    await expect(page.locator("#hub-plan-error")).to_contain_text("has no van on shift")
    assert len(ops.errors) == 1 and "422" in ops.errors[0], ops.errors
    ops.errors.clear()
    for path, body in puts[1:]:
        r = await stack.api.put(path, json=body, headers=auth(Role.OPS))
        assert r.status_code == 200, r.text
    homes = {
        ref: await _hub_parcel(stack, reference=ref, address=f"{ref} street", lat=at[0], lon=at[1])
        for ref, at in HOMES.items()
    }
    in_locker = [await _hub_parcel(stack, locker_id=LOCKER, size="S") for _ in range(2)]
    too_big = await _hub_parcel(stack, reference="TOO-BIG", locker_id=LOCKER, size="L")

    # Shown again, the view has read the depots.
    await page.get_by_role("button", name="Map").click()
    await _open_plans(page)
    await expect(form.locator("#hub-plan-no-depot")).to_be_hidden()
    depot = page.get_by_label("Depot", exact=True)
    await expect(depot.locator("option")).to_have_text([f"{DEPOT} (1 van, 1 locker)"])
    await depot.select_option(DEPOT)
    today = datetime.now(UTC).date().isoformat()
    await page.get_by_label("Day of the plan").fill(today)
    await page.get_by_label("Search time for the day (s)").fill("2")
    await page.get_by_label("Engine").select_option("ortools")
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/plans/from-hub")
    ) as sent:
        await page.get_by_role("button", name="Plan the depot's day").click()
    # What the form asked for, as the page sent it.
    assert (await sent.value).post_data_json == {
        "depot": DEPOT,
        "day": today,
        "time_limit_s": 2,
        "engine": "ortools",
    }
    detail = page.locator("#plan-detail")
    await expect(page.locator("#plan-progress-text")).to_have_text("Planning done.", timeout=30_000)
    await expect(detail).to_have_attribute("data-status", "done")
    plan_id = await detail.get_attribute("data-plan")
    assert plan_id is not None
    stored = (await stack.api.get(f"/api/v1/plans/{plan_id}", headers=auth(Role.OPS))).json()
    assert (stored["depot"], stored["day"]) == (DEPOT, today)
    assert stored["plan"]["routes"][0]["van_id"] == "van-1"
    # The L parcel cannot go in an M compartment: left out, and the page says so and why.
    assert [d["parcel_id"] for d in stored["dropped_parcels"]] == [too_big], stored
    reason = stored["dropped_parcels"][0]["reason"]
    assert "size L" in reason, reason
    summary = page.locator("#plan-summary")
    await expect(summary.locator("dl.facts")).to_contain_text(f"Depot{DEPOT}")
    await expect(summary.locator("dl.facts")).to_contain_text("Parcels4 planned, 1 dropped")
    await expect(summary.get_by_role("heading", name="Dropped parcels (1)")).to_be_visible()
    await expect(
        summary.locator(f'ul.dropped-parcels li[data-parcel="{too_big}"]')
    ).to_contain_text(f"parcel {too_big[:8]}: {reason}")
    # The parcels each stop delivers: the locker's two in one stop, each home parcel its own.
    assert {stop: sorted(ps) for stop, ps in stored["parcels"].items()} == {
        **{f"parcel-{pid}": [pid] for pid in homes.values()},
        LOCKER: sorted(in_locker),
    }
    locker_row = summary.locator(f'.plan-parcels tr[data-stop="{LOCKER}"]')
    await expect(locker_row).to_contain_text("2: ")
    assert sorted(
        await locker_row.locator(".parcel-id").evaluate_all("els => els.map(e => e.dataset.parcel)")
    ) == sorted(in_locker)
    for pid in homes.values():
        row = summary.locator(f'.plan-parcels tr[data-stop="parcel-{pid}"]')
        await expect(row).to_contain_text(f"home {pid[:8]}")
        await expect(row.locator(".parcel-id")).to_have_text(pid[:8])
    await expect(summary.locator('.plan-vans tr[data-vehicle="van-1"]')).to_contain_text(LOCKER)
    assert await unlabelled_controls(page) == []
    await screenshot(page, "planning-from-hub")

    async with van_agent(tmp_path, stack.mqtt, "van-1"):
        await page.get_by_role("button", name="Dispatch plan").click()
        await expect(page.locator("#confirm-dispatch")).to_contain_text("3 stops on 1 van")
        await page.get_by_role("button", name="Send the routes").click()
        await expect(page.locator("#plan-result")).to_contain_text(f"Plan {plan_id[:8]} dispatched")
        states = page.locator(".route-states")
        await expect(states.locator('tr[data-vehicle="van-1"]')).to_have_attribute(
            "data-state", "acknowledged", timeout=45_000
        )
        # On the map the van's route names a home stop by its parcel, short, as the plan does.
        await page.get_by_role("button", name="Map").click()
        card = page.locator('.route-card[data-vehicle="van-1"]')
        await expect(card.locator("li[data-stop]")).to_have_count(3)
        for pid in homes.values():
            await expect(card.locator(f'li[data-stop="parcel-{pid}"] strong')).to_have_text(
                f"home {pid[:8]}"
            )
        await expect(card.locator(f'li[data-stop="{LOCKER}"] strong')).to_have_text(LOCKER)
        await screenshot(page, "map-route-from-hub")
    # The dispatch put each planned parcel on the van, out for delivery; the dropped one stays.
    out = {*homes.values(), *in_locker}
    for pid in [*out, too_big]:
        got = (await stack.api.get(f"/api/v1/parcels/{pid}", headers=auth(Role.OPS))).json()
        want = ("out_for_delivery", "van-1") if pid in out else ("at_depot", None)
        assert (got["status"], got["vehicle_id"]) == want, got
    await page.get_by_role("button", name="Parcels").click()
    for pid in [*out, too_big]:
        row = page.locator(f'#parcel-table tbody tr[data-parcel="{pid}"]')
        await expect(row.locator(".status")).to_have_text(
            "out for delivery" if pid in out else "at depot"
        )
    await screenshot(page, "parcels-planned-from-hub")
    assert ops.errors == []
