// One run: its facts, and four charts that grow as the SSE stream delivers epochs; when it ends, what
// happened to it.
import { ACTIVE, api, detailText, el, progress, showMessage, statusBadge, when } from "./common.js";
import { drawEpochCharts, drawLr, nameDownloads, style, toColumns } from "./charts.js";
import { NONE, atEpoch, duration, fileSize, gibibytes, imagesPerSecond, number, pair, share } from "./format.js";

const root = document.getElementById("run");
const runId = Number(root.dataset.runId);
const lrTitle = `Learning rate of ${root.dataset.lrGroups}`;
// The worker's error is the trainer's message, then this line, then the last lines the trainer printed.
const OUTPUT_MARKER = "\n--- last lines of stderr ---\n";
const message = document.getElementById("run-message");
const liveState = document.getElementById("live-state");
const $ = (id) => document.getElementById(id);

// Keyed by epoch: a replayed or resumed epoch replaces its point instead of adding one.
const metrics = new Map();
let steps = [];
let run = null;
let source = null;
let retryMs = 1000;

function renderRun(next) {
  run = next;
  $("run-name").textContent = run.name;
  document.title = `${run.name} · tricklab`;
  $("run-status").replaceChildren(statusBadge(run));
  $("run-progress").replaceChildren(progress(run));
  $("run-peak").textContent = atEpoch(pair(run.peak_valid_top1, run.peak_valid_top5), run.peak_epoch);
  $("run-test").textContent = atEpoch(pair(run.test_top1, run.test_top5), run.test_top1 === null ? null : run.checkpoint_epoch);
  // The world size and devices of the latest attempt, e.g. "4 × H200": what the time per epoch was measured on.
  $("run-speed").textContent = duration(run.seconds_per_epoch) + (run.devices ? ` on ${run.devices}` : "");
  // A run left to choose its device (runtime.device auto) that got the CPU says why: a GPU machine
  // whose driver PyTorch cannot use would otherwise train there unseen.
  $("run-fallback").textContent = run.device_fallback ? `Training on the CPU: ${run.device_fallback}` : "";
  $("run-fallback").hidden = !run.device_fallback;
  // Who queued it: the name of their token, or nobody on a server that needs none.
  $("run-creator").textContent = `${when(run.created_at)}${run.created_by ? ` by ${run.created_by}` : ""}`;
  // Attempts count claims: a worker that stops hands its run on, and the next one resumes it.
  const resumed = run.start_step
    ? ` (resumed in epoch ${run.start_epoch + 1} at step ${run.start_step}, after the warning signal)`
    : run.start_epoch ? ` (resumed after epoch ${run.start_epoch})` : "";
  $("run-attempt").textContent = `${run.attempt}${resumed}${run.worker ? ` on ${run.worker}` : ""}`;
  $("run-changed").textContent = run.updated_at ? `${when(run.updated_at)}${run.updated_by ? ` by ${run.updated_by}` : ""}` : "–";
  renderOrganised(run);
  renderError(run);
  renderOutcome(run);
  $("run-config").textContent = JSON.stringify(run.config, null, 2);
  $("tb-command").textContent = `tensorboard --logdir ${run.run_dir}/tb`;
  const actions = $("run-actions");
  actions.querySelector('[data-action="cancel"]').hidden = !ACTIVE.has(run.status) || run.cancel_requested;
  actions.querySelector('[data-action="retry"]').hidden = !["failed", "cancelled"].includes(run.status);
}

// Tags, notes and the archive. The notes come rendered by the server (markdown-it with raw HTML off,
// links to http(s) only), so their HTML holds only the tags Markdown makes; the CSP forbids inline scripts too.
function renderOrganised(current) {
  $("run-tags").replaceChildren(...current.tags.map((tag) => el("li", { class: "tag" }, tag,
    el("button", { type: "button", "aria-label": `Remove the tag ${tag}`, onclick: () => change({ remove_tags: [tag] }, `Removed the tag ${tag}.`) }, "×"))));
  const notes = document.createElement("template");
  notes.innerHTML = current.notes_html;
  $("run-notes").replaceChildren(current.notes ? notes.content : el("p", { class: "muted" }, "No notes yet."));
  const finished = !ACTIVE.has(current.status);
  $("archive-toggle").hidden = !finished && !current.archived_at;
  $("archive-toggle").textContent = current.archived_at ? "Restore" : "Archive";
  $("run-archived").hidden = !current.archived_at;
  $("run-archived").textContent = current.archived_at ? `Archived ${when(current.archived_at)}: hidden from the runs list until restored.` : "";
}

