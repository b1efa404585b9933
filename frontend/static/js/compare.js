// The report's figures and summary table for the runs in the URL; polls while any of them is active.
import { ACTIVE, api, duration, el, poll, showMessage } from "./common.js";
import { COLORS, drawEpochCharts, drawLr } from "./charts.js";

const POLL_MS = 5000;

const root = document.getElementById("compare");
const runIds = root.dataset.runIds.split(",").map(Number);
const baselineSelect = document.getElementById("baseline");
const tbody = document.querySelector("#compare-table tbody");
const message = document.getElementById("compare-message");
const csvLink = document.getElementById("csv-link");
// A run keeps its colour whatever the baseline: it is fixed by its place in the URL.
const colorOf = new Map(runIds.map((id, index) => [id, COLORS[index % COLORS.length]]));

function choice() {
  return { baseline: Number(baselineSelect.value), mode: document.querySelector('input[name="mode"]:checked').value };
}

// The URL carries the selection, so a comparison can be shared as it is on screen.
function syncUrl({ baseline, mode }) {
  const params = new URLSearchParams({ runs: runIds.join(","), baseline, mode });
  history.replaceState(null, "", `/compare?${params}`);
  csvLink.href = `/api/v1/compare.csv?${new URLSearchParams({ run_ids: runIds.join(","), baseline, mode })}`;
}

function renderTable(rows) {
  for (const row of rows) {
    const option = baselineSelect.querySelector(`option[value="${row.run_id}"]`);
    if (option) option.textContent = `#${row.run_id} ${row.name}`;
  }
  tbody.replaceChildren(
    ...rows.map((row) =>
      el("tr", { class: row.is_baseline ? "baseline" : null, dataset: { runId: row.run_id } },
        el("th", { scope: "row" },
          el("span", { class: "swatch", style: `background:${colorOf.get(row.run_id)}`, "aria-hidden": "true" }),
          el("a", { href: `/runs/${row.run_id}` }, row.name), " ", el("span", { class: "muted" }, `#${row.run_id}`),
          row.is_baseline ? el("span", { class: "tag" }, "baseline") : null,
          row.status !== "succeeded" ? el("span", { class: `status status-${row.status}` }, row.status) : null),
        el("td", {}, row.tricks),
        el("td", { class: "num" }, row.epoch ?? "–"),
        el("td", { class: "num" }, row.top1_text),
        el("td", { class: "num" }, row.top5_text),
        el("td", { class: "num" }, duration(row.seconds_per_epoch)),
      ),
    ),
  );
}

function renderCharts(rows, metrics) {
  const byRun = new Map(runIds.map((id) => [id, []]));
  for (const row of metrics) byRun.get(row.run_id)?.push(row);
  const names = new Map(rows.map((row) => [row.run_id, `#${row.run_id} ${row.name}`]));
  const series = runIds.map((id) => ({
    name: names.get(id) ?? `#${id}`,
    color: colorOf.get(id),
    metrics: byRun.get(id).sort((a, b) => a.epoch - b.epoch),
  }));
  const epochs = rows.length ? Math.max(...rows.map((row) => row.epochs)) : null;
  drawEpochCharts(series, { epochs });
  drawLr("chart-lr", series, { epochs });
}

const refresh = poll(
  async () => {
    const current = choice();
    syncUrl(current);
    const ids = runIds.join(",");
    // One request for every run's epochs, one for the table.
    const [table, metrics] = await Promise.all([
      api(`/compare?${new URLSearchParams({ run_ids: ids, baseline: current.baseline, mode: current.mode })}`),
      api(`/metrics?run_ids=${ids}`),
    ]);
    renderTable(table.data);
    renderCharts(table.data, metrics.data);
    const missing = runIds.filter((id) => !table.data.some((row) => row.run_id === id));
    showMessage(message, missing.length ? `No run ${missing.map((id) => `#${id}`).join(", ")}.` : "", missing.length ? "error" : "info");
    return table.data.some((row) => ACTIVE.has(row.status));
  },
  { intervalMs: POLL_MS, message, failure: "Could not load the comparison" },
);

baselineSelect.addEventListener("change", refresh);
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", refresh);
