// A study: progress per status, the table with intervals, and mean ± std bands per group; polls
// until no run of it is queued or running.
import { api, detailText, el, poll, showMessage } from "./common.js";
import { drawBandCharts, drawEffects, nameDownloads, renderLegend, style } from "./charts.js";
import { duration, number } from "./format.js";

const POLL_MS = 3000;
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

const root = document.getElementById("study");
const studyId = Number(root.dataset.studyId);
const message = document.getElementById("study-message");
const cancelButton = document.getElementById("study-cancel");
const tbody = document.querySelector("#study-table tbody");
const csvLink = document.getElementById("csv-link");
const legend = document.getElementById("legend");
const hidden = new Set();

function metric() {
  return document.querySelector('input[name="metric"]:checked').value;
}

function renderStudy(study) {
  document.getElementById("study-name").textContent = study.name;
  document.title = `${study.name} · Study #${study.id} · tricklab`;
  const design = study.kind === "preset" ? `preset "${study.preset}"` : `grid over ${Object.keys(study.grid.switches).join(", ")}`;
  const overrides = Object.entries(study.overrides).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(" ");
  document.getElementById("study-design").textContent =
    `${design}; ${study.groups.length} groups × seeds ${study.seeds.join(", ")}; baseline "${study.baseline}"` +
    (overrides ? `; overrides ${overrides}` : "");
  const { progress } = study;
  const done = progress.succeeded + progress.failed + progress.cancelled;
  const bar = document.getElementById("study-progress");
  bar.max = Math.max(progress.total, 1);
  bar.value = done;
  document.getElementById("study-progress-text").textContent =
    `${done} of ${progress.total} runs finished` + (progress.reused ? ` (${progress.reused} reused from earlier runs)` : "") +
    (study.finished ? "" : "…");
  document.getElementById("study-counts").replaceChildren(
    ...STATUSES.map((status) => el("div", { dataset: { status } }, el("dt", {}, status), el("dd", {}, String(progress[status])))),
  );
  const skipped = document.getElementById("study-skipped");
  skipped.hidden = !study.skipped.length;
  skipped.textContent = study.skipped.length
    ? `${study.skipped.length} combinations skipped: ${study.skipped.map((cell) => `${JSON.stringify(cell.cell)} (${cell.reason})`).join("; ")}`
    : "";
  renderTime(study);
  cancelButton.hidden = study.finished;
  const runIds = [...new Set(study.groups.flatMap((group) => group.runs.map((run) => run.run_id)))];
  document.getElementById("study-compare").href = `/compare?runs=${runIds.join(",")}&baseline=${study.baseline_run_id ?? ""}`;
}

// The estimate made when the study was created beside the time it took: how far to trust the next one.
function renderTime(study) {
  const line = document.getElementById("study-time");
  const basis = study.estimate_basis;
  const estimated = study.estimated_seconds === null ? null : `estimated ${duration(study.estimated_seconds)}`;
  const took = study.took_seconds === null ? null : `took ${duration(study.took_seconds)}`;
  let why = basis ? ` (${basis})` : "";
  if (took && !estimated) why = basis ? ` (not estimated: ${basis})` : " (created before estimates were kept)";
  const text = [estimated, took].filter(Boolean).join(", ");
  line.textContent = text ? `${text[0].toUpperCase()}${text.slice(1)}${why}.` : "";
  line.hidden = !text;
}

// The run statuses' colours say it at a glance: green helped, red hurt, plain within noise.
const VERDICT_CLASS = { helped: "status status-succeeded", hurt: "status status-failed", "within noise": "tag" };

function deltaCell(stats) {
  const cell = el("td", { dataset: { verdict: stats.verdict } }, stats.delta_text);
  const kind = VERDICT_CLASS[stats.verdict];
  if (kind) cell.append(" ", el("span", { class: kind }, stats.verdict));
  return cell;
}

function renderTable(table, colorOf) {
  tbody.replaceChildren(
    ...table.data.map((row) => {
      // Preset titles repeat their key ("a: + cosine"); the key is shown already.
      const title = row.title.startsWith(`${row.group}: `) ? row.title.slice(row.group.length + 2) : row.title;
      return el("tr", { class: row.is_baseline ? "baseline" : null, dataset: { group: row.group, role: row.role } },
        el("th", { scope: "row" },
          el("span", { class: `swatch swatch-${colorOf.get(row.group).dash}`, style: `--swatch:${colorOf.get(row.group).color}`, "aria-hidden": "true" }),
          row.group, title !== row.group ? el("span", { class: "muted" }, ` ${title}`) : null,
          row.is_baseline ? el("span", { class: "tag" }, "baseline") : null,
          row.role === "teacher" ? el("span", { class: "tag" }, "teacher") : null),
        el("td", {}, row.tricks),
        el("td", { class: "num" }, `${row.succeeded}/${row.runs}`),
        el("td", { class: "num", title: row.top1.values.map((v) => number(v)).join(", ") }, row.top1.text),
        deltaCell(row.top1),
        el("td", { class: "num", title: row.top5.values.map((v) => number(v)).join(", ") }, row.top5.text),
        deltaCell(row.top5),
        el("td", { class: "num" }, row.report ?? "–"),
        el("td", { class: "num" }, duration(row.seconds_per_epoch)),
      );
    }),
  );
  // Only a group with an interval is a comparison; each metric is tested on its own.
  const compared = table.data.filter((row) => !row.is_baseline && row.top1.p_value !== null).length;
  const level = Math.round(table.confidence * 100);
  // Why no row has an interval, when they all share the reason (one seed each): said once, above the rows.
  const note = document.getElementById("study-table-note");
  note.hidden = !table.note;
  note.textContent = table.note ?? "";
  const chance = compared
    ? ` ${compared} group${compared === 1 ? " is" : "s are"} compared with the baseline "${table.baseline}" on top-1; ` +
      `if no trick changed anything, about ${number(compared * (1 - table.confidence), 1)} of them would still be ` +
      `marked helped or hurt at ${level} %, by chance alone (and as many on top-5).`
    : table.note ? "" : " No group has an interval yet: one needs two or more finished seeds on both sides.";
  // A preset quotes published numbers beside its rows: the report's, or the paper's (another dataset).
  document.getElementById("report-column").textContent = table.reference_column ?? "Report (top-1)";
  const reference = document.getElementById("study-reference");
  reference.hidden = !table.reference;
  reference.textContent = table.reference ?? "";
  document.getElementById("study-method").textContent =
    `${table.method}, ${level} % intervals over seeds. "within noise": the interval holds 0.${chance}`;
}

