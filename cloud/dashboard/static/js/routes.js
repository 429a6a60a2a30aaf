// Planned routes on the map: each dispatched van's route as a line in the van's colour with
// numbered stops (ETA, due, done or late), and a side list with each route's progress.
//
// The hub's record (GET /plans/{id}) is the truth; the live stream only says when to re-read it:
// a van's route ack, a van's telemetry (its ETAs and geofenced stops move), and a slow timer
// (a stop turns late as the clock passes its due time even when no van speaks).
import { clear, h, stopName } from "./dom.js";

const L = window.L;
// Distinct, dark enough for white numbers on them (WCAG AA); none is the "late" red, nor the van
// markers' own blue.
const PALETTE = ["#37474f", "#6a2c91", "#1d6b42", "#9c4a00", "#005f73", "#5b4a00", "#3a3fb0", "#7a2e5a"];
const WATCH_MS = 24 * 3600 * 1000; // a dispatch is a day's work, as the hub's late-stop watcher says
const TELEMETRY_DELAY_MS = 3000; // ingest stores a fix a moment after the live feed shows it
const TELEMETRY_EVERY_MS = 10_000; // ETAs are re-computed over the day's fixes: not on every one
const REFRESH_EVERY_MS = 30_000;
const RELIST_EVERY_MS = 60_000; // another operator may dispatch a plan

