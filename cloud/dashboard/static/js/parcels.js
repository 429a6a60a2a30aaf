// The parcels view: search the table, read a parcel's history, create a parcel (roles that may),
// and move it along its lifecycle or issue, resend and revoke its codes (roles that may operate
// parcels). A code and a tracking link are shown once, in this page only: they are kept in no
// table, storage or log, as the hub keeps none.
import { clear, clock, h } from "./dom.js";

export const STATUS = {
  created: "created",
  at_depot: "at depot",
  out_for_delivery: "out for delivery",
  delivered: "delivered",
  deposited: "in the locker",
  picked_up: "picked up",
  returned: "returned",
};

const KIND = { courier: "Courier", pickup: "Pickup", return: "Return" };
const COLUMNS = 7;

// What an operator may do with a parcel in this status; the hub checks again (409 if not).
function actionsFor(parcel) {
  const locker = parcel.locker_id !== null;
  const out = [];
  if (parcel.status === "created") out.push({ id: "at_depot", label: "Move to depot" });
  if (parcel.status === "at_depot") out.push({ id: "out_for_delivery", label: "Out for delivery" });
  if (locker && parcel.status === "out_for_delivery") {
    out.push({ id: "courier", label: "Issue courier code" });
  }
  if (locker && parcel.status === "deposited") out.push({ id: "pickup", label: "Resend pickup code" });
  if (locker && (parcel.status === "out_for_delivery" || parcel.status === "deposited")) {
    out.push({ id: "revoke", label: "Revoke codes", danger: true });
  }
  return out;
}

function destination(p) {
  if (p.locker_id !== null) return p.compartment ? `${p.locker_id} #${p.compartment}` : p.locker_id;
  return p.address;
}

// A datetime-local value (the tablet's own time zone) as an ISO instant, or null when empty.
function instant(value) {
  return value ? new Date(value).toISOString() : null;
}

export class ParcelsView {
  constructor({ api, root, canCreate, canOperate }) {
    this.api = api;
    this.root = root;
    this.canOperate = canOperate;
    this.openHistory = new Set(); // parcel ids whose history the operator has open
    this.body = root.querySelector("#parcel-table tbody");
    this.empty = root.querySelector("#parcel-empty");
    this.search = root.querySelector("#parcel-search");
    this.form = root.querySelector("#create-parcel");
    this.lockerInput = root.querySelector("#new-locker");
    this.lockerIds = root.querySelector("#locker-ids");
    this.codePanel = root.querySelector("#new-code");
    this.trackPanel = root.querySelector("#new-tracking");
    this.result = root.querySelector("#parcel-result");
    this.search.addEventListener("submit", (e) => {
      e.preventDefault();
      this.refresh();
    });
    root.querySelector("#new-code-done").addEventListener("click", () => this.hideCode());
    root.querySelector("#new-tracking-done").addEventListener("click", () => this.hideTracking());
    this.form.hidden = !canCreate;
    if (canCreate) {
      this.form.addEventListener("submit", (e) => this.create(e));
      for (const radio of this.form.querySelectorAll("input[name=destination]")) {
        radio.addEventListener("change", () => this.showDestination());
      }
      this.showDestination();
    }
  }

  // Suggestions for the locker field; a role that may not list lockers types the id itself.
  setLockers(ids) {
    clear(this.lockerIds);
    for (const id of ids) this.lockerIds.append(h("option", { value: id }));
    if (!this.lockerInput.value && ids.length === 1) this.lockerInput.value = ids[0];
  }

  showDestination() {
    const home = this.form.destination.value === "address";
    for (const el of this.form.querySelectorAll(".for-locker")) el.hidden = home;
    for (const el of this.form.querySelectorAll(".for-address")) el.hidden = !home;
    this.lockerInput.required = !home;
    for (const name of ["address", "lat", "lon"]) this.form[name].required = home;
  }

  async refresh() {
    this.generation = (this.generation || 0) + 1;
    const generation = this.generation; // a later refresh wins, even if it answers first
    const params = new URLSearchParams();
    const q = this.search.q.value.trim();
    const status = this.search.status.value;
    if (q) params.set("q", q);
    if (status) params.set("status", status);
    let page;
    try {
      page = await this.api.get(`/parcels${params.size ? "?" + params : ""}`);
    } catch (err) {
      if (generation !== this.generation) return;
      clear(this.body).append(h("tr", {}, h("td", { colspan: COLUMNS, class: "error" }, err.describe())));
      return;
    }
    // Built off-screen, then swapped in at once; a history that was open stays open.
    const rows = [];
    const shown = new Set();
    for (const p of page.data) {
      const row = this.row(p);
      rows.push(row);
      if (this.openHistory.has(p.id)) {
        rows.push(await this.historyRow(p));
        row.querySelector(".history-button").setAttribute("aria-expanded", "true");
        shown.add(p.id);
      }
    }
    if (generation !== this.generation) return;
    clear(this.body).append(...rows);
    this.empty.hidden = page.count > 0;
    // A history opened while this refresh was out: open it in the new rows too.
    for (const row of rows) {
      const id = row.dataset.parcel;
      if (id && this.openHistory.has(id) && !shown.has(id)) {
        const p = page.data.find((x) => x.id === id);
        this.openHistory.delete(id);
        await this.toggleHistory(row.querySelector(".history-button"), p);
      }
    }
  }

