// The lockers view: pick a locker, see its compartment grid; the ops role may open a compartment
// remotely, after a confirmation. Whether the hub agrees is its decision: the answer is shown.
import { clear, clock, h } from "./dom.js";

const ACK_POLLS = 20;
const ACK_POLL_MS = 1000;

export class LockersView {
  constructor({ api, list, detail, result, dialog, canOpen, chart }) {
    this.chart = chart;
    this.api = api;
    this.list = list;
    this.detail = detail;
    this.result = result;
    this.dialog = dialog;
    this.canOpen = canOpen;
    this.lockers = new Map();
    this.selected = null;
  }

  setLocker(locker) {
    this.lockers.set(locker.id, locker);
    this.renderList();
    if (this.chart) this.chart.show([...this.lockers.values()]);
  }

  renderList() {
    clear(this.list);
    for (const id of [...this.lockers.keys()].sort()) {
      const lk = this.lockers.get(id);
      this.list.append(
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "locker-choice",
              "aria-pressed": String(id === this.selected),
              dataset: { locker: id },
              onclick: () => this.select(id),
            },
            h("strong", {}, id),
            h("span", { class: lk.online ? "ok" : "bad" }, lk.online ? " online" : " offline"),
            h("span", { class: "help" }, ` ${lk.occupied}/${lk.compartments} occupied`),
          ),
        ),
      );
    }
  }

  async select(id) {
    this.selected = id;
    this.renderList();
    await this.refresh();
  }

  // Re-read the grid of the selected locker (after an event there, or on demand).
  async refresh(lockerId = null) {
    if (!this.selected || (lockerId && lockerId !== this.selected)) return;
    const id = this.selected;
    let grid;
    try {
      grid = await this.api.get(`/lockers/${encodeURIComponent(id)}/compartments`);
    } catch (err) {
      clear(this.detail).append(h("p", { class: "error" }, err.describe ? err.describe() : String(err)));
      return;
    }
    if (id !== this.selected) return;
    const cells = grid.data.map((c) =>
      h(
        "li",
        {
          class: `cell ${c.occupied ? "occupied" : "free"} door-${c.door}${c.alarm ? " alarm" : ""}`,
          dataset: { compartment: c.number },
        },
        h("span", { class: "num" }, `#${c.number}`),
        h("span", {}, c.occupied ? "occupied" : "free"),
        h("span", {}, `door ${c.door}`),
        c.alarm ? h("span", { class: "alarm-text" }, c.alarm.replaceAll("_", " ")) : null,
        this.canOpen
          ? h(
              "button",
              {
                type: "button",
                class: "danger small open-button",
                "aria-label": `Open compartment ${c.number} of ${id}`,
                onclick: () => this.confirmOpen(id, c.number),
              },
              "Open",
            )
          : null,
      ),
    );
    clear(this.detail).append(
      h("h3", {}, `Compartments of ${id}`),
      h("ul", { class: "grid", "aria-label": `Compartments of ${id}` }, cells),
      h("p", { class: "help" }, `Read ${clock(new Date().toISOString())}`),
    );
  }

  confirmOpen(lockerId, number) {
    const dialog = this.dialog;
    dialog.querySelector("#confirm-text").textContent =
      `Locker ${lockerId}, compartment ${number} will unlock at once. Anyone standing there can take what is inside.`;
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "open") this.open(lockerId, number);
      },
      { once: true },
    );
    dialog.showModal();
  }

  // 202 from the hub means "sent", not "opened": the locker's own answer (executed or refused) is
  // stored on the command, so the page asks for it a few times before saying it has none yet.
  async open(lockerId, number) {
    const where = `${lockerId} #${number}`;
    this.result.className = "result";
    this.result.textContent = `Asking the hub to open ${where}…`;
    let command;
    try {
      command = await this.api.post(`/lockers/${encodeURIComponent(lockerId)}/compartments/${number}/open`);
    } catch (err) {
      this.result.textContent = err.describe ? err.describe() : String(err);
      this.result.classList.add("error");
      return;
    }
    this.result.dataset.command = command.command_id;
    this.result.dataset.state = "sent";
    this.result.textContent = `Sent: the hub sent the open command to ${where}; waiting for the locker…`;
    const path = `/lockers/${encodeURIComponent(lockerId)}/commands/${command.command_id}`;
    for (let i = 0; i < ACK_POLLS && command.status === "sent"; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, ACK_POLL_MS));
      if (this.result.dataset.command !== command.command_id) return; // another open took over
      try {
        command = await this.api.get(path);
      } catch (err) {
        this.result.textContent = `Sent to ${where}, but its answer cannot be read: ${err.describe()}`;
        this.result.classList.add("error");
        return;
      }
    }
    this.result.dataset.state = command.status;
    if (command.status === "executed") {
      this.result.textContent = `Opened: ${where} confirmed at ${clock(command.acked_at)}.`;
      this.result.classList.add("ok");
    } else if (command.status === "refused") {
      this.result.textContent = `Refused by ${lockerId}: ${command.reason || "no reason given"}.`;
      this.result.classList.add("error");
    } else {
      this.result.textContent =
        `Sent to ${where}; no answer from the locker yet (it may be offline). ` +
        `The command expires at ${clock(command.expires_at)}.`;
    }
  }
}