async function change(body, done) {
  try {
    renderRun(await api(`/runs/${runId}`, { method: "PATCH", body }));
    showMessage(message, done);
    return true;
  } catch (error) {
    showMessage(message, `Could not change the run: ${detailText(error, { skip: 1 })}`, "error");
    return false;
  }
}

// The error of an earlier attempt is kept after a later one succeeds: then it is history, not an alarm.
// The trainer's message is shown once: its echo in the output below it is left out.
function renderError(current) {
  const [reason, output = ""] = (current.error ?? "").split(OUTPUT_MARKER);
  const echo = new Set([reason.trim(), `error: ${reason.trim()}`]);
  const lines = output.split("\n").filter((text) => text.trim() && !echo.has(text.trim()));
  $("run-error").textContent = reason;
  $("run-output-text").textContent = lines.join("\n");
  $("run-output").hidden = lines.length === 0;
  $("run-error-box").hidden = !current.error;
  $("run-error-box").classList.toggle("past", current.status !== "failed");
  $("run-error-title").textContent = current.status === "failed" ? "Error" : "An earlier attempt failed";
}

// How a run that stopped ended, in one sentence beside the charts.
function outcome(current) {
  const done = current.epoch;
  const after = done ? `after epoch ${done} of ${current.epochs}` : "before its first epoch";
  if (current.status === "cancelled" && current.pruned) return { text: `Pruned by its sweep ${after}: ${current.pruned}.`, kind: "info" };
  if (current.status === "cancelled") return { text: `Cancelled ${after}.`, kind: "info" };
  if (current.status === "failed") return { text: `Failed ${after}: the error is above.`, kind: "error" };
  if (current.status === "succeeded") return { text: `Finished all ${current.epochs} epochs.`, kind: "ok" };
  return null;
}

function renderOutcome(current) {
  const box = $("run-outcome");
  const said = outcome(current);
  box.hidden = !said;
  if (said) showMessage(box, said.text, said.kind);
}

function emptyNote() {
  if (!run || run.status === "running") return "waiting for the first epoch…";
  if (run.status === "queued") return "queued: waiting for a worker…";
  return { cancelled: "cancelled before its first epoch", failed: "failed before its first epoch" }[run.status] ?? "no epoch";
}

// The run's means come from the server; memory and GPU utilization, measured on CUDA only, from the rows.
function renderTiming() {
  const rows = [...metrics.values()];
  const memory = rows.map((row) => row.peak_memory_bytes).filter((value) => value !== null && value !== undefined);
  const gpu = rows.map((row) => row.gpu_utilization).filter((value) => value !== null && value !== undefined);
  $("timing-rate").textContent = imagesPerSecond(run?.images_per_s);
  $("timing-wait").textContent = share(run?.data_wait_share);
  $("timing-memory").textContent = memory.length ? gibibytes(Math.max(...memory)) : NONE;
  $("timing-gpu").textContent = gpu.length ? `${number(gpu.reduce((a, b) => a + b, 0) / gpu.length, 0)} %` : NONE;
  $("timing-hint").textContent = run?.data_wait_hint ?? "";
  $("timing-hint").hidden = !run?.data_wait_hint;
}

function draw() {
  renderTiming();
  const rows = [...metrics.values()].sort((a, b) => a.epoch - b.epoch);
  const series = [{ name: run?.name ?? `#${runId}`, group: "run", ...style(0), columns: toColumns(rows), steps }];
  const note = emptyNote();
  nameDownloads("run", runId, run?.name);
  drawEpochCharts(series, { epochs: run?.epochs, emptyNote: note });
  // Per step only when the steps say more than the epochs (a short run may have logged one step).
  drawLr("chart-lr", series, { perStep: steps.length > metrics.size, epochs: run?.epochs, title: lrTitle, emptyNote: note });
}