  row(p) {
    const short = p.id.slice(0, 8);
    const buttons = [
      h(
        "button",
        {
          type: "button",
          class: "secondary small history-button",
          "aria-expanded": "false",
          "aria-label": `History of parcel ${short}`,
          onclick: (e) => this.toggleHistory(e.currentTarget, p),
        },
        "History",
      ),
    ];
    if (this.canOperate) {
      for (const action of actionsFor(p)) {
        buttons.push(
          h(
            "button",
            {
              type: "button",
              class: `${action.danger ? "danger" : ""} small action-button`,
              dataset: { action: action.id },
              "aria-label": `${action.label}, parcel ${short}`,
              onclick: (e) => this.act(e.currentTarget, p, action.id),
            },
            action.label,
          ),
        );
      }
    }
    return h(
      "tr",
      { dataset: { parcel: p.id, status: p.status } },
      h("th", { scope: "row" }, h("code", { title: p.id }, short)),
      h("td", {}, p.reference),
      h("td", {}, destination(p)),
      h("td", {}, h("span", { class: `status status-${p.status}` }, STATUS[p.status] || p.status)),
      h("td", {}, clock(p.created_at)),
      h("td", {}, clock(p.updated_at)),
      h("td", {}, h("div", { class: "actions" }, buttons)),
    );
  }

  // The parcel's own history at the hub: every transition, attempt, code issued or ended.
  async toggleHistory(button, parcel) {
    const row = button.closest("tr");
    if (button.getAttribute("aria-expanded") === "true") {
      if (row.nextElementSibling?.classList.contains("history")) row.nextElementSibling.remove();
      button.setAttribute("aria-expanded", "false");
      this.openHistory.delete(parcel.id);
      return;
    }
    button.setAttribute("aria-expanded", "true");
    this.openHistory.add(parcel.id);
    const history = await this.historyRow(parcel);
    if (button.getAttribute("aria-expanded") === "true" && row.isConnected) row.after(history);
  }

  async historyRow(parcel) {
    let items;
    try {
      const page = await this.api.get(`/parcels/${parcel.id}/events`);
      items = page.data.map((e) =>
        h(
          "li",
          { dataset: { kind: e.kind } },
          h("time", { datetime: e.at }, clock(e.at)),
          ` ${e.kind.replaceAll("_", " ")}`,
          e.reason ? h("span", { class: "help" }, ` (${e.reason})`) : null,
        ),
      );
    } catch (err) {
      items = [h("li", { class: "error" }, err.describe())];
    }
    return h(
      "tr",
      { class: "history", dataset: { historyOf: parcel.id } },
      h("td", { colspan: COLUMNS }, h("ol", { class: "history-list" }, items)),
    );
  }

  async act(button, parcel, action) {
    const short = parcel.id.slice(0, 8);
    const base = `/parcels/${parcel.id}`;
    this.result.className = "result";
    this.result.textContent = "";
    button.disabled = true;
    try {
      if (action === "at_depot" || action === "out_for_delivery") {
        const moved = await this.api.post(`${base}/transitions`, { to: action });
        this.say(`Parcel ${short} is ${STATUS[moved.status]}.`, "ok");
      } else if (action === "courier" || action === "pickup") {
        const issued = await this.api.post(`${base}/codes`, { kind: action });
        this.showCode(issued, short);
      } else if (action === "revoke") {
        const ended = await this.api.post(`${base}/codes/revoke`);
        this.say(`Parcel ${short}: ${ended.count} code${ended.count === 1 ? "" : "s"} revoked.`, "ok");
      }
    } catch (err) {
      this.say(err.describe(), "error");
    } finally {
      button.disabled = false;
    }
    await this.refresh();
  }

  say(text, kind) {
    this.result.className = `result ${kind}`;
    this.result.textContent = text;
  }

  async create(event) {
    event.preventDefault();
    const f = this.form;
    const error = f.querySelector("#create-error");
    error.textContent = "";
    const body = { size: f.size.value };
    const reference = f.reference.value.trim();
    if (reference) body.reference = reference;
    if (f.destination.value === "address") {
      body.address = f.address.value.trim();
      body.lat = Number(f.lat.value);
      body.lon = Number(f.lon.value);
      const start = instant(f.window_start.value);
      const end = instant(f.window_end.value);
      if (start) body.window_start = start;
      if (end) body.window_end = end;
    } else {
      body.locker_id = this.lockerInput.value.trim();
    }
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const parcel = await this.api.post("/parcels", body);
      this.showTracking(parcel);
      f.reference.value = "";
      await this.refresh();
    } catch (err) {
      error.textContent = err.describe();
    } finally {
      button.disabled = false;
    }
  }

  showTracking(parcel) {
    const url = new URL(parcel.tracking_path, location.origin).href;
    const link = this.trackPanel.querySelector("#new-tracking-link");
    link.href = url;
    link.textContent = url;
    this.trackPanel.querySelector("#new-tracking-parcel").textContent = parcel.id.slice(0, 8);
    this.trackPanel.hidden = false;
    this.trackPanel.querySelector("#new-tracking-done").focus();
  }

  hideTracking() {
    const link = this.trackPanel.querySelector("#new-tracking-link");
    link.removeAttribute("href");
    link.textContent = "";
    this.trackPanel.hidden = true;
    if (!this.form.hidden) this.form.querySelector("button[type=submit]").focus();
  }

  showCode(issued, short) {
    this.codePanel.querySelector("#new-code-kind").textContent = KIND[issued.kind] || issued.kind;
    this.codePanel.querySelector("#new-code-parcel").textContent = short;
    this.codePanel.querySelector("#new-code-compartment").textContent = `${issued.locker_id} #${issued.compartment}`;
    this.codePanel.querySelector("#new-code-value").textContent = issued.code;
    this.codePanel.hidden = false;
    this.codePanel.querySelector("#new-code-done").focus();
  }

  hideCode() {
    this.codePanel.querySelector("#new-code-value").textContent = "";
    this.codePanel.hidden = true;
  }
}
