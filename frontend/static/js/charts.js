// Plotly drawing for the run, compare and study pages: the report's three epoch curves plus the LR,
// one line per run (thin, when it is one seed of a group drawn with its mean), or a mean line in a
// ± std band per study group. The charts draw no legends of their own: one legend outside them, in
// HTML, names every group once and shows or hides it in all four charts at once.

// Plotly's 24-colour qualitative palette (Dark24), handed over by the page. Past its end the colours
// come round again with another dash, so 72 groups still look apart.
const PALETTE = JSON.parse(document.getElementById("palette-data").textContent);
const DASHES = ["solid", "dash", "dot"];

export function style(index) {
  return { color: PALETTE[index % PALETTE.length], dash: DASHES[Math.floor(index / PALETTE.length) % DASHES.length] };
}

export const CHART_IDS = ["chart-train_loss", "chart-valid_top1", "chart-valid_top5", "chart-lr"];

const EPOCH_CHARTS = [
  { field: "train_loss", title: "Train loss" },
  { field: "valid_top1", title: "Valid top-1 (%)" },
  { field: "valid_top5", title: "Valid top-5 (%)" },
];

// What a chart's camera button saves: a PNG named for the page's context ("run-12-tiny-base", set by
// the page) and the figure ("valid_top1"), so saved charts tell themselves apart.
let downloadContext = "tricklab";

function fileName(parts) {
  const joined = parts.filter((part) => part !== null && part !== undefined && part !== "").join("-");
  return joined.replace(/[^\p{L}\p{N}._-]+/gu, "-").replace(/-{2,}/g, "-").replace(/^-|-$/g, "");
}

// ``parts``: what the page shows, e.g. ("run", 12, "tiny base"); called again when the name is known.
export function nameDownloads(...parts) {
  downloadContext = fileName(parts).slice(0, 80) || "tricklab";
}

// Nothing leaves the machine: Plotly's Share button (to its cloud, plotlyServerURL) is off and its
// server unset, and its logo (a link to plotly.com) hidden. The dashboard works offline and may hold
// unpublished results.
function config(figure) {
  return {
    responsive: true, displayModeBar: true, displaylogo: false, showSendToCloud: false, plotlyServerURL: "",
    toImageButtonOptions: { format: "png", filename: fileName([downloadContext, figure]) },
  };
}

// A chart's figure name from its element's id: "chart-valid_top1" is "valid_top1".
function figureOf(target) {
  return target.replace(/^chart-/, "");
}

