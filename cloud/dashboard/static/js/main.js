// The dashboard's composition root: sign-in, then the views wired to the API and the live stream.
import { AlertsFeed } from "./alerts.js";
import { Api, signInAsUser } from "./api.js";
import { debounce } from "./dom.js";
import { FleetPanel } from "./fleet.js";
import { openStream } from "./live.js";
import { LockersView } from "./lockers.js";
import { FleetMap } from "./map.js";
import { OccupancyChart } from "./occupancy.js";
import { ParcelsView } from "./parcels.js";
import { KpisView } from "./kpis.js";
import { DayReplay } from "./replay.js";
import { PlansView } from "./plans.js";
import { PlannedRoutes, RouteLayer } from "./routes.js";

const KEY_STORAGE = "lastmile.token";
const $ = (sel) => document.querySelector(sel);
const config = JSON.parse(document.querySelector('meta[name="lastmile-config"]').content);

// {locker id: [lat, lon]} from GET /depots.
function lockerSitesOf(depots) {
  const sites = {};
  for (const d of depots) for (const lk of d.lockers) sites[lk.locker_id] = [lk.lat, lk.lon];
  return sites;
}

function showSignIn(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  for (const el of document.querySelectorAll(".view")) el.hidden = true;
  $("#views").hidden = true;
  $("#who").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#api-key").focus();
}

// An API key is used as it is; a user name and password are traded for a JWT at /auth/token.
// Either way the page holds one bearer token, in this tab's sessionStorage only.
async function tokenFromForm() {
  const username = $("#username").value.trim();
  if (username) {
    const issued = await signInAsUser(username, $("#password").value);
    return { token: issued.access_token, refused: "" };
  }
  return { token: $("#api-key").value.trim(), refused: "The hub does not know this key." };
}

function setupSignIn() {
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#sign-in-error").textContent = "";
    let token = "";
    let refused = "";
    try {
      ({ token, refused } = await tokenFromForm());
      if (!token) {
        $("#sign-in-error").textContent = "Give an API key, or a user name and password.";
        return;
      }
      const me = await new Api(token).get("/me");
      sessionStorage.setItem(KEY_STORAGE, token);
      for (const id of ["#api-key", "#username", "#password"]) $(id).value = "";
      start(token, me);
    } catch (err) {
      $("#sign-in-error").textContent =
        err.status !== 401 ? err.describe() : refused || `The hub refused the sign-in: ${err.detail}.`;
    }
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    location.reload();
  });
}

