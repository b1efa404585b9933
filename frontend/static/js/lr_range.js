// An LR range test's page: its curve while it sweeps, then the minimum, the suggestion and "Use this rate".
import { ACTIVE, api, detailText, poll, showMessage, statusBadge } from "./common.js";
import { drawRangeTest, nameDownloads } from "./charts.js";
import { NONE } from "./format.js";

const runId = document.getElementById("lr-range").dataset.runId;
nameDownloads("lr-range-test", runId);
const message = document.getElementById("test-message");
const useRate = document.getElementById("use-rate");
const cancelButton = document.getElementById("test-cancel");
const retryButton = document.getElementById("test-retry");

function rate(value) {
  return value === null || value === undefined ? NONE : value.toExponential(2);
}

function draw(test) {
  document.getElementById("test-status").replaceChildren(statusBadge(test));
  const stopped = test.stopped ? `, stopped at step ${test.stopped.step}` : "";
  document.getElementById("test-steps").textContent = `${test.curve.length} of ${test.sweep.steps}${stopped}`;
  document.getElementById("test-suggestion").textContent =
    test.suggestion !== null ? rate(test.suggestion) : test.status === "succeeded" ? "none: the loss never fell" : "once it has finished";
  document.getElementById("test-minimum").textContent = test.minimum
    ? `${rate(test.minimum.lr)} (${rate(test.minimum_tenth)}), smoothed loss ${test.minimum.smoothed.toFixed(4)}`
    : NONE;
  const sweep = test.sweep;
  document.getElementById("test-sweep").textContent =
    `${rate(sweep.start_lr)} to ${rate(sweep.end_lr)} over ${sweep.steps} steps, ${sweep.mode}; ` +
    `smoothed at ${sweep.smoothing}, stop past ${sweep.stop_factor}× the lowest`;
  document.getElementById("test-findings").replaceChildren(
    ...test.findings.map((text) => Object.assign(document.createElement("li"), { textContent: text })),
  );
  document.getElementById("test-error-box").hidden = !test.error || test.status === "succeeded";
  document.getElementById("test-error").textContent = test.error ?? "";
  document.getElementById("test-config").textContent = JSON.stringify(test.config, null, 2);
  useRate.hidden = test.suggestion === null;
  if (test.suggestion !== null) {
    useRate.href = `/runs/new?${new URLSearchParams({ clone: runId, lr: String(test.suggestion) })}`;
  }
  cancelButton.hidden = !ACTIVE.has(test.status) || test.cancel_requested;
  retryButton.hidden = !["failed", "cancelled"].includes(test.status);
  drawRangeTest("lr-range-chart", test);
}

async function load() {
  const test = await api(`/lr-range-tests/${runId}`);
  draw(test);
  return ACTIVE.has(test.status);
}

const refresh = poll(load, { intervalMs: 2000, message, failure: "Could not load the range test" });

async function act(action) {
  try {
    await api(`/runs/${runId}/${action}`, { method: "POST" });
    showMessage(message, action === "cancel" ? "Cancelling…" : "Queued again: the sweep starts over.");
  } catch (error) {
    showMessage(message, `Could not ${action}: ${detailText(error)}`, "error");
  }
  refresh();
}

cancelButton.addEventListener("click", () => act("cancel"));
retryButton.addEventListener("click", () => act("retry"));
