// A sweep: its trials (pruned ones marked, with where and against what), the verdict and confirmation
// table, and Optuna's figures as the server sends them (Plotly JSON); polls until the sweep has ended.
import { api, detailText, el, poll, showMessage } from "./common.js";
import { drawFigure, nameDownloads } from "./charts.js";
import { number } from "./format.js";

const root = document.getElementById("sweep");
const sweepId = Number(root.dataset.sweepId);
const message = document.getElementById("sweep-message");
const ENDED = new Set(["finished", "cancelled"]);
const params = (values) => Object.entries(values).map(([key, value]) => `${key}=${typeof value === "number" ? Number(value.toPrecision(4)) : value}`).join(", ");
const points = (value) => (value === null || value === undefined ? "–" : `${value >= 0 ? "+" : ""}${value.toFixed(1)}`);

function renderSweep(sweep) {
  nameDownloads("sweep", sweep.id, sweep.name);
  document.getElementById("sweep-name").textContent = sweep.name;
  document.getElementById("sweep-status").textContent = sweep.status;
  document.getElementById("sweep-design").textContent =
    `· ${sweep.trials.length} of ${sweep.budget} trials, ${sweep.spec.sampler.name} sampler, ` +
    `${sweep.spec.pruner.name} pruner, ${sweep.spec.seeds} seed(s) each; objective ${sweep.spec.objective}`;
  document.getElementById("sweep-pause").hidden = sweep.status !== "running" && sweep.status !== "confirming";
  document.getElementById("sweep-resume").hidden = sweep.status !== "paused";
  document.getElementById("sweep-cancel").hidden = ENDED.has(sweep.status);
  const verdict = document.getElementById("sweep-verdict");
  verdict.hidden = !sweep.conclusion;
  if (sweep.conclusion) {
    verdict.textContent = sweep.conclusion.text;
    verdict.dataset.kind = sweep.conclusion.winner === null ? "warning" : "info";
    document.getElementById("confirm-section").hidden = false;
    // The report of a comparison is the one a study's or a comparison's download gives: same HTML, LaTeX, figures.
    const verdictTrials = new Set(sweep.conclusion.rows.map((row) => row.number));
    const ids = sweep.trials.filter((trial) => verdictTrials.has(trial.number)).flatMap((trial) => trial.runs.map((run) => run.run_id));
    document.getElementById("confirm-compare").href = `/compare?runs=${ids.join(",")}`;
    for (const kind of ["html", "tex", "md"]) {
      document.getElementById(`confirm-report-${kind}`).href = `/api/v1/compare/report.${kind}?run_ids=${ids.join(",")}`;
    }
    document.querySelector("#confirm-table tbody").replaceChildren(
      ...sweep.conclusion.rows.map((row) =>
        el(
          "tr",
          { dataset: { trial: row.number } },
          el("td", {}, `#${row.number}` + (row.number === sweep.conclusion.winner ? " (winner)" : "")),
          el("td", {}, params(row.params)),
          el("td", { class: "num" }, String(row.n)),
          el("td", { class: "num" }, `${number(row.mean)} ± ${row.std === null ? "–" : number(row.std)}`),
          el("td", {}, row.delta === null ? "–" : `${points(row.delta)}p [${points(row.low)}, ${points(row.high)}] vs #${row.against}`),
          el("td", { class: "num" }, row.p_value === null ? "–" : row.p_value.toPrecision(2)),
        ),
      ),
    );
  }
  document.querySelector("#trial-table tbody").replaceChildren(
    ...sweep.trials.map((trial) =>
      el(
        "tr",
        { dataset: { state: trial.state, trial: trial.number } },
        el("td", {}, `#${trial.number}` + (trial.number === sweep.best ? " (best)" : "") + (trial.warm ? " (warm start)" : "")),
        el("td", {}, el("span", { class: `badge status-${trial.state === "pruned" ? "cancelled" : trial.state}` }, trial.state)),
        el("td", { class: "num" }, trial.value === null ? "–" : number(trial.value)),
        el("td", {}, params(trial.params)),
        el("td", {}, ...trial.runs.flatMap((run) => [el("a", { href: `/runs/${run.run_id}` }, `#${run.run_id}${run.confirm ? " (confirm)" : ""}`), " "])),
        el("td", {}, trial.pruned ?? (trial.retry_of !== null ? `runs #${trial.retry_of} again` : "")),
      ),
    ),
  );
}

async function drawFigures() {
  const figures = await api(`/sweeps/${sweepId}/figures`);
  for (const name of ["history", "parallel", "slice", "importance"]) {
    const node = document.getElementById(`figure-${name}`);
    const figure = figures[name];
    node.hidden = !figure;
    if (figure) drawFigure(node, figure, name);
  }
  document.getElementById("figure-notes").replaceChildren(
    ...Object.entries(figures.notes).map(([name, note]) => el("li", {}, `${name}: ${note}`)),
  );
}

const refresh = poll(
  async () => {
    const sweep = await api(`/sweeps/${sweepId}`);
    renderSweep(sweep);
    await drawFigures();
    root.dataset.loaded = sweep.status;
    return !ENDED.has(sweep.status);
  },
  { intervalMs: 3000, message, failure: "Could not load the sweep" },
);

for (const button of root.querySelectorAll("[data-action]")) {
  button.addEventListener("click", async () => {
    try {
      await api(`/sweeps/${sweepId}/${button.dataset.action}`, { method: "POST" });
      refresh();
    } catch (error) {
      showMessage(message, detailText(error), "error");
    }
  });
}