function start(token, me) {
  const perms = new Set(me.permissions);
  const canFleet = perms.has("read fleet");
  const canParcels = perms.has("read parcels");
  const api = new Api(token, { onUnauthorized: () => showSignIn("Your key or sign-in is no longer valid.") });
  $("#sign-in").hidden = true;
  $("#who").hidden = false;
  $("#views").hidden = false;
  $("#role").textContent = `Signed in as ${me.role}`;

  const offered = [];
  for (const button of document.querySelectorAll("#views [data-view]")) {
    const view = button.dataset.view;
    const allowed = view === "parcels" ? canParcels : canFleet;
    button.hidden = !allowed;
    if (allowed) offered.push(view);
  }

  const map = canFleet ? new FleetMap({ element: $("#map"), config }) : null;
  const fleet = new FleetPanel({ vanBody: $("#van-table tbody"), lockerList: $("#locker-summary") });
  const lockers = new LockersView({
    api,
    list: $("#locker-list"),
    detail: $("#locker-detail"),
    result: $("#open-result"),
    dialog: $("#confirm-open"),
    canOpen: perms.has("operate lockers"),
    chart: canFleet ? new OccupancyChart($("#occupancy-chart")) : null,
  });
  const parcels = new ParcelsView({
    api,
    root: $("#view-parcels"),
    canCreate: perms.has("create parcels"),
    canOperate: perms.has("operate parcels"),
  });
  const alerts = new AlertsFeed({ list: $("#alert-feed"), alertsOnly: $("#alerts-only"), badge: $("#alert-badge") });
  // Read-only views of the past: a van's day, and the KPIs (anyone who may read the fleet).
  const replay = canFleet ? new DayReplay({ api, root: $("#view-replay"), config }) : null;
  const kpis = canFleet ? new KpisView({ api, root: $("#view-kpis") }) : null;
  // Planned routes on the map and the planning view: both show the hub's plan records.
  const plans = canFleet
    ? new PlansView({
        api,
        root: $("#view-plans"),
        canPlan: perms.has("command vehicles"),
        onDispatched: () => routes && routes.reload(),
      })
    : null;
  const routes = map
    ? new PlannedRoutes({
        api,
        layer: new RouteLayer({
          map: map.map,
          list: $("#route-list"),
          status: $("#route-status"),
          onColour: (id, colour) => map.setVanColour(id, colour),
        }),
        onPlan: (plan) => plans.updated(plan),
      })
    : null;
  if (routes) map.extraPoints = () => routes.layer.points();

  function show(view) {
    if (!offered.includes(view)) view = offered[0];
    for (const button of document.querySelectorAll("#views [data-view]")) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== `view-${view}`;
    if (view === "map" && map) map.invalidate();
    if (view === "alerts") alerts.seen();
    if (view === "parcels") parcels.refresh();
    if (view === "replay" && replay) replay.shown();
    else if (replay) replay.pause(); // a replay left playing would keep redrawing unseen
    if (view === "kpis" && kpis) kpis.shown();
    if (view === "plans" && plans) plans.refresh().catch((err) => console.warn("plans failed", err));
    if (history.replaceState) history.replaceState(null, "", `#${view}`);
  }
  for (const button of document.querySelectorAll("#views [data-view]")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }

  if (map) $("#fit-all").addEventListener("click", () => map.fitAll());

  function putLocker(locker) {
    fleet.setLocker(locker);
    lockers.setLocker(locker);
    if (map) map.setLocker(locker);
  }

  // Everything the stream may have missed while it was down: re-read after each (re)connect.
  async function loadState() {
    if (canFleet) {
      alerts.beginLoad();
      const [vans, lockerPage, events, depots] = await Promise.all([
        api.get("/vehicles"),
        api.get("/lockers"),
        api.get("/events?limit=100"),
        api.get("/depots"),
      ]);
      // The lockers' sites the hub keeps (PUT /depots/{id}/lockers/{locker}) place them on the map.
      if (map) map.setLockerSites(lockerSitesOf(depots.data));
      for (const v of vans.data) {
        fleet.setVan(v.id, { online: v.online, point: v.last_position });
        if (v.last_position && map) map.moveVan(v.id, v.last_position, { online: v.online });
      }
      for (const lk of lockerPage.data) putLocker(lk);
      parcels.setLockers(lockerPage.data.map((lk) => lk.id));
      alerts.load(events.data);
      // Devices already offline when the page (re)connects are alerts too, as of their last word.
      const offline = [
        ...vans.data.filter((v) => !v.online).map((v) => ({ ...v, source: "vehicle" })),
        ...lockerPage.data.filter((lk) => !lk.online).map((lk) => ({ ...lk, source: "locker" })),
      ];
      for (const d of offline) {
        alerts.add(
          {
            source: d.source,
            device_id: d.id,
            kind: "offline",
            severity: "warning",
            at: d.last_seen || new Date().toISOString(),
          },
          { counted: false },
        );
      }
      lockers.refresh();
    }
    if (routes) await routes.reload();
  }

  const refreshLockers = debounce(async (lockerId) => {
    const page = await api.get("/lockers");
    for (const lk of page.data) putLocker(lk);
    lockers.refresh(lockerId);
    if (!$("#view-parcels").hidden) {
      parcels.refresh();
      refreshParcelsLater();
    }
  }, 300);
  // The hub applies a locker event to its parcel just after storing it, so a refresh right after
  // the event may still see the old status: look again a moment later.
  const refreshParcelsLater = debounce(() => {
    if (!$("#view-parcels").hidden) parcels.refresh();
  }, 2000);

  function onEvent(kind, data) {
    if (kind === "telemetry") {
      const point = data.points[data.points.length - 1];
      const known = fleet.vans.get(data.vehicle_id);
      fleet.setVan(data.vehicle_id, { point, online: known ? known.online : true });
      if (map) for (const p of data.points) map.moveVan(data.vehicle_id, p);
      if (routes) routes.onTelemetry(data.vehicle_id);
    } else if (kind === "status") {
      if (data.kind === "vehicle") {
        fleet.setVan(data.device_id, { online: data.online });
        if (map) map.setVanOnline(data.device_id, data.online);
      } else {
        refreshLockers(data.device_id);
      }
      if (!data.online) {
        alerts.add({
          source: data.kind,
          device_id: data.device_id,
          kind: "offline",
          severity: "warning",
          at: new Date().toISOString(),
        });
      }
    } else if (kind === "vehicle_event") {
      alerts.add({ source: "vehicle", device_id: data.vehicle_id, ...data });
    } else if (kind === "route_ack") {
      if (routes) routes.onRouteAck(data).catch((err) => console.warn("route refresh failed", err));
    } else if (kind === "locker_event") {
      alerts.add({ source: "locker", device_id: data.locker_id, ...data });
      refreshLockers(data.locker_id);
    }
  }

  const liveState = $("#live-state");
  function onState(state) {
    liveState.dataset.state = state;
    liveState.textContent =
      state === "live" ? "Live" : state === "refused" ? "Live updates not allowed" : "Reconnecting…";
    if (state === "live") loadState().catch((err) => console.warn("reload failed", err));
    if (state === "unauthorized") showSignIn("Your key or sign-in is no longer valid.");
  }

  if (canFleet) openStream({ token, onEvent, onState });
  else {
    liveState.textContent = "No live updates for this role";
    loadState();
  }
  // Parcels change without any locker event too (another operator, an integration): re-read the
  // table now and then while it is on screen.
  setInterval(() => {
    if (!$("#view-parcels").hidden) parcels.refresh();
  }, 15000);
  setInterval(() => {
    fleet.renderVans();
    if (map) for (const id of map.vans.keys()) map.refreshVan(id);
  }, 5000);
  if (routes) routes.start();
  show(location.hash.slice(1) || offered[0]);
}

async function boot() {
  setupSignIn();
  const token = sessionStorage.getItem(KEY_STORAGE);
  if (!token) return showSignIn();
  try {
    start(token, await new Api(token).get("/me"));
  } catch (err) {
    showSignIn(err.status === 401 ? "Your key is no longer valid." : err.describe());
  }
}

boot();
