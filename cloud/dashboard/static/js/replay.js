// A van's day replayed: its track from /positions, its trips and stops (derived by the hub) and
// its driving events, on a map of its own, with a time slider that moves a marker along the track.
//
// A 10-hour day at 1 Hz is 36,000 fixes: they are kept in typed arrays, the slider finds its fix
// by binary search on time, and only a simplified copy of each trip is drawn (Douglas-Peucker in
// metres), so that the map stays quick to pan and the slider quick to drag.
import { clear, h, kmh } from "./dom.js";
import { baseMap } from "./map.js";

const L = window.L;
const PAGE = 10_000; // the positions route's largest page
const DRAW_TOLERANCE_M = 3; // what a simplified trip may stray from the fixes
const GAP_S = 30; // no interpolation across a silence longer than this: the marker waits
const TRIP_COLOURS = ["#0b4f8a", "#a4262c", "#17663a", "#8a5300", "#5b2a86", "#00607a"];
const SPEEDS = [1, 10, 60, 300];
const DEG = Math.PI / 180;
const EARTH_M = 6_371_000;

export function utcTime(ms) {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

export function duration(seconds) {
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  return hh ? `${hh} h ${String(mm).padStart(2, "0")} min` : mm ? `${mm} min ${String(ss).padStart(2, "0")} s` : `${ss} s`;
}

function metres(lat1, lon1, lat2, lon2) {
  const x = (lon2 - lon1) * DEG * Math.cos(((lat1 + lat2) / 2) * DEG);
  const y = (lat2 - lat1) * DEG;
  return Math.sqrt(x * x + y * y) * EARTH_M;
}

// The last index whose time is <= t (0 if t is before the first fix): O(log n) per slider move.
export function indexAt(times, t) {
  let lo = 0;
  let hi = times.length - 1;
  if (hi < 0 || t <= times[0]) return 0;
  if (t >= times[hi]) return hi;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Indexes of [from, to] kept by Douglas-Peucker at `tolerance` metres (iterative: no deep
// recursion on a long straight drive). Points are projected to local metres first.
export function simplify(track, from, to, tolerance) {
  if (to - from < 2) return to > from ? [from, to] : [from];
  const lat0 = track.lat[from] * DEG;
  const kx = Math.cos(lat0) * DEG * EARTH_M;
  const ky = DEG * EARTH_M;
  const x = (i) => track.lon[i] * kx;
  const y = (i) => track.lat[i] * ky;
  const keep = new Uint8Array(to - from + 1);
  keep[0] = 1;
  keep[to - from] = 1;
  const stack = [[from, to]];
  const tol2 = tolerance * tolerance;
  while (stack.length) {
    const [a, b] = stack.pop();
    const ax = x(a);
    const ay = y(a);
    const dx = x(b) - ax;
    const dy = y(b) - ay;
    const len2 = dx * dx + dy * dy;
    let worst = -1;
    let worstD = tol2;
    for (let i = a + 1; i < b; i++) {
      const px = x(i) - ax;
      const py = y(i) - ay;
      let d2;
      if (len2 === 0) d2 = px * px + py * py;
      else {
        const cross = px * dy - py * dx;
        d2 = (cross * cross) / len2;
      }
      if (d2 > worstD) {
        worstD = d2;
        worst = i;
      }
    }
    if (worst > 0) {
      keep[worst - from] = 1;
      if (worst - a > 1) stack.push([a, worst]);
      if (b - worst > 1) stack.push([worst, b]);
    }
  }
  const out = [];
  for (let i = 0; i < keep.length; i++) if (keep[i]) out.push(from + i);
  return out;
}

// The day's fixes as columns: times in ms, positions, speeds in m/s (NaN where the van sent none).
function columns(points) {
  const n = points.length;
  const track = {
    n,
    t: new Float64Array(n),
    lat: new Float64Array(n),
    lon: new Float64Array(n),
    speed: new Float32Array(n),
  };
  points.forEach((p, i) => {
    track.t[i] = Date.parse(p.t);
    track.lat[i] = p.lat;
    track.lon[i] = p.lon;
    track.speed[i] = p.speed_mps ?? NaN;
  });
  return track;
}

export class DayReplay {
  constructor({ api, root, config }) {
    this.api = api;
    this.root = root;
    this.config = config;
    this.$ = (sel) => root.querySelector(sel);
    this.map = null;
    this.layers = null;
    this.marker = null;
    this.track = null;
    this.playing = false;
    this.lastFrame = 0;
    this.vansLoaded = false;
    this.$("#replay-day").value = new Date().toISOString().slice(0, 10);
    this.$("#replay-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = event.submitter || this.$('#replay-form button[type="submit"]');
      button.disabled = true; // one day at a time: a second click would race the first
      try {
        await this.load();
      } catch (err) {
        this._say(err.describe ? err.describe() : String(err), true);
      } finally {
        button.disabled = false;
      }
    });
    this.slider = this.$("#replay-time");
    this.slider.addEventListener("input", () => this.seek(Number(this.slider.value) * 1000));
    this.$("#replay-play").addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.speed = this.$("#replay-speed");
    for (const s of SPEEDS) this.speed.append(h("option", { value: s }, `${s}×`));
    this.speed.value = "60";
  }

  // Called when the view is shown: the map is built on first sight (Leaflet needs a sized box).
  // Never rejects: what fails is said in the view.
  async shown() {
    try {
      await this._prepare();
    } catch (err) {
      this._say(err.describe ? err.describe() : String(err), true);
    }
  }

  async _prepare() {
    if (!this.map) {
      this.map = baseMap(this.$("#replay-map"), this.config);
      this.layers = L.layerGroup().addTo(this.map);
    }
    this.map.invalidateSize();
    if (!this.vansLoaded) {
      const vans = await this.api.get("/vehicles");
      const select = this.$("#replay-van");
      clear(select);
      for (const v of vans.data) select.append(h("option", { value: v.id }, v.id));
      this.vansLoaded = true;
    }
  }

  _say(text, error = false) {
    const out = this.$("#replay-result");
    out.textContent = text;
    out.classList.toggle("error", error);
  }

  async _positions(van, since, until) {
    const points = [];
    let from = since;
    for (;;) {
      const q = new URLSearchParams({ since: from, until, limit: String(PAGE) });
      const page = await this.api.get(`/vehicles/${encodeURIComponent(van)}/positions?${q}`);
      // `since` is inclusive: the page starts with the fixes at the last time already seen.
      const last = points.length ? Date.parse(points[points.length - 1].t) : -Infinity;
      for (const p of page.data) if (Date.parse(p.t) > last) points.push(p);
      if (page.data.length < PAGE) return points;
      const next = page.data[page.data.length - 1].t;
      if (Date.parse(next) <= Date.parse(from)) return points; // one instant fills a page: stop
      from = next;
    }
  }

  async load() {
    this.pause();
    const van = this.$("#replay-van").value;
    const day = this.$("#replay-day").value;
    if (!van || !day) return this._say("Choose a van and a day.", true);
    const since = new Date(`${day}T00:00:00Z`);
    const until = new Date(since.getTime() + 86_400_000);
    const window = new URLSearchParams({ from: since.toISOString(), to: until.toISOString(), limit: "1000" });
    const path = `/vehicles/${encodeURIComponent(van)}`;
    this._say(`Loading ${van} on ${day}…`);
    const events = new URLSearchParams({
      device_id: van,
      since: since.toISOString(),
      until: until.toISOString(),
      limit: "1000",
    });
    const [points, trips, stops, evs] = await Promise.all([
      this._positions(van, since.toISOString(), until.toISOString()),
      this.api.get(`${path}/trips?${window}`),
      this.api.get(`${path}/stops?${window}`),
      this.api.get(`/events?${events}`),
    ]);
    const driving = evs.data.filter((e) => e.source === "vehicle").reverse(); // oldest first
    this.show({ van, day, points, trips: trips.data, stops: stops.data, events: driving });
  }

  show({ van, day, points, trips, stops, events }) {
    this.track = columns(points);
    this.van = van;
    this.layers.clearLayers();
    this.marker = null;
    this._tables(trips, stops, events);
    const empty = this.track.n === 0;
    this.$("#replay-controls").hidden = empty;
    if (empty) return this._say(`${van} sent no position on ${day} (UTC).`);
    let drawn = 0;
    const bounds = L.latLngBounds([]);
    trips.forEach((trip, k) => {
      const a = indexAt(this.track.t, Date.parse(trip.start));
      const b = indexAt(this.track.t, Date.parse(trip.end));
      const kept = simplify(this.track, a, b, DRAW_TOLERANCE_M);
      drawn += kept.length;
      const latlngs = kept.map((i) => [this.track.lat[i], this.track.lon[i]]);
      const line = L.polyline(latlngs, {
        className: "replay-trip",
        color: TRIP_COLOURS[k % TRIP_COLOURS.length],
        weight: 5,
        opacity: 0.85,
      }).addTo(this.layers);
      line.bindTooltip(`Trip ${k + 1}: ${utcTime(Date.parse(trip.start))} – ${utcTime(Date.parse(trip.end))}`);
      line.on("click", () => this.seek(Date.parse(trip.start)));
      const el = line.getElement();
      if (el) el.dataset.trip = String(k + 1);
      bounds.extend(line.getBounds());
    });
    stops.forEach((stop, k) => {
      const label = `Stop ${k + 1}: arrived ${utcTime(Date.parse(stop.start))}, left ${utcTime(
        Date.parse(stop.end),
      )}, ${duration(stop.duration_s)}${stop.ignition_off ? ", engine off" : ""}`;
      const marker = L.marker([stop.lat, stop.lon], {
        icon: L.divIcon({ className: "replay-stop-marker", html: `<span>${k + 1}</span>`, iconSize: [26, 26] }),
        title: label,
        alt: label,
        keyboard: true,
      }).addTo(this.layers);
      marker.bindPopup(label);
      marker.getElement().dataset.stop = String(k + 1);
      bounds.extend([stop.lat, stop.lon]);
    });
    for (const e of events) {
      const at = Date.parse(e.at);
      const i = indexAt(this.track.t, at);
      const where = e.lat !== null && e.lon !== null ? [e.lat, e.lon] : [this.track.lat[i], this.track.lon[i]];
      const label = `${e.kind.replaceAll("_", " ")} at ${utcTime(at)}`;
      const marker = L.marker(where, {
        icon: L.divIcon({ className: `event-marker ${e.severity}`, html: "<span>!</span>", iconSize: [22, 22] }),
        title: label,
        alt: label,
        keyboard: true,
      }).addTo(this.layers);
      marker.bindPopup(label);
      marker.getElement().dataset.kind = e.kind;
    }
    const first = [this.track.lat[0], this.track.lon[0]];
    this.marker = L.marker(first, {
      icon: L.divIcon({ className: "replay-marker", html: "<span></span>", iconSize: [20, 20] }),
      title: `Van ${van} in the replay`,
      alt: `Van ${van} in the replay`,
      keyboard: false,
      zIndexOffset: 1000,
    }).addTo(this.layers);
    if (!bounds.isValid()) for (let i = 0; i < this.track.n; i += 60) bounds.extend([this.track.lat[i], this.track.lon[i]]);
    bounds.extend(first);
    this.map.invalidateSize();
    this.map.fitBounds(bounds.pad(0.15), { animate: false, maxZoom: 17 });
    const t0 = Math.floor(this.track.t[0] / 1000);
    const t1 = Math.ceil(this.track.t[this.track.n - 1] / 1000);
    this.slider.min = String(t0);
    this.slider.max = String(t1);
    this.slider.step = "1";
    this.$("#replay-start").textContent = utcTime(t0 * 1000);
    this.$("#replay-end").textContent = utcTime(t1 * 1000);
    this.root.dataset.points = String(this.track.n);
    this.root.dataset.drawn = String(drawn);
    const count = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
    this._say(
      `${van} on ${day} (UTC): ${count(this.track.n, "fix", "fixes")}, ` +
        `${count(trips.length, "trip")}, ${count(stops.length, "stop")}, ${count(events.length, "driving event")}.`,
    );
    this.seek(t0 * 1000);
  }

  _tables(trips, stops, events) {
    const jump = (iso, what) =>
      h("button", { type: "button", class: "small secondary", onclick: () => this.seek(Date.parse(iso)) }, what);
    const tripBody = clear(this.$("#replay-trips tbody"));
    trips.forEach((trip, k) => {
      tripBody.append(
        h(
          "tr",
          { dataset: { trip: String(k + 1) } },
          h("td", {}, jump(trip.start, `Trip ${k + 1}`)),
          h("td", {}, utcTime(Date.parse(trip.start))),
          h("td", {}, utcTime(Date.parse(trip.end))),
          h("td", {}, duration(trip.duration_s)),
          h("td", {}, `${(trip.distance_m / 1000).toFixed(1)} km`),
        ),
      );
    });
    const stopBody = clear(this.$("#replay-stops tbody"));
    stops.forEach((stop, k) => {
      stopBody.append(
        h(
          "tr",
          { dataset: { stop: String(k + 1) } },
          h("td", {}, jump(stop.start, `Stop ${k + 1}`)),
          h("td", {}, utcTime(Date.parse(stop.start))),
          h("td", {}, utcTime(Date.parse(stop.end))),
          h("td", {}, duration(stop.duration_s)),
        ),
      );
    });
    const eventList = clear(this.$("#replay-events"));
    for (const e of events) {
      eventList.append(
        h(
          "li",
          { class: `event ${e.severity}`, dataset: { kind: e.kind } },
          jump(e.at, utcTime(Date.parse(e.at))),
          h("span", {}, ` ${e.kind.replaceAll("_", " ")}`),
        ),
      );
    }
    this.$("#replay-no-events").hidden = events.length > 0;
  }

  // The van's position at `ms`: between two fixes close in time, interpolated; across a gap, the
  // last fix before it. Speed as sent, or from the neighbouring fixes when the van sent none.
  at(ms) {
    const tr = this.track;
    const i = indexAt(tr.t, ms);
    const j = Math.min(i + 1, tr.n - 1);
    const span = tr.t[j] - tr.t[i];
    let f = span > 0 && span <= GAP_S * 1000 ? (ms - tr.t[i]) / span : 0;
    f = Math.max(0, Math.min(1, f));
    const lat = tr.lat[i] + (tr.lat[j] - tr.lat[i]) * f;
    const lon = tr.lon[i] + (tr.lon[j] - tr.lon[i]) * f;
    let speed = tr.speed[i];
    if (Number.isNaN(speed)) {
      const a = Math.max(0, i - 1);
      const b = Math.min(tr.n - 1, i + 1);
      const dt = (tr.t[b] - tr.t[a]) / 1000;
      speed = dt > 0 && dt <= 2 * GAP_S ? metres(tr.lat[a], tr.lon[a], tr.lat[b], tr.lon[b]) / dt : null;
    }
    return { index: i, lat, lon, speed };
  }

  seek(ms) {
    if (!this.track || !this.track.n || !this.marker) return;
    const lo = Number(this.slider.min) * 1000;
    const hi = Number(this.slider.max) * 1000;
    ms = Math.max(lo, Math.min(hi, ms));
    this.now = ms;
    const p = this.at(ms);
    this.marker.setLatLng([p.lat, p.lon]);
    const el = this.marker.getElement();
    el.dataset.t = new Date(ms).toISOString();
    el.dataset.index = String(p.index);
    el.dataset.lat = p.lat.toFixed(6);
    el.dataset.lon = p.lon.toFixed(6);
    const text = `${utcTime(ms)}, ${kmh(p.speed)}`;
    const second = Math.round(ms / 1000);
    if (Number(this.slider.value) !== second) this.slider.value = String(second);
    this.slider.setAttribute("aria-valuetext", text);
    this.$("#replay-clock").textContent = utcTime(ms);
    this.$("#replay-speed-now").textContent = kmh(p.speed);
  }

  play() {
    if (!this.track || !this.track.n) return;
    if (this.now >= Number(this.slider.max) * 1000) this.seek(Number(this.slider.min) * 1000);
    this.playing = true;
    const button = this.$("#replay-play");
    button.textContent = "Pause";
    this.lastFrame = performance.now();
    const step = (frame) => {
      if (!this.playing) return;
      const elapsed = frame - this.lastFrame;
      this.lastFrame = frame;
      this.seek(this.now + elapsed * Number(this.speed.value));
      if (this.now >= Number(this.slider.max) * 1000) return this.pause();
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  pause() {
    this.playing = false;
    const button = this.$("#replay-play");
    button.textContent = "Play";
  }
}