// The folder as it is now: each file a download link, and their total the run's size on disk.
async function loadFiles() {
  const files = await api(`/runs/${runId}/files`);
  const link = (path) => `/api/v1/runs/${runId}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
  const rows = files.data.map((file) => el("tr", { dataset: { path: file.path } },
    el("td", {}, el("a", { href: link(file.path), download: file.path.split("/").pop() }, file.path)),
    el("td", {}, file.kind),
    el("td", { class: "num" }, fileSize(file.size))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "empty" }, "No files yet: the worker writes them once it starts the run.")));
  $("files-table").tBodies[0].replaceChildren(...rows);
  $("run-disk").textContent = files.count ? fileSize(files.total_bytes) : NONE;
}

async function loadSteps() {
  steps = (await api(`/runs/${runId}/steps`)).data;
}

// A new attempt resumes after its checkpoint and the server drops the rows past it; a stream resumed
// after a lost connection may have missed that. Either way the page reloads the whole history once.
async function resync() {
  const [history] = await Promise.all([api(`/runs/${runId}/metrics`), loadSteps()]);
  metrics.clear();
  for (const row of history.data) metrics.set(row.epoch, row);
  draw();
}

function onStatus(event) {
  const next = JSON.parse(event.data);
  const restarted = run && (next.attempt !== run.attempt || next.start_epoch !== run.start_epoch || next.start_step !== run.start_step);
  renderRun(next);
  if (restarted) resync().catch(() => {});
}

async function onEpoch(event) {
  const row = JSON.parse(event.data);
  metrics.set(row.epoch, row);
  draw();
  // Progress, time per epoch and the per-step LR move with each epoch; a status event only comes on a
  // status change. A failed refresh leaves the epoch point drawn, and the next epoch tries again.
  try {
    const [next] = await Promise.all([api(`/runs/${runId}`), loadSteps(), loadFiles()]);
    renderRun(next);
    draw();
  } catch {}
}

// EventSource resumes by itself (with Last-Event-ID) after a dropped connection; when the server
// answers with an error instead, for example while it restarts, it gives up and we open a new one.
function connect({ lost = false } = {}) {
  source = new EventSource(`/api/v1/runs/${runId}/events`);
  source.addEventListener("open", () => {
    retryMs = 1000;
    liveState.textContent = "Live: new epochs appear as they finish.";
    if (lost) resync().catch(() => {});
    lost = false;
  });
  source.addEventListener("epoch", onEpoch);
  source.addEventListener("status", onStatus);
  source.addEventListener("end", async () => {
    source.close();
    liveState.textContent = "";
    renderRun(await api(`/runs/${runId}`));
    await Promise.all([loadSteps(), loadFiles()]).catch(() => {});
    draw();
  });
  source.addEventListener("error", () => {
    lost = true;
    if (source.readyState !== EventSource.CLOSED) {
      liveState.textContent = "Connection lost; reconnecting…";
      return;
    }
    liveState.textContent = `Connection lost; retrying in ${Math.round(retryMs / 1000)} s…`;
    setTimeout(() => connect({ lost: true }), retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  });
}

async function act(action) {
  try {
    renderRun(await api(`/runs/${runId}/${action}`, { method: "POST" }));
    showMessage(message, action === "cancel" ? "Cancel requested." : "Queued again.");
    if (action === "retry" && (!source || source.readyState === EventSource.CLOSED)) connect();
  } catch (error) {
    showMessage(message, `Could not ${action}: ${detailText(error)}`, "error");
  }
}

async function start() {
  try {
    const [first] = await Promise.all([api(`/runs/${runId}`), resync(), loadFiles()]);
    renderRun(first);
    draw();
    if (ACTIVE.has(first.status)) connect();
  } catch (error) {
    showMessage(message, error.status === 404 ? `There is no run #${runId}.` : `Could not load the run: ${detailText(error)}`, "error");
  }
}

$("rename-open").addEventListener("click", () => {
  $("rename-name").value = run?.name ?? "";
  $("rename-form").hidden = false;
  $("rename-name").focus();
});
$("rename-cancel").addEventListener("click", () => { $("rename-form").hidden = true; });
$("rename-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (await change({ name: $("rename-name").value }, "Renamed.")) $("rename-form").hidden = true;
});
$("archive-toggle").addEventListener("click", () => {
  const archived = !run.archived_at;
  change({ archived }, archived ? "Archived: the runs list shows it under archived runs." : "Restored to the runs list.");
});
$("tag-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const tag = $("tag-name").value.trim();
  if (await change({ add_tags: [tag] }, `Tagged ${tag}.`)) $("tag-name").value = "";
});
$("notes-edit").addEventListener("click", () => {
  $("notes-text").value = run?.notes ?? "";
  $("notes-form").hidden = false;
  $("notes-edit").hidden = true;
  $("notes-text").focus();
});
function closeNotes() {
  $("notes-form").hidden = true;
  $("notes-edit").hidden = false;
}
$("notes-cancel").addEventListener("click", closeNotes);
$("notes-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (await change({ notes: $("notes-text").value }, "Notes saved.")) closeNotes();
});

for (const button of document.querySelectorAll("#run-actions [data-action]")) {
  button.addEventListener("click", () => act(button.dataset.action));
}
start();
