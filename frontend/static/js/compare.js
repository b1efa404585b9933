// The report's figures and summary table for the runs in the URL; polls while any of them is active.
// Runs whose configs differ in the seed alone are seeds of one configuration: one colour, one legend entry, each
// seed a thin line under their mean. A configuration's colour follows from the set of runs (ordered
// by their ids), never from the order of the ids in the URL.
import { ACTIVE, api, el, poll, showMessage } from "./common.js";
import { CHARTED_FIELDS, drawEpochCharts, drawLr, nameDownloads, renderLegend, style } from "./charts.js";
import { KEPT_CHECKPOINT, PEAK_EPOCH, atEpoch, duration, imagesPerSecond, pair, share, withDelta } from "./format.js";

const POLL_MS = 5000;

const root = document.getElementById("compare");
const runIds = root.dataset.runIds.split(",").map(Number);
const baselineSelect = document.getElementById("baseline");
const tbody = document.querySelector("#compare-table tbody");
const message = document.getElementById("compare-message");
const csvLink = document.getElementById("csv-link");
const epochsCsvLink = document.getElementById("epochs-csv-link");
const legend = document.getElementById("legend");
const hints = document.getElementById("compare-hints");
const hidden = new Set();
// The baseline the URL or the person chose; without one the server picks the run with the fewest tricks.
let chosenBaseline = root.dataset.baseline ? Number(root.dataset.baseline) : null;
// A saved chart names the runs it compares (a count past a few: a file name has its limits).
nameDownloads("compare", runIds.length <= 6 ? runIds.join("-") : `${runIds.length}-runs`);

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function query(idsParam) {
  const params = new URLSearchParams({ [idsParam]: runIds.join(","), mode: mode() });
  if (chosenBaseline !== null) params.set("baseline", chosenBaseline);
  return params;
}

// The URL carries the selection, so a comparison can be shared as it is on screen.
function syncUrl() {
  history.replaceState(null, "", `/compare?${query("runs")}`);
  csvLink.href = `/api/v1/compare.csv?${query("run_ids")}`;
  for (const kind of ["html", "md", "tex"]) {
    document.getElementById(kind === "html" ? "report-link" : `report-${kind}`).href = `/api/v1/compare/report.${kind}?${query("run_ids")}`;
  }
  epochsCsvLink.href = `/api/v1/compare/epochs.csv?run_ids=${runIds.join(",")}`;
}

// The model every run shares ("ResNet18 from scratch" in a CPU-sized study): said once, above the
// table and the legend, instead of in every row and entry. Nothing when no run adds a trick to it.
function sharedWords(rows) {
  const split = rows.map((row) => row.tricks.split(" "));
  const shared = [];
  for (const [index, word] of (split[0] ?? []).entries()) {
    if (/^[+-]/.test(word) || !split.every((words) => words[index] === word)) break;
    shared.push(word);
  }
  return split.some((words) => words.length > shared.length) ? shared.join(" ") : "";
}

function ownTricks(tricks, shared) {
  if (!shared) return tricks;
  return tricks === shared ? "base" : tricks.slice(shared.length + 1);
}

// How many seeds a configuration's runs are. Runs that repeat a seed are repeats, not more seeds: the
// same seed makes the same random draws (trainer/seeds.py), so they differ only by the hardware's
// nondeterminism and are no independent replicates.
function seedsText(members) {
  const seeds = [...new Set(members.map((row) => row.seed))];
  const repeats = members.length - seeds.length;
  if (members.length === 1) return `seed ${seeds[0]}`;
  if (!repeats) return `${seeds.length} seeds`;
  if (seeds.length === 1) return `${members.length} runs of seed ${seeds[0]} (repeats)`;
  return `${members.length} runs: ${seeds.length} seeds and ${repeats === 1 ? "a repeat" : `${repeats} repeats`}`;
}

