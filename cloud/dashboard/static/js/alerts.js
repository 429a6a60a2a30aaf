// The alerts feed: vehicle and locker events (severity rated by the hub), and devices going
// offline, newest first. Loaded from /events, then kept current from the live stream.
import { clear, clock, h } from "./dom.js";

const MAX_ITEMS = 300;
const RANK = { info: 0, warning: 1, critical: 2 };

// What happened, in words: most kinds by name; a stop predicted late (the hub's route_late, from
// /events or the live stream alike) with its stop and by how many minutes.
export function describe(e) {
  if (e.kind === "route_late" && e.evidence) {
    const minutes = Math.max(1, Math.round((e.evidence.late_by_s || 0) / 60));
    return ` stop predicted late: stop ${e.evidence.stop_id}, ${minutes} min late`;
  }
  return ` ${e.kind.replaceAll("_", " ")}${e.reason ? ` — ${e.reason}` : ""}`;
}

export class AlertsFeed {
  constructor({ list, alertsOnly, badge }) {
    this.list = list;
    this.alertsOnly = alertsOnly;
    this.badge = badge;
    this.items = [];
    this.sinceLoad = [];
    this.unseen = 0;
    alertsOnly.addEventListener("change", () => this.render());
  }

  // Call before asking /events: what the stream brings while that request is out must survive
  // load(), which the hub's answer may predate (an event can reach the page before the database).
  beginLoad() {
    this.sinceLoad = [];
  }

  load(events) {
    const key = (e) => `${e.device_id}|${e.kind}|${Date.parse(e.at)}|${e.compartment ?? ""}`;
    const loaded = new Set(events.map(key));
    const live = this.sinceLoad.filter((e) => !loaded.has(key(e))).reverse();
    this.items = [...live, ...events.map((e) => ({ ...e }))];
    this.sinceLoad = [];
    this.render();
  }

  add(item, { counted = true } = {}) {
    this.items.unshift(item);
    this.sinceLoad.push(item);
    if (this.items.length > MAX_ITEMS) this.items.length = MAX_ITEMS;
    if (counted && RANK[item.severity] >= 1) {
      this.unseen += 1;
      this.badge.textContent = String(this.unseen);
      this.badge.hidden = false;
    }
    this.render();
  }

  seen() {
    this.unseen = 0;
    this.badge.hidden = true;
  }

  render() {
    const minimum = this.alertsOnly.checked ? 1 : 0;
    clear(this.list);
    for (const e of this.items) {
      if (RANK[e.severity] < minimum) continue;
      const where = e.compartment ? ` #${e.compartment}` : "";
      this.list.append(
        h(
          "li",
          { class: `event ${e.severity}`, dataset: { kind: e.kind, device: e.device_id } },
          h("span", { class: "sev" }, e.severity),
          h("time", { datetime: e.at }, clock(e.at)),
          h("strong", {}, `${e.source} ${e.device_id}${where}`),
          h("span", {}, describe(e)),
        ),
      );
    }
  }
}