export function vanColour(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

// The time of day; with the date too when it is not today (a late route runs past midnight).
export function timeOf(iso, now = new Date()) {
  if (!iso) return "–";
  const t = new Date(iso);
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return t.toDateString() === now.toDateString()
    ? time
    : `${t.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export function minutes(seconds) {
  const m = Math.max(1, Math.round(seconds / 60));
  return m < 90 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// The dispatched plans whose routes are in force: dispatched within a day and not replaced by a
// dispatched re-plan (as the hub's late-stop watcher decides), newest first.
export function plansInForce(plans, now = Date.now()) {
  const dispatched = plans.filter((p) => p.dispatched_at && now - Date.parse(p.dispatched_at) < WATCH_MS);
  const superseded = new Set(dispatched.map((p) => p.parent_id).filter(Boolean));
  return dispatched
    .filter((p) => !superseded.has(p.id))
    .sort((a, b) => Date.parse(b.dispatched_at) - Date.parse(a.dispatched_at));
}

// One route's stops in driving order with what the page shows of each: the refreshed ETA when
// the hub has one (the van has a position), else the planned one; done; late and by how much.
export function routeStops(route, etas, now = Date.now()) {
  const refreshed = new Map(etas.filter((e) => e.van_id === route.vehicle_id).map((e) => [e.stop_id, e]));
  const done = new Set(route.completed);
  return route.stops.map((s, k) => {
    const fresh = refreshed.get(s.stop_id);
    const isDone = done.has(s.stop_id);
    const eta = fresh ? fresh.eta : s.eta;
    const due = fresh ? fresh.due : s.due;
    let lateBy = 0;
    if (!isDone && fresh) lateBy = fresh.late_by_s;
    else if (!isDone && due && now > Date.parse(due)) lateBy = Math.round((now - Date.parse(due)) / 1000);
    return {
      n: k + 1,
      id: s.stop_id,
      name: stopName(s.stop_id),
      kind: s.kind,
      latlng: [s.lat, s.lon],
      eta,
      refreshed: Boolean(fresh),
      due,
      done: isDone,
      lateBy,
    };
  });
}

function stopSentence(vehicleId, stop, total) {
  const state = stop.done ? "done" : stop.lateBy > 0 ? `late by ${minutes(stop.lateBy)}` : "on time";
  const due = stop.due ? `, due ${timeOf(stop.due)}` : "";
  const eta = stop.done ? "" : `, ETA ${timeOf(stop.eta)}${stop.refreshed ? "" : " (planned)"}`;
  return `Van ${vehicleId} stop ${stop.n} of ${total}, ${stop.name}${eta}${due}, ${state}`;
}

// Draws the routes on the Leaflet map and lists them beside it.
export class RouteLayer {
  constructor({ map, list, status, onColour }) {
    this.map = map;
    this.list = list;
    this.status = status;
    this.onColour = onColour;
    this.group = L.layerGroup().addTo(map);
    this.lateKeys = new Set();
  }

  // ``routes``: [{plan, route}] with at most one route per van.
  show(routes, now = Date.now()) {
    this.group.clearLayers();
    clear(this.list);
    const late = new Set();
    if (!routes.length) this.list.append(h("p", { class: "help" }, "No dispatched route in force."));
    for (const { plan, route } of routes) {
      const colour = vanColour(route.vehicle_id);
      const stops = routeStops(route, plan.etas || [], now);
      if (this.onColour) this.onColour(route.vehicle_id, colour);
      this._draw(route, stops, colour);
      this.list.append(this._card(plan, route, stops, colour));
      for (const s of stops) if (s.lateBy > 0) late.add(`${route.vehicle_id}/${s.id}`);
    }
    // Say it once when a stop newly turns late, not on every refresh.
    const fresh = [...late].filter((k) => !this.lateKeys.has(k));
    if (fresh.length) this.status.textContent = `Predicted late: ${fresh.map((k) => k.replace("/", " stop ")).join(", ")}.`;
    this.lateKeys = late;
  }

  points() {
    const out = [];
    this.group.eachLayer((layer) => {
      if (layer.getLatLng) out.push(layer.getLatLng());
    });
    return out;
  }

  _draw(route, stops, colour) {
    if (stops.length > 1) {
      L.polyline(
        stops.map((s) => s.latlng),
        { color: colour, weight: 4, opacity: 0.85, className: "route-line", interactive: false },
      ).addTo(this.group);
    }
    for (const s of stops) {
      const marker = L.marker(s.latlng, {
        icon: L.divIcon({ className: "stop-marker", html: "<span></span>", iconSize: [30, 30], iconAnchor: [15, 15] }),
        title: `${route.vehicle_id} stop ${s.n}: ${s.name}`,
        alt: `Stop ${s.n} of van ${route.vehicle_id}`,
        keyboard: true,
      }).addTo(this.group);
      marker.bindPopup(() =>
        h(
          "div",
          { class: "popup" },
          h("strong", {}, `${route.vehicle_id} · stop ${s.n}: ${s.name}`),
          h("br"),
          s.done ? "✓ done" : `ETA ${timeOf(s.eta)}${s.refreshed ? "" : " (planned)"}`,
          s.due ? ` · due ${timeOf(s.due)}` : "",
          s.lateBy > 0 ? h("span", { class: "late-text" }, ` · ⚠ late by ${minutes(s.lateBy)}`) : "",
        ),
      );
      const el = marker.getElement();
      el.dataset.vehicle = route.vehicle_id;
      el.dataset.stop = s.id;
      el.classList.toggle("done", s.done);
      el.classList.toggle("late", s.lateBy > 0);
      el.style.setProperty("--van", colour);
      // The number, with a mark that does not rely on colour: ✓ done, ! late.
      el.querySelector("span").textContent = `${s.n}${s.done ? "✓" : s.lateBy > 0 ? "!" : ""}`;
      el.setAttribute("aria-label", stopSentence(route.vehicle_id, s, stops.length));
    }
  }

  _card(plan, route, stops, colour) {
    const done = stops.filter((s) => s.done).length;
    const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
    const bar = h("progress", {
      max: String(stops.length || 1),
      value: String(done),
      "aria-label": `Route of ${route.vehicle_id}: ${done} of ${stops.length} stops done`,
    });
    const card = h(
      "section",
      {
        class: "route-card",
        dataset: { vehicle: route.vehicle_id, route: route.route_id, plan: plan.id, state: route.state },
        "aria-label": `Route of van ${route.vehicle_id}`,
      },
      h(
        "h4",
        {},
        swatch,
        `${route.vehicle_id} `,
        h("span", { class: `route-state state-${route.state}` }, route.state),
      ),
      h("p", { class: "route-progress" }, bar, h("span", { class: "count" }, `${done} of ${stops.length} done`)),
      h(
        "ol",
        { class: "route-stops" },
        stops.map((s) =>
          h(
            "li",
            { class: s.done ? "done" : s.lateBy > 0 ? "late" : "", dataset: { stop: s.id } },
            h("strong", {}, s.name),
            " ",
            s.done
              ? h("span", { class: "mark" }, "✓ done")
              : h("span", { class: "eta" }, `ETA ${timeOf(s.eta)}${s.refreshed ? "" : " (planned)"}`),
            s.due ? h("span", { class: "due" }, ` · due ${timeOf(s.due)}`) : "",
            s.lateBy > 0 ? h("span", { class: "late-text" }, ` ⚠ late by ${minutes(s.lateBy)}`) : "",
          ),
        ),
      ),
    );
    card.style.setProperty("--van", colour); // CSSOM, which the page's CSP allows (no style="")
    return card;
  }
}

// Loads the plans in force and keeps them current; hands every plan it reads to ``onPlan`` too
// (the planning view shows the same record).
export class PlannedRoutes {
  constructor({ api, layer, onPlan }) {
    this.api = api;
    this.layer = layer;
    this.onPlan = onPlan;
    this.plans = new Map(); // id -> detailed plan, in force
    this.order = [];
    this.telemetryTimer = null;
    this.lastTelemetryRefresh = 0;
    this.timers = [];
  }

  // The slow timers; the first load comes with the page's state (after each stream connect).
  start() {
    this.timers.push(setInterval(() => this.refreshAll(), REFRESH_EVERY_MS));
    this.timers.push(
      setInterval(() => this.reload().catch((err) => console.warn("routes reload failed", err)), RELIST_EVERY_MS),
    );
  }

  async reload() {
    const page = await this.api.get("/plans?limit=50");
    const inForce = plansInForce(page.data);
    const detailed = await Promise.all(inForce.map((p) => this.api.get(`/plans/${p.id}`)));
    this.order = detailed.map((p) => p.id);
    this.plans = new Map(detailed.map((p) => [p.id, p]));
    if (this.onPlan) for (const p of detailed) this.onPlan(p);
    this.render();
  }

  async refresh(planId) {
    const plan = await this.api.get(`/plans/${planId}`);
    if (this.plans.has(planId)) this.plans.set(planId, plan);
    if (this.onPlan) this.onPlan(plan);
    this.render();
    return plan;
  }

  refreshAll() {
    return Promise.all([...this.plans.keys()].map((id) => this.refresh(id))).catch((err) =>
      console.warn("route refresh failed", err),
    );
  }

  // Per van, the route of the newest plan in force (the van follows its newest, retained route).
  routes() {
    const out = new Map();
    for (const id of this.order) {
      const plan = this.plans.get(id);
      for (const route of plan.routes || []) if (!out.has(route.vehicle_id)) out.set(route.vehicle_id, { plan, route });
    }
    return [...out.values()].sort((a, b) => a.route.vehicle_id.localeCompare(b.route.vehicle_id));
  }

  render() {
    this.layer.show(this.routes());
  }

  _planOfRoute(routeId) {
    for (const plan of this.plans.values()) if ((plan.routes || []).some((r) => r.route_id === routeId)) return plan;
    return null;
  }

  // A van answered its route: read the hub's record now, and once more if ingest had not stored
  // the ack yet when the first read came (the live feed is quicker than ingest).
  async onRouteAck(data) {
    const plan = this._planOfRoute(data.route_id);
    if (!plan) return this.reload();
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    for (const delay of [0, 1500, 4000]) {
      await wait(delay);
      const now = await this.refresh(plan.id);
      const route = (now.routes || []).find((r) => r.route_id === data.route_id);
      if (!route || route.state !== "sent") return;
    }
  }

  onTelemetry(vehicleId) {
    if (!this.routes().some((r) => r.route.vehicle_id === vehicleId) || this.telemetryTimer) return;
    const since = Date.now() - this.lastTelemetryRefresh;
    const delay = Math.max(TELEMETRY_DELAY_MS, TELEMETRY_EVERY_MS - since);
    this.telemetryTimer = setTimeout(() => {
      this.telemetryTimer = null;
      this.lastTelemetryRefresh = Date.now();
      this.refreshAll();
    }, delay);
  }
}
