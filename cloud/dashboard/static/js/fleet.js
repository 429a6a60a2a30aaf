// The fleet side panel: one row per van (status, speed, heading, freshness), one line per locker.
import { ago, clear, compass, h, kmh } from "./dom.js";

const STALE_MS = 60_000;

export class FleetPanel {
  constructor({ vanBody, lockerList }) {
    this.vanBody = vanBody;
    this.lockerList = lockerList;
    this.vans = new Map();
    this.lockers = new Map();
  }

  setVan(id, patch) {
    this.vans.set(id, { ...(this.vans.get(id) || { online: false, point: null }), ...patch });
    this.renderVans();
  }

  setLocker(locker) {
    this.lockers.set(locker.id, locker);
    this.renderLockers();
  }

  renderVans(now = Date.now()) {
    clear(this.vanBody);
    for (const id of [...this.vans.keys()].sort()) {
      const v = this.vans.get(id);
      const p = v.point;
      const stale = !p || now - Date.parse(p.t) > STALE_MS;
      this.vanBody.append(
        h(
          "tr",
          { dataset: { vehicle: id } },
          h("th", { scope: "row" }, id),
          h("td", { class: v.online ? "ok" : "bad" }, v.online ? "online" : "offline"),
          h("td", {}, p ? kmh(p.speed_mps) : "–"),
          h("td", {}, p ? compass(p.heading_deg) : "–"),
          h("td", { class: stale ? "stale-text" : "" }, p ? ago(p.t, now) : "no fix yet"),
        ),
      );
    }
  }

  renderLockers() {
    clear(this.lockerList);
    for (const id of [...this.lockers.keys()].sort()) {
      const lk = this.lockers.get(id);
      this.lockerList.append(
        h(
          "li",
          { dataset: { locker: id } },
          h("strong", {}, id),
          " ",
          h("span", { class: lk.online ? "ok" : "bad" }, lk.online ? "online" : "offline"),
          ` · ${lk.occupied} of ${lk.compartments} occupied`,
        ),
      );
    }
  }
}
