// The planning view: start a plan (roles that may command vans) -- a depot's day from the hub's
// own parcels, or (advanced) a problem file -- watch its job run, read its summary (vans, stops,
// km, CO2, dropped stops and why; for a hub plan its dropped parcels and each stop's parcels),
// dispatch it or re-plan it. A viewer sees the plans and their routes; the start forms and the
// dispatch and re-plan buttons are removed from the page for it, not merely disabled.
import { clear, clock, h, stopName } from "./dom.js";

const POLL_MS = 1000;
const MAX_FILE_BYTES = 5 * 1024 * 1024;

export class PlanInputError extends Error {}

// The one place a planning request is built from the forms: the primary way plans a depot's day
// from the parcels the hub holds (``source: "hub"``); the advanced way posts a problem in our JSON
// format.
export function planRequest({ source = "problem", problemText, timeLimitS, day, depot, engine }) {
  if (source === "hub") {
    if (!depot) throw new PlanInputError("Choose a depot: the hub plans one depot's day at a time.");
    const body = { depot, time_limit_s: timeLimitS };
    if (engine) body.engine = engine;
    if (day) body.day = day;
    return { path: "/plans/from-hub", body };
  }
  let problem;
  try {
    problem = JSON.parse(problemText);
  } catch (err) {
    throw new PlanInputError(`The problem is not JSON: ${err.message}.`);
  }
  if (!problem || typeof problem !== "object" || Array.isArray(problem)) {
    throw new PlanInputError("The problem must be a JSON object with depots, vans and stops.");
  }
  // A saved request ({"problem": {...}, "time_limit_s": ...}) is taken for its problem.
  if (problem.problem && typeof problem.problem === "object") problem = problem.problem;
  const body = { problem, time_limit_s: timeLimitS };
  if (day) body.day = day;
  return { path: "/plans", body };
}

function stopVisits(route) {
  return route.visits.filter((v) => v.kind === "stop");
}

export function planTotals(plan) {
  const used = plan.routes.filter((r) => stopVisits(r).length > 0);
  return {
    vans: used.length,
    stops: used.reduce((n, r) => n + stopVisits(r).length, 0),
    km: plan.distance_m / 1000,
    co2: plan.co2_kg,
    drivingS: plan.driving_s,
    dropped: plan.dropped,
  };
}