// Configurations in the order of their oldest run; each its colour and dash by that place.
function configurations(rows, shared) {
  const byHash = new Map();
  for (const row of [...rows].sort((a, b) => a.run_id - b.run_id)) {
    if (!byHash.has(row.configuration)) byHash.set(row.configuration, []);
    byHash.get(row.configuration).push(row);
  }
  const tricksCount = new Map();
  for (const [{ tricks }] of byHash.values()) tricksCount.set(tricks, (tricksCount.get(tricks) ?? 0) + 1);
  return [...byHash.entries()].map(([hash, members], index) => {
    // Two configurations with the same tricks differ elsewhere (a rate, a size): their runs' name tells
    // them apart, as a study names its runs ("study · group · seed N").
    const own = ownTricks(members[0].tricks, shared);
    const name = tricksCount.get(members[0].tricks) > 1 ? members[0].name.replace(/ · seed \d+$/, "") : own;
    return {
      group: hash, members, ...style(index),
      label: `${name} · ${seedsText(members)}`,
      detail: members.map((row) => `#${row.run_id}`).join(" "),
    };
  });
}

function renderTable(rows, groupOf, shared) {
  for (const row of rows) {
    const option = baselineSelect.querySelector(`option[value="${row.run_id}"]`);
    if (option) option.textContent = `#${row.run_id} ${row.name}`;
  }
  tbody.replaceChildren(
    ...rows.map((row) => {
      const group = groupOf.get(row.configuration);
      return el("tr", { class: row.is_baseline ? "baseline" : null, dataset: { runId: row.run_id, group: row.configuration } },
        el("th", { scope: "row" },
          el("span", { class: `swatch swatch-${group.dash}`, style: `--swatch:${group.color}`, "aria-hidden": "true" }),
          el("a", { href: `/runs/${row.run_id}` }, row.name), " ", el("span", { class: "muted" }, `#${row.run_id}`),
          row.is_baseline ? el("span", { class: "tag" }, "baseline") : null,
          row.status !== "succeeded" ? el("span", { class: `status status-${row.status}` }, row.status) : null),
        el("td", {}, ownTricks(row.tricks, shared)),
        el("td", { class: "num" }, String(row.seed)),
        el("td", { class: "num" }, row.epoch ?? "–"),
        el("td", { class: "num" }, withDelta(row.top1, row.top1_delta)),
        el("td", { class: "num" }, withDelta(row.top5, row.top5_delta)),
        el("td", { class: "num", title: KEPT_CHECKPOINT }, atEpoch(pair(row.test_top1, row.test_top5), row.checkpoint_epoch)),
        el("td", { class: "num" }, duration(row.seconds_per_epoch)),
        el("td", { class: "num" }, imagesPerSecond(row.images_per_s)),
        el("td", { class: row.data_wait_hint ? "num warn" : "num", title: row.data_wait_hint ?? "" }, share(row.data_wait_share)),
      );
    }),
  );
  // Runs held back by their input pipeline, each with the cause its config points to.
  const waiting = rows.filter((row) => row.data_wait_hint);
  hints.hidden = waiting.length === 0;
  hints.replaceChildren(...waiting.map((row) => el("li", {}, el("a", { href: `/runs/${row.run_id}` }, `#${row.run_id} ${row.name}`), `: ${row.data_wait_hint}`)));
}

