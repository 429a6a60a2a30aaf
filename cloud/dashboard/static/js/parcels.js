// The parcels view: search the table, and (for roles that may) create a parcel. The new code is
// shown once, in this page only: it is kept in no table, storage or log, as the hub keeps none.
import { clear, clock, h } from "./dom.js";

const STATUS = { awaiting_pickup: "awaiting pickup", picked_up: "picked up" };

export class ParcelsView {
  constructor({ api, root, canCreate }) {
    this.api = api;
    this.root = root;
    this.body = root.querySelector("#parcel-table tbody");
    this.empty = root.querySelector("#parcel-empty");
    this.search = root.querySelector("#parcel-search");
    this.form = root.querySelector("#create-parcel");
    this.lockerInput = root.querySelector("#new-locker");
    this.lockerIds = root.querySelector("#locker-ids");
    this.codePanel = root.querySelector("#new-code");
    this.search.addEventListener("submit", (e) => {
      e.preventDefault();
      this.refresh();
    });
    root.querySelector("#new-code-done").addEventListener("click", () => this.hideCode());
    this.form.hidden = !canCreate;
    if (canCreate) this.form.addEventListener("submit", (e) => this.create(e));
  }

  // Suggestions for the locker field; a role that may not list lockers types the id itself.
  setLockers(ids) {
    clear(this.lockerIds);
    for (const id of ids) this.lockerIds.append(h("option", { value: id }));
    if (!this.lockerInput.value && ids.length === 1) this.lockerInput.value = ids[0];
  }

  async refresh() {
    const params = new URLSearchParams();
    const q = this.search.q.value.trim();
    const status = this.search.status.value;
    if (q) params.set("q", q);
    if (status) params.set("status", status);
    let page;
    try {
      page = await this.api.get(`/parcels${params.size ? "?" + params : ""}`);
    } catch (err) {
      clear(this.body).append(h("tr", {}, h("td", { colspan: 8, class: "error" }, err.describe())));
      return;
    }
    clear(this.body);
    for (const p of page.data) {
      this.body.append(
        h(
          "tr",
          { dataset: { parcel: p.id } },
          h("th", { scope: "row" }, h("code", { title: p.id }, p.id.slice(0, 8))),
          h("td", {}, p.locker_id),
          h("td", {}, p.compartment),
          h("td", { class: `status-${p.status}` }, STATUS[p.status] || p.status),
          h("td", {}, clock(p.created_at)),
          h("td", {}, clock(p.valid_until)),
          h("td", {}, clock(p.picked_up_at)),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "secondary small history-button",
                "aria-expanded": "false",
                "aria-label": `History of parcel ${p.id.slice(0, 8)}`,
                onclick: (e) => this.toggleHistory(e.currentTarget, p),
              },
              "History",
            ),
          ),
        ),
      );
    }
    this.empty.hidden = page.count > 0;
  }

  // What the locker reported for this parcel's compartment while the parcel was in it.
  async toggleHistory(button, parcel) {
    const row = button.closest("tr");
    if (button.getAttribute("aria-expanded") === "true") {
      row.nextElementSibling?.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const params = new URLSearchParams({
      device_id: parcel.locker_id,
      compartment: String(parcel.compartment),
      since: parcel.created_at,
      limit: "50",
    });
    if (parcel.picked_up_at) {
      params.set("until", new Date(Date.parse(parcel.picked_up_at) + 1000).toISOString());
    }
    let items;
    try {
      const page = await this.api.get(`/events?${params}`);
      items = page.data.length
        ? page.data
            .slice()
            .reverse()
            .map((e) => h("li", {}, h("time", { datetime: e.at }, clock(e.at)), ` ${e.kind.replaceAll("_", " ")}`))
        : [h("li", { class: "help" }, "Nothing reported yet.")];
    } catch (err) {
      items = [h("li", { class: "error" }, err.describe())];
    }
    const created = h("li", {}, h("time", { datetime: parcel.created_at }, clock(parcel.created_at)), " created at the hub");
    row.after(
      h("tr", { class: "history" }, h("td", { colspan: 8 }, h("ol", { class: "history-list" }, created, items))),
    );
    button.setAttribute("aria-expanded", "true");
  }

  async create(event) {
    event.preventDefault();
    const error = this.form.querySelector("#create-error");
    error.textContent = "";
    const body = { locker_id: this.lockerInput.value.trim() };
    const n = this.form.compartment.value.trim();
    if (n) body.compartment = Number(n);
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const parcel = await this.api.post("/parcels", body);
      this.showCode(parcel);
      this.form.compartment.value = "";
      await this.refresh();
    } catch (err) {
      error.textContent = err.describe();
    } finally {
      button.disabled = false;
    }
  }

  showCode(parcel) {
    this.codePanel.querySelector("#new-code-parcel").textContent = parcel.id.slice(0, 8);
    this.codePanel.querySelector("#new-code-compartment").textContent = `${parcel.locker_id} #${parcel.compartment}`;
    this.codePanel.querySelector("#new-code-value").textContent = parcel.code;
    this.codePanel.hidden = false;
    this.codePanel.querySelector("#new-code-done").focus();
  }

  hideCode() {
    this.codePanel.querySelector("#new-code-value").textContent = "";
    this.codePanel.hidden = true;
    this.form.querySelector("button[type=submit]").focus();
  }
}
