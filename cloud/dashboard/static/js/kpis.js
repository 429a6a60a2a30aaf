// The KPIs view: one Chart.js chart per figure of GET /kpis, per UTC day, a line per van or per
// depot. Each chart has a data table with the same figures under it: what a screen reader reads
// (the canvas is only a picture), and what a sighted user can open to read exact values.
import { clear, h } from "./dom.js";

const Chart = window.Chart;
const COLOURS = ["#0b4f8a", "#a4262c", "#17663a", "#8a5300", "#5b2a86", "#00607a", "#4a5568", "#b3005e"];

// The figures charted: the API's field, a title, a unit and the decimals shown in the tables.
export const FIGURES = [
  { key: "on_time_pct", title: "On time", unit: "%", digits: 1 },
  { key: "first_attempt_success_pct", title: "First-attempt success", unit: "%", digits: 1 },
  { key: "deliveries_per_hour", title: "Deliveries per hour", unit: "/h", digits: 2 },
  { key: "km_per_parcel", title: "Distance per parcel", unit: "km", digits: 2 },
  { key: "co2_g_per_parcel", title: "CO2 per parcel", unit: "g", digits: 1 },
];

export function formatFigure(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export class KpisView {
  constructor({ api, root }) {
    this.api = api;
    this.root = root;
    this.$ = (sel) => root.querySelector(sel);
    this.charts = new Map();
    this.report = null;
    this.loaded = false;
    const today = new Date();
    this.$("#kpi-to").value = isoDay(today);
    this.$("#kpi-from").value = isoDay(new Date(today.getTime() - 6 * 86_400_000));
    this.$("#kpi-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load().catch((err) => this._say(err.describe ? err.describe() : String(err), true));
    });
    for (const radio of root.querySelectorAll('input[name="kpi-per"]')) {
      radio.addEventListener("change", () => this.render());
    }
    const toggle = this.$("#kpi-tables-toggle");
    toggle.addEventListener("click", () => {
      const showing = toggle.getAttribute("aria-pressed") === "true";
      toggle.setAttribute("aria-pressed", String(!showing));
      toggle.textContent = showing ? "Show the data tables" : "Hide the data tables";
      for (const t of root.querySelectorAll("table.kpi-table")) t.classList.toggle("visually-hidden", showing);
    });
    this._build();
  }

  _build() {
    const grid = clear(this.$("#kpi-charts"));
    for (const fig of FIGURES) {
      const titleId = `kpi-title-${fig.key}`;
      const canvas = h("canvas", { id: `kpi-chart-${fig.key}`, role: "img", "aria-label": fig.title });
      const table = h(
        "table",
        { class: "data kpi-table visually-hidden", id: `kpi-table-${fig.key}`, dataset: { figure: fig.key } },
        h("caption", {}, `${fig.title} (${fig.unit}) per day`),
        h("thead"),
        h("tbody"),
      );
      grid.append(
        h(
          "figure",
          { class: "chart kpi", "aria-labelledby": titleId },
          h("figcaption", { id: titleId }, `${fig.title} (${fig.unit})`),
          h("div", { class: "chart-box" }, canvas),
          table,
        ),
      );
      const chart = new Chart(canvas, {
        type: "line",
        data: { labels: [], datasets: [] },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          spanGaps: false,
          scales: { y: { beginAtZero: true, title: { display: true, text: fig.unit } } },
          plugins: { legend: { position: "bottom" } },
        },
      });
      this.charts.set(fig.key, { chart, canvas, table, fig });
    }
  }

  // Called when the view is shown; never rejects: what fails is said in the view.
  async shown() {
    if (this.loaded) return;
    try {
      await this.load();
    } catch (err) {
      this._say(err.describe ? err.describe() : String(err), true);
    }
  }

  _say(text, error = false) {
    const out = this.$("#kpi-result");
    out.textContent = text;
    out.classList.toggle("error", error);
  }

  per() {
    return this.root.querySelector('input[name="kpi-per"]:checked').value;
  }

  async load() {
    const from = this.$("#kpi-from").value;
    const to = this.$("#kpi-to").value;
    if (!from || !to) return this._say("Give the first and the last day.", true);
    // ISO dates compare as strings; the hub would refuse the range too, at the cost of a request.
    if (from > to) return this._say(`The first day (${from}) is after the last (${to}).`, true);
    const q = new URLSearchParams({ from, to });
    this._say("Loading…");
    this.report = await this.api.get(`/kpis?${q}`);
    this.loaded = true;
    this.render();
  }

  render() {
    if (!this.report) return;
    const perVan = this.per() === "van";
    const rows = this.report.data.filter((r) => (perVan ? r.vehicle_id !== null : r.vehicle_id === null));
    const days = [];
    for (let d = new Date(`${this.report.from}T00:00:00Z`); isoDay(d) <= this.report.to; ) {
      days.push(isoDay(d));
      d = new Date(d.getTime() + 86_400_000);
    }
    const seriesOf = (r) => (perVan ? r.vehicle_id : r.depot);
    const names = [...new Set(rows.map(seriesOf))].sort();
    const cell = new Map(rows.map((r) => [`${seriesOf(r)}|${r.day}`, r]));
    for (const { chart, canvas, table, fig } of this.charts.values()) {
      const value = (name, day) => cell.get(`${name}|${day}`)?.[fig.key] ?? null;
      chart.data.labels = days;
      chart.data.datasets = names.map((name, k) => ({
        label: name,
        data: days.map((day) => value(name, day)),
        borderColor: COLOURS[k % COLOURS.length],
        backgroundColor: COLOURS[k % COLOURS.length],
        pointRadius: 4,
      }));
      chart.update();
      const seen = names.length ? `${names.length} ${perVan ? "vans" : "depots"}` : "no data";
      canvas.setAttribute(
        "aria-label",
        `${fig.title} (${fig.unit}) per day from ${this.report.from} to ${this.report.to}, ${seen}; the table below has the figures`,
      );
      const head = clear(table.tHead);
      head.append(
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Day"),
          names.map((n) => h("th", { scope: "col" }, n)),
        ),
      );
      const body = clear(table.tBodies[0]);
      for (const day of days) {
        body.append(
          h(
            "tr",
            { dataset: { day } },
            h("th", { scope: "row" }, day),
            names.map((n) =>
              h("td", { dataset: { series: n } }, formatFigure(value(n, day), fig.digits)),
            ),
          ),
        );
      }
    }
    this._say(
      names.length
        ? `${names.length} ${perVan ? "vans" : "depots"}, ${days.length} days (UTC).`
        : `No KPI figures from ${this.report.from} to ${this.report.to}.`,
    );
  }
}