// Problem times are seconds from midnight UTC of the plan's day.
function dayTime(day, seconds) {
  const t = new Date(Date.parse(`${day}T00:00:00Z`) + seconds * 1000);
  return t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function hours(seconds) {
  const m = Math.round(seconds / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

const short = (id) => id.slice(0, 8);

// Parcels on the plan's routes (a stop the solver dropped delivers none).
function plannedParcels(p) {
  return p.plan.routes.reduce(
    (n, r) => n + stopVisits(r).reduce((m, v) => m + ((p.parcels || {})[v.stop_id] || []).length, 0),
    0,
  );
}

export class PlansView {
  constructor({ api, root, canPlan, onDispatched }) {
    this.api = api;
    this.root = root;
    this.canPlan = canPlan;
    this.onDispatched = onDispatched;
    this.plans = new Map();
    this.selected = null;
    this.following = new Set();
    this.shownKey = "";
    const $ = (sel) => root.querySelector(sel);
    this.body = $("#plan-table tbody");
    this.empty = $("#plan-empty");
    this.title = $("#plan-detail-title");
    this.job = $("#plan-job");
    this.bar = $("#plan-progress");
    this.barText = $("#plan-progress-text");
    this.error = $("#plan-error");
    this.summary = $("#plan-summary");
    this.actions = $("#plan-actions");
    this.routes = $("#plan-routes");
    this.result = $("#plan-result");
    this.dialog = $("#confirm-dispatch");
    this.replanForm = $("#replan-form");
    this.startForm = $("#start-plan");
    this.hubForm = $("#hub-plan");
    if (!canPlan) {
      // Not offered at all: the controls are gone from the page, so no key or script finds them.
      this.hubForm.remove();
      $("#plan-advanced").remove();
      this.replanForm.remove();
      this.dialog.remove();
      this.startForm = this.hubForm = this.replanForm = this.dialog = null;
    } else {
      this._setupHubPlan();
      this._setupStart();
      this._setupReplan();
    }
  }

  _setupStart() {
    const form = this.startForm;
    const text = form.querySelector("#plan-problem");
    const errorBox = form.querySelector("#start-plan-error");
    form.querySelector("#plan-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      errorBox.textContent = "";
      if (!file) return;
      if (file.size > MAX_FILE_BYTES) {
        errorBox.textContent = `${file.name} is larger than 5 MB; the hub takes a problem, not an archive.`;
        return;
      }
      text.value = await file.text();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._start(form, errorBox, text, () =>
        planRequest({
          problemText: text.value,
          timeLimitS: Number(form.querySelector("#plan-time-limit").value) || 5,
          day: form.querySelector("#plan-day").value,
        }),
      );
    });
  }

  _setupHubPlan() {
    const form = this.hubForm;
    const errorBox = form.querySelector("#hub-plan-error");
    const depot = form.querySelector("#hub-plan-depot");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._start(form, errorBox, depot, () =>
        planRequest({
          source: "hub",
          depot: depot.value,
          timeLimitS: Number(form.querySelector("#hub-plan-time-limit").value) || 5,
          day: form.querySelector("#hub-plan-day").value,
          engine: form.querySelector("#hub-plan-engine").value,
        }),
      );
    });
  }

  // Build the request (refused in the page with the reason), post it, then follow the new job.
  async _start(form, errorBox, focusOnError, build) {
    errorBox.textContent = "";
    let request;
    try {
      request = build();
    } catch (err) {
      if (!(err instanceof PlanInputError)) throw err;
      errorBox.textContent = err.message;
      focusOnError.focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const job = await this.api.post(request.path, request.body);
      this._put(job);
      this.select(job.id);
      this.follow(job.id);
    } catch (err) {
      errorBox.textContent = err.describe ? err.describe() : String(err);
    } finally {
      button.disabled = false;
    }
  }

  // The depots with a site (GET /depots) fill the depot choice; the one chosen stays chosen.
  async loadDepots() {
    if (!this.hubForm) return;
    const page = await this.api.get("/depots");
    const select = this.hubForm.querySelector("#hub-plan-depot");
    const chosen = select.value;
    clear(select);
    for (const d of page.data) {
      const vans = d.vans.length === 1 ? "1 van" : `${d.vans.length} vans`;
      const lockers = d.lockers.length === 1 ? "1 locker" : `${d.lockers.length} lockers`;
      select.append(h("option", { value: d.id }, `${d.id} (${vans}, ${lockers})`));
    }
    if (page.data.some((d) => d.id === chosen)) select.value = chosen;
    const none = page.data.length === 0;
    this.hubForm.querySelector("#hub-plan-no-depot").hidden = !none;
    this.hubForm.querySelector("button[type=submit]").disabled = none;
    select.disabled = none;
  }

  _setupReplan() {
    const form = this.replanForm;
    const ids = (sel) =>
      form
        .querySelector(sel)
        .value.split(/[\s,]+/)
        .filter(Boolean);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const parent = this.selected;
      if (!parent) return;
      this.result.className = "result";
      this.result.textContent = `Re-planning what remains of plan ${short(parent)}…`;
      try {
        const job = await this.api.post(`/plans/${parent}/replan`, {
          cancelled: ids("#replan-cancelled"),
          broken: ids("#replan-broken"),
          time_limit_s: Number(form.querySelector("#replan-time-limit").value) || 5,
        });
        form.hidden = true;
        this._put(job);
        this.select(job.id);
        this.follow(job.id);
        this.result.textContent = `Re-plan ${short(job.id)} of plan ${short(parent)} started.`;
      } catch (err) {
        this.result.className = "result error";
        this.result.textContent = err.describe ? err.describe() : String(err);
      }
    });
    form.querySelector("#replan-cancel").addEventListener("click", () => {
      form.hidden = true;
      this.actions.querySelector("button")?.focus();
    });
  }

  async refresh() {
    if (this.hubForm) this.loadDepots().catch((err) => console.warn("depots failed", err));
    const page = await this.api.get("/plans?limit=50");
    for (const p of page.data) {
      const known = this.plans.get(p.id);
      // The list leaves routes and ETAs out: keep the detailed copy's.
      this.plans.set(p.id, known ? { ...known, ...p, routes: known.routes, etas: known.etas } : p);
      if (p.status === "queued" || p.status === "running") this.follow(p.id);
    }
    this.renderList(page.data.map((p) => p.id));
    if (!this.selected && page.data.length) this.select(page.data[0].id);
  }

  // A plan read elsewhere (the map's routes), or by this view.
  updated(plan) {
    this._put(plan);
    if (plan.id === this.selected) this.renderDetail();
  }

  _put(plan) {
    this.plans.set(plan.id, plan);
    this.renderList();
  }

  // Poll a queued or running job until it is done or failed; one loop per job.
  async follow(id) {
    if (this.following.has(id)) return;
    this.following.add(id);
    try {
      for (;;) {
        const job = await this.api.get(`/plans/${id}`);
        this.updated(job);
        if (job.status === "done" || job.status === "failed") break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    } catch (err) {
      this.error.textContent = err.describe ? err.describe() : String(err);
    } finally {
      this.following.delete(id);
    }
  }

  async select(id) {
    this.selected = id;
    this.shownKey = "";
    if (this.replanForm) this.replanForm.hidden = true;
    this.result.textContent = "";
    this.renderList();
    this.renderDetail();
    const plan = this.plans.get(id);
    if (plan && plan.dispatched_at && !plan.routes?.length) this.updated(await this.api.get(`/plans/${id}`));
  }

  renderList(order = null) {
    if (order) this.order = order;
    const ids = [...new Set([...(this.order || []), ...this.plans.keys()])];
    ids.sort((a, b) => Date.parse(this.plans.get(b).created_at) - Date.parse(this.plans.get(a).created_at));
    clear(this.body);
    this.empty.hidden = ids.length > 0;
    for (const id of ids) {
      const p = this.plans.get(id);
      const totals = p.plan ? planTotals(p.plan) : null;
      this.body.append(
        h(
          "tr",
          { dataset: { plan: id }, class: id === this.selected ? "selected" : "" },
          h("td", {}, clock(p.created_at)),
          h("td", {}, h("span", { class: `plan-status plan-${p.status}` }, p.status), p.parent_id ? " (re-plan)" : ""),
          h("td", {}, totals ? `${totals.stops} stops, ${totals.vans} vans` : "–"),
          h("td", {}, p.dispatched_at ? clock(p.dispatched_at) : "no"),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "secondary small",
                "aria-pressed": id === this.selected ? "true" : "false",
                "aria-label": `Show plan ${short(id)}`,
                onclick: () => this.select(id),
              },
              "Show",
            ),
          ),
        ),
      );
    }
  }

  renderDetail() {
    const p = this.plans.get(this.selected);
    if (!p) return;
    this.root.querySelector("#plan-detail").dataset.plan = p.id;
    this.root.querySelector("#plan-detail").dataset.status = p.status;
    this.title.textContent = `Plan ${short(p.id)}${p.parent_id ? `, re-plan of ${short(p.parent_id)}` : ""} · ${p.status}`;
    const running = p.status === "queued" || p.status === "running";
    this.job.hidden = !running && p.status !== "done";
    const pct = p.status === "done" ? 100 : Math.round(p.progress * 100);
    this.bar.value = pct;
    // Said at each tenth, not at every poll.
    const said = p.status === "done" ? "Planning done." : p.status === "queued" ? "Queued for the planner." : `Planning: ${Math.floor(pct / 10) * 10} %`;
    if (this.barText.textContent !== said) this.barText.textContent = said;
    this.error.textContent = p.status === "failed" ? `The plan failed: ${p.error}` : "";
    // The rest changes only with the job's status, its dispatch and its routes' states: a poll
    // must not rebuild the buttons under the operator's finger (or keyboard focus).
    const key = JSON.stringify([p.id, p.status, p.dispatched_at, (p.routes || []).map((r) => [r.state, r.completed.length])]);
    if (key === this.shownKey) return;
    this.shownKey = key;
    this._renderSummary(p);
    this._renderActions(p);
    this._renderRoutes(p);
  }

  _renderSummary(p) {
    clear(this.summary);
    if (!p.plan) return;
    const t = planTotals(p.plan);
    const fact = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
    this.summary.append(
      h(
        "dl",
        { class: "facts" },
        fact("Day", p.day),
        fact("Vans", String(t.vans)),
        fact("Stops", String(t.stops)),
        fact("Distance", `${t.km.toFixed(1)} km`),
        fact("CO₂", `${t.co2.toFixed(1)} kg`),
        fact("Driving", hours(t.drivingS)),
        fact("Feasible", p.plan.feasible ? "yes" : `no: ${p.plan.violations.join("; ")}`),
        p.depot ? fact("Depot", p.depot) : [],
        p.depot ? fact("Parcels", `${plannedParcels(p)} planned, ${(p.dropped_parcels || []).length} dropped`) : [],
      ),
      ...(p.depot ? this._hubParcels(p) : []),
      h("h4", {}, `Dropped stops (${t.dropped.length})`),
      t.dropped.length
        ? h(
            "ul",
            { class: "dropped" },
            t.dropped.map((d) => h("li", { dataset: { stop: d.stop_id } }, h("strong", {}, d.stop_id), `: ${d.reason}`)),
          )
        : h("p", { class: "help" }, "None: every stop is on a route."),
      h(
        "table",
        { class: "data plan-vans" },
        h("caption", { class: "visually-hidden" }, "Each van's route in this plan"),
        h(
          "thead",
          {},
          h("tr", {}, ["Van", "Stops", "km", "CO₂ kg", "Leaves", "Back"].map((c) => h("th", { scope: "col" }, c))),
        ),
        h(
          "tbody",
          {},
          p.plan.routes.map((r) =>
            h(
              "tr",
              { dataset: { vehicle: r.van_id } },
              h("th", { scope: "row" }, r.van_id),
              h("td", {}, stopVisits(r).map((v) => stopName(v.stop_id)).join(" → ") || "none"),
              h("td", {}, (r.distance_m / 1000).toFixed(1)),
              h("td", {}, r.co2_kg.toFixed(1)),
              h("td", {}, dayTime(p.day, r.start)),
              h("td", {}, dayTime(p.day, r.end)),
            ),
          ),
        ),
      ),
    );
  }

  // A plan from the hub's parcels: which parcels were left out and why, and what each stop delivers.
  _hubParcels(p) {
    const dropped = p.dropped_parcels || [];
    const routed = p.plan.routes.flatMap((r) => stopVisits(r).map((v) => [r.van_id, v.stop_id]));
    return [
      h("h4", {}, `Dropped parcels (${dropped.length})`),
      dropped.length
        ? h(
            "ul",
            { class: "dropped dropped-parcels" },
            dropped.map((d) =>
              h("li", { dataset: { parcel: d.parcel_id } }, h("strong", {}, `parcel ${short(d.parcel_id)}`), `: ${d.reason}`),
            ),
          )
        : h("p", { class: "help" }, "None: every parcel the depot holds is on a route."),
      h(
        "table",
        { class: "data plan-parcels" },
        h("caption", {}, "Parcels per stop"),
        h("thead", {}, h("tr", {}, ["Van", "Stop", "Parcels"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          routed.map(([van, stop]) => {
            const parcels = (p.parcels || {})[stop] || [];
            return h(
              "tr",
              { dataset: { stop, vehicle: van } },
              h("td", {}, van),
              h("th", { scope: "row" }, stopName(stop)),
              h(
                "td",
                {},
                `${parcels.length}: `,
                parcels.flatMap((id, k) => [k ? ", " : "", h("span", { class: "parcel-id", dataset: { parcel: id } }, short(id))]),
              ),
            );
          }),
        ),
      ),
    ];
  }

  _renderActions(p) {
    clear(this.actions);
    if (!this.canPlan || p.status !== "done") return;
    if (!p.dispatched_at) {
      this.actions.append(
        h("button", { type: "button", class: "danger", onclick: () => this.confirmDispatch(p.id) }, "Dispatch plan"),
      );
    }
    this.actions.append(
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          "aria-controls": "replan-form",
          onclick: () => {
            this.replanForm.hidden = false;
            this.replanForm.querySelector("input").focus();
          },
        },
        "Re-plan",
      ),
    );
  }

  _renderRoutes(p) {
    clear(this.routes);
    if (!p.dispatched_at) return;
    this.routes.append(
      h("p", {}, `Dispatched at ${clock(p.dispatched_at)}.`),
      h(
        "table",
        { class: "data route-states" },
        h("caption", { class: "visually-hidden" }, "Each van's dispatched route"),
        h(
          "thead",
          {},
          h("tr", {}, ["Van", "Route", "Acknowledged", "Done"].map((c) => h("th", { scope: "col" }, c))),
        ),
        h(
          "tbody",
          {},
          (p.routes || []).map((r) =>
            h(
              "tr",
              { dataset: { vehicle: r.vehicle_id, state: r.state } },
              h("th", { scope: "row" }, r.vehicle_id),
              h("td", {}, h("span", { class: `route-state state-${r.state}` }, r.state)),
              h("td", {}, r.acked_at ? clock(r.acked_at) : "–"),
              h("td", {}, `${r.completed.length} of ${r.stops.length}`),
            ),
          ),
        ),
      ),
    );
  }

  confirmDispatch(id) {
    const p = this.plans.get(id);
    const t = planTotals(p.plan);
    const dialog = this.dialog;
    dialog.querySelector("#confirm-dispatch-text").textContent =
      `Plan ${short(id)}: ${t.stops} stops on ${t.vans} vans. Each van gets its route at once and its ` +
      "driver is expected to follow it. A plan is dispatched once; change it later by re-planning.";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "dispatch") this.dispatch(id);
      },
      { once: true },
    );
    dialog.showModal();
  }

  async dispatch(id) {
    this.result.className = "result";
    this.result.textContent = `Sending plan ${short(id)}'s routes to the vans…`;
    try {
      const job = await this.api.post(`/plans/${id}/dispatch`);
      this.updated(job);
      this.result.className = "result ok";
      this.result.textContent = `Plan ${short(id)} dispatched: ${job.routes.length} routes sent; each turns acknowledged when its van has it.`;
      if (this.onDispatched) this.onDispatched(job);
    } catch (err) {
      this.result.className = "result error";
      this.result.textContent = err.describe ? err.describe() : String(err);
    }
  }
}
