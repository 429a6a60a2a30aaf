// Locker occupancy as stacked bars (Chart.js, from the vendor files): occupied and free per locker.
// The canvas's label repeats the figures as text for screen readers.

const Chart = window.Chart;

export class OccupancyChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { label: "occupied", data: [], backgroundColor: "#0b4f8a" },
          { label: "free", data: [], backgroundColor: "#c9d1dc" },
        ],
      },
      options: {
        indexAxis: "y",
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  show(lockers) {
    const sorted = [...lockers].sort((a, b) => a.id.localeCompare(b.id));
    this.canvas.parentElement.style.height = `${Math.max(140, 60 + 36 * sorted.length)}px`;
    this.chart.data.labels = sorted.map((lk) => lk.id);
    this.chart.data.datasets[0].data = sorted.map((lk) => lk.occupied);
    this.chart.data.datasets[1].data = sorted.map((lk) => Math.max(0, lk.compartments - lk.occupied));
    this.chart.update();
    this.canvas.setAttribute(
      "aria-label",
      "Occupancy: " + sorted.map((lk) => `${lk.id} ${lk.occupied} of ${lk.compartments}`).join(", "),
    );
  }
}
