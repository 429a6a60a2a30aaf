// The live map: vans (arrow by heading, colour by freshness), their recent trail, and lockers
// (occupancy) on tiles from the hub's settings, or on a plain background when none are set.
import { ago, compass, h, kmh } from "./dom.js";

const L = window.L;
const STALE_MS = 60_000;
const TRAIL_POINTS = 200;

export class FleetMap {
  constructor({ element, config }) {
    this.map = L.map(element, { zoomControl: true, attributionControl: Boolean(config.tileUrl) });
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { maxZoom: 19, attribution: config.tileAttribution || "" }).addTo(
        this.map,
      );
    } else {
      element.classList.add("no-tiles");
    }
    L.control.scale({ imperial: false }).addTo(this.map);
    this.map.setView([52.37, 4.895], 13);
    this.vans = new Map();
    this.lockers = new Map();
    // Where each locker stands: the hub's own sites (GET /depots, setLockerSites) where it has
    // one, else the hub settings' map_locker_sites, for lockers no depot lists yet.
    this.configSites = config.lockerSites || {};
    this.sites = { ...this.configSites };
    this.fitted = false;
    this.colours = new Map(); // van id -> its route's colour (routes.js)
    this.extraPoints = () => []; // more to frame in fitAll (the planned routes' stops)
  }

  invalidate() {
    this.map.invalidateSize();
  }

  _fitOnce() {
    if (!this.fitted) this.fitAll();
  }

  // Frame every van and every placed locker (also the "Show every van and locker" button).
  fitAll() {
    const points = [...this.vans.values()].filter((v) => v.latlng).map((v) => v.latlng);
    for (const id of this.lockers.keys()) if (this.sites[id]) points.push(this.sites[id]);
    points.push(...this.extraPoints());
    if (!points.length) return;
    this.fitted = true;
    this.map.fitBounds(L.latLngBounds(points).pad(0.3), { maxZoom: 15, animate: false });
  }

  _vanIcon() {
    return L.divIcon({
      className: "van-marker",
      html: `<span class="arrow" aria-hidden="true"></span><span class="label"></span>`,
      iconSize: [28, 28],
      iconAnchor: [14, 14],
      popupAnchor: [0, -14],
    });
  }

  // One fix (or the latest of a batch) for a van; creates its marker on first sight.
  moveVan(id, point, { online } = {}) {
    let van = this.vans.get(id);
    const latlng = [point.lat, point.lon];
    if (!van) {
      const marker = L.marker(latlng, {
        icon: this._vanIcon(),
        title: id,
        alt: `Van ${id}`,
        keyboard: true,
        riseOnHover: true,
      }).addTo(this.map);
      const trail = L.polyline([], { className: "trail", weight: 3, opacity: 0.7 }).addTo(this.map);
      van = { marker, trail, online: true, point: null, latlng: null };
      this.vans.set(id, van);
      marker.bindPopup(() => this._vanPopup(id));
      const el = marker.getElement();
      el.dataset.vehicle = id;
      el.querySelector(".label").textContent = id;
      if (this.colours.has(id)) el.style.setProperty("--van", this.colours.get(id));
    }
    if (online !== undefined) van.online = online;
    van.point = point;
    van.latlng = latlng;
    van.marker.setLatLng(latlng);
    const trail = van.trail.getLatLngs();
    trail.push(latlng);
    if (trail.length > TRAIL_POINTS) trail.splice(0, trail.length - TRAIL_POINTS);
    van.trail.setLatLngs(trail);
    const el = van.marker.getElement();
    el.dataset.lat = String(point.lat);
    el.dataset.lon = String(point.lon);
    el.dataset.t = point.t;
    const arrow = el.querySelector(".arrow");
    arrow.style.transform = `rotate(${point.heading_deg ?? 0}deg)`;
    arrow.classList.toggle("no-heading", point.heading_deg === null || point.heading_deg === undefined);
    this.refreshVan(id);
    this._fitOnce();
  }

  // The van's label takes its route's colour, so a van and its line on the map pair up.
  setVanColour(id, colour) {
    this.colours.set(id, colour);
    const van = this.vans.get(id);
    if (van) {
      van.marker.getElement().style.setProperty("--van", colour);
      van.marker.getElement().classList.add("routed");
    }
  }

  setVanOnline(id, online) {
    const van = this.vans.get(id);
    if (!van) return;
    van.online = online;
    this.refreshVan(id);
  }

  refreshVan(id, now = Date.now()) {
    const van = this.vans.get(id);
    if (!van || !van.point) return;
    const stale = now - Date.parse(van.point.t) > STALE_MS;
    const el = van.marker.getElement();
    el.classList.toggle("stale", stale);
    el.classList.toggle("offline", !van.online);
    const state = !van.online ? "offline" : stale ? "stale" : "live";
    el.setAttribute(
      "aria-label",
      `Van ${id}, ${state}, ${kmh(van.point.speed_mps)}, heading ${compass(van.point.heading_deg)}`,
    );
  }

  _vanPopup(id) {
    const van = this.vans.get(id);
    const p = van.point;
    return h(
      "div",
      { class: "popup" },
      h("strong", {}, `Van ${id}`),
      h("br"),
      `${van.online ? "online" : "offline"} · ${kmh(p.speed_mps)} · ${compass(p.heading_deg)}`,
      h("br"),
      `last fix ${ago(p.t)}`,
    );
  }

  // The lockers' sites from the hub's database ({id: [lat, lon]}): they win over the settings'
  // positions, which stay for lockers the database does not place. Markers move to match.
  setLockerSites(sites) {
    this.sites = { ...this.configSites, ...sites };
    for (const entry of this.lockers.values()) this.setLocker(entry.locker);
  }

  setLocker(locker) {
    const site = this.sites[locker.id];
    let entry = this.lockers.get(locker.id);
    if (!entry) {
      entry = { locker, marker: null };
      this.lockers.set(locker.id, entry);
    }
    entry.locker = locker;
    if (!site) return;
    const label = `${locker.occupied}/${locker.compartments}`;
    if (!entry.marker) {
      entry.marker = L.marker(site, {
        icon: L.divIcon({ className: "locker-marker", html: "<span></span>", iconSize: [40, 24] }),
        title: locker.id,
        alt: `Locker ${locker.id}`,
        keyboard: true,
      }).addTo(this.map);
      entry.marker.bindPopup(() => {
        const lk = this.lockers.get(locker.id).locker;
        return h(
          "div",
          { class: "popup" },
          h("strong", {}, `Locker ${lk.id}`),
          h("br"),
          `${lk.online ? "online" : "offline"} · ${lk.occupied} of ${lk.compartments} occupied`,
        );
      });
      entry.marker.getElement().dataset.locker = locker.id;
    }
    entry.marker.setLatLng(site);
    const el = entry.marker.getElement();
    el.dataset.lat = String(site[0]);
    el.dataset.lon = String(site[1]);
    el.querySelector("span").textContent = label;
    el.classList.toggle("offline", !locker.online);
    el.classList.toggle("full", locker.compartments > 0 && locker.occupied >= locker.compartments);
    el.setAttribute(
      "aria-label",
      `Locker ${locker.id}, ${locker.online ? "online" : "offline"}, ${label} occupied`,
    );
    this._fitOnce();
  }
}

// A map with the hub's tiles, or the plain no-tiles background, and a scale: for views that draw
// their own layers (the day replay).
export function baseMap(element, config) {
  const map = L.map(element, { zoomControl: true, attributionControl: Boolean(config.tileUrl) });
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { maxZoom: 19, attribution: config.tileAttribution || "" }).addTo(map);
  } else {
    element.classList.add("no-tiles");
  }
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([52.37, 4.895], 13);
  return map;
}