// The grid as a factorial design: a bar per effect with its interval, and the sentence the API
// writes; a design that cannot be fitted says why instead. The sentence already names what cannot be
// estimated and why: the list below it adds what it leaves out (the cells without a result, and
// what the estimates rest on), not the same reasons again.
function renderEffects(effects) {
  document.getElementById("effects-sentence").textContent = effects.sentence;
  const chart = document.getElementById("effects-chart");
  chart.hidden = !effects.data.length;
  if (effects.data.length) drawEffects("effects-chart", effects);
  else Plotly.purge(chart);
  const more = document.getElementById("effects-more");
  more.replaceChildren(
    ...effects.missing_cells.map((cell) => el("li", {}, `${cell.group ?? JSON.stringify(cell.cell)}: ${cell.reason}`)),
    ...effects.notes.map((text) => el("li", {}, text)),
  );
  more.hidden = !more.children.length;
  // The method of a fit; nothing when nothing was fitted.
  const method = document.getElementById("effects-method");
  method.hidden = !effects.model;
  method.textContent = effects.model
    ? `${effects.model}: ${effects.method}; ${effects.observations} runs, ${effects.residual_df} residual degrees of freedom.`
    : "";
}

function renderCharts(curves, colorOf) {
  const series = curves.data.map((curve) => ({ name: curve.group, group: curve.group, ...colorOf.get(curve.group), bands: curve }));
  drawBandCharts(series, { epochs: curves.epochs, lrTitle: "Learning rate of each run's fastest layer group" });
  renderLegend(legend, curves.data.map((curve) => ({ group: curve.group, label: curve.group, ...colorOf.get(curve.group) })), hidden);
}

const refresh = poll(
  async () => {
    const chosen = metric();
    csvLink.href = `/api/v1/studies/${studyId}/table.csv?metric=${chosen}`;
    for (const kind of ["html", "md", "tex"]) {
      document.getElementById(kind === "html" ? "report-link" : `report-${kind}`).href =
        `/api/v1/studies/${studyId}/report.${kind}?metric=${chosen}`;
    }
    const [study, table, curves, effects] = await Promise.all([
      api(`/studies/${studyId}`),
      api(`/studies/${studyId}/table?metric=${chosen}`),
      api(`/studies/${studyId}/curves`),
      api(`/studies/${studyId}/effects?metric=${chosen}`),
    ]);
    // A group keeps its colour across polls and metric changes: fixed by its place in the study.
    const colorOf = new Map(study.groups.map((group, index) => [group.key, style(index)]));
    nameDownloads("study", studyId, study.name);
    document.getElementById("study-notes").textContent = study.notes.join(" ");
    renderStudy(study);
    renderTable(table, colorOf);
    renderCharts(curves, colorOf);
    renderEffects(effects);
    showMessage(message, "");
    return !study.finished;
  },
  // A page may watch a study train for hours: a failed load is tried again, unless the study is gone.
  { intervalMs: POLL_MS, message, failure: `Could not load study #${studyId}`, retry: (error) => error.status !== 404 },
);

cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    await api(`/studies/${studyId}/cancel`, { method: "POST" });
    showMessage(message, "Queued runs cancelled; running ones stop at their next check.");
  } catch (error) {
    showMessage(message, `Could not cancel: ${detailText(error)}`, "error");
  } finally {
    cancelButton.disabled = false;
  }
  refresh();
});
const renameForm = document.getElementById("study-rename");
document.getElementById("study-rename-open").addEventListener("click", () => {
  document.getElementById("study-rename-name").value = document.getElementById("study-name").textContent;
  renameForm.hidden = false;
  document.getElementById("study-rename-name").focus();
});
renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const study = await api(`/studies/${studyId}`, { method: "PATCH", body: { name: document.getElementById("study-rename-name").value } });
    document.getElementById("study-name").textContent = study.name;
    renameForm.hidden = true;
    showMessage(message, "Renamed.");
  } catch (error) {
    showMessage(message, `Could not rename: ${detailText(error, { skip: 1 })}`, "error");
  }
});
// Its own runs go with it (the API's default); runs it reused from other studies stay.
document.getElementById("study-delete").addEventListener("click", async () => {
  const name = document.getElementById("study-name").textContent;
  if (!confirm(`Delete study #${studyId} "${name}" with the runs it created, their metrics and files?`)) return;
  try {
    await api(`/studies/${studyId}`, { method: "DELETE" });
    location.assign("/studies");
  } catch (error) {
    showMessage(message, `Could not delete: ${detailText(error)}`, "error");
  }
});
for (const radio of document.querySelectorAll('input[name="metric"]')) radio.addEventListener("change", refresh);