function note(text) {
  return { text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#59636e" } };
}

function layout(title, xTitle, extra = {}) {
  return {
    title: { text: title, font: { size: 14 }, x: 0.02 },
    margin: { l: 56, r: 12, t: 40, b: 40 },
    xaxis: { title: { text: xTitle, standoff: 4 }, zeroline: false, automargin: true },
    yaxis: { zeroline: false, exponentformat: "e" },
    showlegend: false,
    hovermode: "closest",
    autosize: true,
    ...extra,
  };
}

// Plotly reads a few tags in trace names as markup; entities keep a run's name literal text.
function plotText(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

// A chart without points says why (waiting, cancelled, failed), instead of showing a bare axis.
function emptyState(empty, text) {
  return empty ? { annotations: [note(text)], yaxis: { visible: false } } : { annotations: [] };
}

// The epoch axis spans the whole run when its length is known, so a live chart fills in from the left.
function epochAxis(epochs) {
  const axis = { title: { text: "epoch", standoff: 4 }, automargin: true, zeroline: false };
  if (epochs) Object.assign(axis, { range: [0.5, epochs + 0.5], dtick: epochs <= 20 ? 1 : undefined });
  return axis;
}

// A line of one series: {name, group, color, dash, thin, points: [{x, y}]}. A thin line is one seed
// of a group whose mean is drawn over it.
function line(series, x, y, mode) {
  return {
    x, y, type: "scatter", mode, name: plotText(series.name), legendgroup: series.group,
    line: { color: series.color, dash: series.dash ?? "solid", width: series.thin ? 1 : 2.2 },
    opacity: series.thin ? 0.45 : 1,
    marker: { size: series.thin ? 3 : 5 },
    hovertemplate: `${plotText(series.name)}<br>epoch %{x}: %{y:.4g}<extra></extra>`,
  };
}

// The fields the charts draw, and what the compare page asks /metrics/columns for.
export const CHARTED_FIELDS = ["train_loss", "valid_top1", "valid_top5", "lr"];

// Epoch rows (sorted by epoch) as the columns /metrics/columns answers with: {epoch: [...], field: [...]}.
export function toColumns(rows) {
  return Object.fromEntries(["epoch", ...CHARTED_FIELDS].map((field) => [field, rows.map((row) => row[field])]));
}

// series: [{name, group, color, dash, thin, columns: {epoch, train_loss, valid_top1, valid_top5, lr}}],
// one array per field, as Plotly takes them.
export function drawEpochCharts(series, { epochs = null, emptyNote = "waiting for the first epoch…" } = {}) {
  const empty = series.every((s) => s.columns.epoch.length === 0);
  for (const { field, title } of EPOCH_CHARTS) {
    const traces = series.map((s) => line(s, s.columns.epoch, s.columns[field], "lines+markers"));
    const extra = { ...emptyState(empty, emptyNote), xaxis: epochAxis(epochs) };
    Plotly.react(`chart-${field}`, traces, layout(title, "epoch", extra), config(field));
  }
}

// The learning rate: per step when the run stored steps, else the rate logged with each epoch.
// ``title`` names the layer group whose rate it is.
export function drawLr(target, series, { perStep = false, epochs = null, title, emptyNote = "waiting for the first epoch…" }) {
  const traces = series.map((s) =>
    perStep
      ? line(s, s.steps.map((p) => p.step), s.steps.map((p) => p.lr), "lines")
      : line(s, s.columns.epoch, s.columns.lr, "lines+markers"),
  );
  const empty = traces.every((t) => t.x.length === 0);
  const extra = emptyState(empty, emptyNote);
  if (!perStep) extra.xaxis = epochAxis(epochs);
  // From zero: Plotly pads a lone point by ±1, which would flatten a rate of 5e-4 onto the axis.
  const top = Math.max(0, ...traces.flatMap((t) => t.y.filter((y) => y !== null)));
  if (!empty) extra.yaxis = { range: [0, top * 1.08 || 1], exponentformat: "e", zeroline: false };
  Plotly.react(target, traces, layout(title, perStep ? "step" : "epoch", extra), config(figureOf(target)));
}

// The launch form's preview: one line per layer group, with its own legend (a handful of groups).
export function drawLines(target, traces, title, xTitle) {
  const lines = traces.map((t, index) => ({
    type: "scatter", mode: "lines", ...t, name: plotText(t.name), line: { color: PALETTE[index % PALETTE.length], width: 2 },
  }));
  const extra = { showlegend: true, legend: { orientation: "h", yanchor: "top", y: -0.25 }, margin: { l: 56, r: 12, t: 40, b: 70 } };
  Plotly.react(target, lines, layout(title, xTitle, extra), config(figureOf(target)));
}

function hexToRgba(hex, alpha) {
  const value = Number.parseInt(hex.slice(1), 16);
  return `rgba(${value >> 16}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

// Per group: an invisible upper edge, the lower edge filled up to it, then the mean line on top.
function bandTraces({ name, group, color, dash }, band) {
  const x = band.epoch;
  const upper = band.mean.map((mean, i) => mean + (band.std[i] ?? 0));
  const lower = band.mean.map((mean, i) => mean - (band.std[i] ?? 0));
  const edge = { type: "scatter", mode: "lines", x, line: { width: 0, color }, hoverinfo: "skip", legendgroup: group };
  return [
    { ...edge, y: upper, name: `${plotText(name)} +std` },
    { ...edge, y: lower, name: `${plotText(name)} −std`, fill: "tonexty", fillcolor: hexToRgba(color, 0.18) },
    {
      type: "scatter", mode: "lines+markers", x, y: band.mean, name: plotText(name), legendgroup: group,
      line: { color, dash }, marker: { size: 5 },
      customdata: band.n.map((n, i) => [n, band.std[i]]),
      hovertemplate: `${plotText(name)}<br>epoch %{x}: %{y:.4g} ± %{customdata[1]:.2g} (n=%{customdata[0]})<extra></extra>`,
    },
  ];
}

// series: [{name, group, color, dash, bands: {train_loss, valid_top1, valid_top5, lr: CurveBand}}]
export function drawBandCharts(series, { epochs = null, lrTitle }) {
  for (const { field, title } of [...EPOCH_CHARTS, { field: "lr", title: lrTitle }]) {
    const traces = series.flatMap((s) => bandTraces(s, s.bands[field]));
    const empty = traces.every((t) => t.x.length === 0);
    const extra = { ...emptyState(empty, "no finished epoch yet"), xaxis: epochAxis(epochs) };
    Plotly.react(`chart-${field}`, traces, layout(title, "epoch", extra), config(field));
  }
}

// The shared legend: one toggle per group, [{group, label, detail, color, dash}]. A group a person
// hid stays hidden across redraws (``hidden``, a Set of group keys, is the page's own).
export function renderLegend(container, entries, hidden) {
  const buttons = entries.map((entry) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "legend-entry";
    button.dataset.group = entry.group;
    button.setAttribute("aria-pressed", String(!hidden.has(entry.group)));
    const swatch = document.createElement("span");
    swatch.className = `swatch swatch-${entry.dash}`;
    swatch.style.setProperty("--swatch", entry.color);
    swatch.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "legend-label";
    label.textContent = entry.label;
    button.append(swatch, label);
    if (entry.detail) {
      const detail = document.createElement("span");
      detail.className = "legend-detail";
      detail.textContent = entry.detail;
      button.append(detail);
    }
    button.addEventListener("click", () => {
      if (hidden.has(entry.group)) hidden.delete(entry.group);
      else hidden.add(entry.group);
      button.setAttribute("aria-pressed", String(!hidden.has(entry.group)));
      applyHidden(hidden);
    });
    return button;
  });
  container.replaceChildren(...buttons);
  applyHidden(hidden);
}

// Shows and hides each group's traces in the four charts: one legend for all of them.
export function applyHidden(hidden) {
  for (const id of CHART_IDS) {
    const chart = document.getElementById(id);
    if (!chart?.data) continue;
    const visible = chart.data.map((trace) => !hidden.has(trace.legendgroup));
    if (visible.some((shown, index) => shown !== (chart.data[index].visible ?? true))) {
      Plotly.restyle(chart, { visible }, chart.data.map((_, index) => index));
    }
  }
}

// An LR range test: the raw and the smoothed loss against the rate (log axis when the sweep is
// exponential), with its minimum and the suggested rate (the steepest descent) marked.
export function drawRangeTest(target, test) {
  const x = test.curve.map((point) => point.lr);
  const marked = (point, name, symbol, color) => ({
    type: "scatter", mode: "markers", x: [point.lr], y: [point.smoothed], name,
    marker: { size: 12, symbol, color, line: { width: 1, color: "#1f2328" } },
    hovertemplate: `${name}<br>lr %{x:.2e}: smoothed loss %{y:.4f}<extra></extra>`,
  });
  const traces = [
    { type: "scatter", mode: "lines", x, y: test.curve.map((point) => point.loss), name: "loss",
      line: { color: "#afb8c1", width: 1 }, hovertemplate: "lr %{x:.2e}: loss %{y:.4f}<extra></extra>" },
    { type: "scatter", mode: "lines", x, y: test.curve.map((point) => point.smoothed), name: "smoothed loss",
      line: { color: PALETTE[0], width: 2 }, hovertemplate: "lr %{x:.2e}: smoothed %{y:.4f}<extra></extra>" },
  ];
  if (test.minimum) traces.push(marked(test.minimum, "minimum", "circle", PALETTE[1]));
  if (test.steepest) traces.push(marked(test.steepest, "suggestion (steepest descent)", "star", PALETTE[2]));
  const extra = {
    xaxis: { title: { text: "learning rate (optim.lr)", standoff: 4 }, type: test.sweep.mode === "exponential" ? "log" : "linear",
      exponentformat: "e", automargin: true },
    showlegend: true, legend: { orientation: "h", yanchor: "top", y: -0.25 }, margin: { l: 56, r: 12, t: 40, b: 80 },
    ...emptyState(!test.curve.length, "waiting for the first step…"),
  };
  if (test.minimum_tenth !== null && test.curve.length && test.minimum_tenth >= x[0]) {
    // The other usual pick, a tenth of the minimum's rate, as a dotted line across the chart.
    const tenth = test.minimum_tenth;
    extra.shapes = [{ type: "line", xref: "x", yref: "paper", x0: tenth, x1: tenth, y0: 0, y1: 1, line: { dash: "dot", color: PALETTE[1], width: 1 } }];
    extra.annotations = [{ text: "minimum / 10", x: Math.log10(tenth), xref: "x", yref: "paper", y: 1, yanchor: "bottom", showarrow: false, font: { size: 11, color: "#59636e" } }];
    if (test.sweep.mode !== "exponential") extra.annotations[0].x = tenth;
  }
  Plotly.react(target, traces, layout("Loss against learning rate", "learning rate", extra), config("loss-vs-lr"));
}

// A grid study's factorial effects: a horizontal bar per effect (main effects first, as the API
// orders them) with its 95 % interval, in points; zero drawn so "within noise" reads at a glance.
export function drawEffects(target, effects) {
  const rows = effects.data;
  const has = (row) => row.ci_low !== null && row.ci_high !== null;
  const bar = {
    type: "bar", orientation: "h",
    x: rows.map((row) => row.estimate),
    y: rows.map((row) => row.label),
    // Interactions in a dark neutral: a red bar would read as "hurt".
    marker: { color: rows.map((row) => (row.kind === "main" ? PALETTE[0] : PALETTE[5])) },
    error_x: {
      type: "data", symmetric: false, color: "#1f2328", thickness: 1.5, width: 6,
      array: rows.map((row) => (has(row) ? row.ci_high - row.estimate : 0)),
      arrayminus: rows.map((row) => (has(row) ? row.estimate - row.ci_low : 0)),
    },
    customdata: rows.map((row) => [plotText(row.text), row.kind]),
    hovertemplate: "%{y} (%{customdata[1]}): %{customdata[0]}<extra></extra>",
    name: "effect",
  };
  const extra = {
    height: 90 + 40 * rows.length,
    margin: { l: 120, r: 16, t: 40, b: 44 },
    xaxis: { title: { text: "effect on top-1 (points), 95 % interval", standoff: 4 }, zeroline: true, zerolinewidth: 2, automargin: true },
    yaxis: { autorange: "reversed", automargin: true },
  };
  // The box takes the chart's height: a few bars need less room than the epoch charts.
  document.getElementById(target).style.height = `${extra.height}px`;
  Plotly.react(target, [bar], layout("Main effects and two-way interactions", "points", extra), config("effects"));
}

// A figure the server built whole (a sweep's, from optuna.visualization, as Plotly JSON), drawn with
// the page's config: nothing leaves the machine from it either.
export function drawFigure(target, figure, name) {
  window.Plotly.react(target, figure.data, { ...figure.layout, autosize: true }, config(name));
}
