"""GNSS fix published by a van → its marker moved on the dashboard, end to end.

Run from the repository root: ``python -m bench.live_latency [--fixes 60] [--interval 0.25]``.

Everything is real and local: Mosquitto on a loopback port, the whole hub (ingest, dispatcher, API,
live feed) on SQLite in a temporary directory, and Debian's headless Chromium showing the dashboard,
signed in as a viewer. The benchmark publishes telemetry as a van's agent does (one batch per fix,
QoS 1, on the van's topic), each fix at a new latitude. The page carries a MutationObserver that
notes the wall-clock time of the first animation frame after the marker's ``data-lat`` took each
value (Leaflet has moved the marker by then; the frame is the one that paints it; fixes that
arrive together are applied in one frame, the newest drawn); the latency is that time minus the wall-clock time just before the publish (one
machine, one clock). The path measured is broker → the hub's live MQTT session → the SSE stream →
the page's parser → the map. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from playwright.async_api import async_playwright

from cloud.broker import MosquittoBroker
from cloud.dashboard.rig import chromium, hub_settings_for, running_hub
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic

VAN = "van-bench"
KEY = "bench-viewer-key-3f9a1c7e5b2d"
MASTER = "bench-Hub-Master-7c1e9a3f5d2b4068-93ab"
WATCH = """
() => new Promise((resolve) => {
  window.__moved = {};
  const attach = (el) => {
    new MutationObserver((records) => {
      // Fixes applied in one task share a frame: each record's successor holds its new value.
      const values = records.slice(1).map((r) => r.oldValue).concat([el.dataset.lat]);
      requestAnimationFrame(() => {
        const now = Date.now();
        for (const lat of values) window.__moved[lat] ??= now;
      });
    })
      .observe(el, { attributes: true, attributeFilter: ["data-lat"], attributeOldValue: true });
    resolve(true);
  };
  const found = document.querySelector('.van-marker[data-vehicle="__VAN__"]');
  if (found) return attach(found);
  new MutationObserver((_, obs) => {
    const el = document.querySelector('.van-marker[data-vehicle="__VAN__"]');
    if (el) { obs.disconnect(); attach(el); }
  }).observe(document.body, { childList: true, subtree: true });
})
""".replace("__VAN__", VAN)


async def _publish(client: aiomqtt.Client, seq: int, lat: float) -> float:
    batch = TelemetryBatch(
        vehicle_id=VAN,
        seq=seq,
        points=(
            Position(t=datetime.now(UTC), lat=lat, lon=4.8952, speed_mps=9.0, heading_deg=0.0),
        ),
    )
    payload = encode(batch)
    sent = time.time()
    await client.publish(vehicle_topic(VAN, Channel.TELEMETRY), payload, qos=1)
    return sent


async def run(*, fixes: int, interval: float) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="lastmile-live-") as tmp:
        state = Path(tmp)
        broker = MosquittoBroker(data_dir=state / "mosquitto", persistence=False)
        await asyncio.to_thread(broker.start)
        try:
            mqtt = MqttSettings(host=broker.host, port=broker.port)
            settings = hub_settings_for(
                state_dir=state, mqtt=mqtt, master_secret=MASTER, api_keys={Role.VIEWER: KEY}
            )
            async with (
                running_hub(settings) as url,
                async_playwright() as playwright,
                chromium(playwright) as browser,
                aiomqtt.Client(
                    broker.host,
                    broker.port,
                    identifier=f"bench-{uuid.uuid4().hex[:8]}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                ) as client,
            ):
                page = await browser.new_page(viewport={"width": 1024, "height": 768})
                await page.goto(url + "/")
                await page.get_by_label("API key").fill(KEY)
                await page.get_by_role("button", name="Sign in").click()
                await page.locator("#live-state").filter(has_text="Live").wait_for(timeout=30_000)
                await _publish(client, 1, 52.0)  # the marker appears; not timed
                await page.evaluate(WATCH)
                sent: dict[str, float] = {}
                for i in range(fixes):
                    lat = round(52.0 + 0.0001 * (i + 1), 6)
                    sent[str(lat)] = await _publish(client, i + 2, lat)
                    await asyncio.sleep(interval)
                last = str(round(52.0 + 0.0001 * fixes, 6))
                await page.wait_for_function(f"() => '{last}' in window.__moved", timeout=30_000)
                moved: dict[str, float] = await page.evaluate("window.__moved")
        finally:
            await asyncio.to_thread(broker.close)
    missing = sorted(set(sent) - set(moved))
    if missing:
        raise SystemExit(f"the marker never showed {len(missing)} fixes, e.g. {missing[:3]}")
    return [moved[lat] - sent[lat] * 1000 for lat in sent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between fixes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    latencies = sorted(asyncio.run(run(fixes=args.fixes, interval=args.interval)))
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    print(
        f"{len(latencies)} fixes, fix published -> marker moved: p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print(json.dumps({"p95_ms": round(p95, 1), "p50_ms": round(p50, 1), "fixes": len(latencies)}))


if __name__ == "__main__":
    main()