// The mean over a configuration's runs of each metric, at the epochs every run has reached so far; its
// name says what it is the mean of (seeds, or repeats of one seed).
function meanSeries(members, byRun) {
  const runs = members.map((row) => byRun.get(row.run_id));
  const epochs = Math.min(...runs.map((columns) => columns.epoch.length));
  const mean = (field, index) => {
    const values = runs.map((columns) => columns[field][index]).filter((value) => value !== null);
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  const indices = Array.from({ length: epochs }, (_, index) => index);
  return {
    epoch: indices.map((index) => runs[0].epoch[index]),
    ...Object.fromEntries(CHARTED_FIELDS.map((field) => [field, indices.map((index) => mean(field, index))])),
  };
}

// columns: /metrics/columns' runs, each {run_id, epoch: [...], train_loss: [...], ...} sorted by epoch.
function renderCharts(rows, groups, columns) {
  const noEpochs = Object.fromEntries(["epoch", ...CHARTED_FIELDS].map((field) => [field, []]));
  const byRun = new Map(rows.map((row) => [row.run_id, noEpochs]));
  for (const run of columns) if (byRun.has(run.run_id)) byRun.set(run.run_id, run);
  const series = groups.flatMap((group) => {
    const common = { group: group.group, color: group.color, dash: group.dash };
    const seeds = group.members.map((row) => ({
      ...common, name: `#${row.run_id} ${row.name} (seed ${row.seed})`, thin: group.members.length > 1, columns: byRun.get(row.run_id),
    }));
    if (group.members.length === 1) return seeds;
    return [...seeds, { ...common, name: `${group.label}: mean`, columns: meanSeries(group.members, byRun) }];
  });
  const epochs = rows.length ? Math.max(...rows.map((row) => row.epochs)) : null;
  const lrGroups = new Set(rows.map((row) => row.lr_groups));
  const lrTitle = lrGroups.size === 1 ? `Learning rate of ${[...lrGroups][0]}` : "Learning rate of each run's fastest layer group";
  const emptyNote = rows.some((row) => ACTIVE.has(row.status)) ? "waiting for the first epoch…" : "no run has a finished epoch";
  drawEpochCharts(series, { epochs, emptyNote });
  drawLr("chart-lr", series, { epochs, title: lrTitle, emptyNote });
}

// A value as the config holds it; lists and objects as JSON.
function configValue(value) {
  if (value === null) return "null";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function renderConfigDiff(diff) {
  const table = document.getElementById("config-diff");
  const note = document.getElementById("config-diff-note");
  const many = diff.columns.length > 1;
  note.textContent = many
    ? (diff.rows.length ? "" : "The configurations differ in no key but the name.")
    : "One configuration: its runs differ in the seed alone (or the name).";
  table.hidden = !many || !diff.rows.length;
  table.tHead.replaceChildren(el("tr", {}, el("th", { scope: "col" }, "Key"),
    ...diff.columns.map((column) => el("th", { scope: "col" }, column.name, " ",
      el("span", { class: "muted" }, column.run_ids.map((id) => `#${id}`).join(" "))))));
  table.tBodies[0].replaceChildren(...diff.rows.map((row) => el("tr", { dataset: { key: row.key } },
    el("th", { scope: "row" }, el("code", {}, row.key)),
    ...row.values.map((value) => el("td", {}, el("code", {}, configValue(value)))))));
}

const refresh = poll(
  async () => {
    syncUrl();
    // Both at once: the columns answer for the runs that exist, as the table does. The browser
    // revalidates the columns of finished runs with their ETag and gets a 304 without a body.
    const [table, columns] = await Promise.all([
      api(`/compare?${query("run_ids")}`),
      api(`/metrics/columns?run_ids=${runIds.join(",")}&fields=${CHARTED_FIELDS.join(",")}`),
    ]);
    baselineSelect.value = String(table.baseline);
    const shared = sharedWords(table.data);
    for (const node of document.querySelectorAll(".shared-tricks")) {
      node.textContent = shared ? `Every run: ${shared}; the tricks below are what each adds.` : "";
    }
    const groups = configurations(table.data, shared);
    renderTable(table.data, new Map(groups.map((group) => [group.group, group])), shared);
    renderCharts(table.data, groups, columns.data);
    renderLegend(legend, groups, hidden);
    renderConfigDiff(table.config_diff);
    const gone = table.missing.map((id) => `#${id}`).join(", ");
    showMessage(message, gone ? `No run ${gone} any more: the comparison shows the others.` : "", gone ? "error" : "info");
    document.getElementById("compare-caption").title = `Peak epoch: ${PEAK_EPOCH}. Test: ${KEPT_CHECKPOINT}.`;
    return table.data.some((row) => ACTIVE.has(row.status));
  },
  { intervalMs: POLL_MS, message, failure: "Could not load the comparison" },
);

baselineSelect.addEventListener("change", () => {
  chosenBaseline = Number(baselineSelect.value);
  refresh();
});
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", refresh);
