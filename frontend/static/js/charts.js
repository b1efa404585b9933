// Plotly drawing for the run, compare and study pages: the report's three epoch curves plus the LR,
// one line per run, or a mean line in a ± std band per study group.

// One colour per run, the same in every chart (Plotly's own palette, fixed so traces keep theirs
// when a run has no points yet).
export const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

const EPOCH_CHARTS = [
  { field: "train_loss", title: "Train loss" },
  { field: "valid_top1", title: "Valid top-1 (%)" },
  { field: "valid_top5", title: "Valid top-5 (%)" },
];

const LR_TITLE = "Learning rate";

const CONFIG = { responsive: true, displaylogo: false, displayModeBar: true };

const EMPTY_NOTE = { text: "waiting for the first epoch…", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#59636e" } };

function layout(title, xTitle, extra = {}) {
  return {
    title: { text: title, font: { size: 14 }, x: 0.02 },
    margin: { l: 56, r: 12, t: 40, b: 30 },
    xaxis: { title: { text: xTitle, standoff: 4 }, zeroline: false, automargin: true },
    yaxis: { zeroline: false, exponentformat: "e" },
    legend: { orientation: "h", yanchor: "top", y: -0.22 },
    autosize: true,
    ...extra,
  };
}

// Plotly reads a few tags in trace names as markup; entities keep a run's name literal text.
function plotText(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

// A chart without points says so, instead of showing a bare axis.
function waiting(empty) {
  return empty ? { annotations: [EMPTY_NOTE], yaxis: { visible: false } } : { annotations: [] };
}

function trace(series, x, y, mode = "lines+markers") {
  return { x, y, name: plotText(series.name), type: "scatter", mode, line: { color: series.color }, marker: { size: 5 } };
}

// The epoch axis spans the whole run when its length is known, so a live chart fills in from the left.
function epochAxis(epochs) {
  const axis = { title: { text: "epoch", standoff: 4 }, automargin: true, zeroline: false };
  if (epochs) Object.assign(axis, { range: [0.5, epochs + 0.5], dtick: epochs <= 20 ? 1 : undefined });
  return axis;
}

// series: [{name, color, metrics: [EpochMetricPublic sorted by epoch]}]
export function drawEpochCharts(series, { epochs = null } = {}) {
  const empty = series.every((s) => s.metrics.length === 0);
  for (const { field, title } of EPOCH_CHARTS) {
    const traces = series.map((s) => trace(s, s.metrics.map((m) => m.epoch), s.metrics.map((m) => m[field])));
    const extra = { ...waiting(empty), xaxis: epochAxis(epochs), showlegend: series.length > 1 };
    Plotly.react(`chart-${field}`, traces, layout(title, "epoch", extra), CONFIG);
  }
}

// The learning rate: per step when the run stored steps, else the rate logged with each epoch.
export function drawLr(target, series, { perStep = false, epochs = null } = {}) {
  const traces = series.map((s) =>
    perStep ? trace(s, s.steps.map((p) => p.step), s.steps.map((p) => p.lr), "lines") : trace(s, s.metrics.map((m) => m.epoch), s.metrics.map((m) => m.lr)),
  );
  const empty = traces.every((t) => t.x.length === 0);
  const extra = { ...waiting(empty), showlegend: series.length > 1 };
  if (!perStep) extra.xaxis = epochAxis(epochs);
  // From zero: Plotly pads a lone point by ±1, which would flatten a rate of 5e-4 onto the axis.
  const top = Math.max(0, ...traces.flatMap((t) => t.y.filter((y) => y !== null)));
  if (!empty) extra.yaxis = { range: [0, top * 1.08 || 1], exponentformat: "e", zeroline: false };
  Plotly.react(target, traces, layout(LR_TITLE, perStep ? "step" : "epoch", extra), CONFIG);
}

export function drawLines(target, traces, title, xTitle) {
  Plotly.react(target, traces.map((t) => ({ type: "scatter", mode: "lines", ...t, name: plotText(t.name) })), layout(title, xTitle), CONFIG);
}

function hexToRgba(hex, alpha) {
  const value = Number.parseInt(hex.slice(1), 16);
  return `rgba(${value >> 16}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

// Per group: an invisible upper edge, the lower edge filled up to it, then the mean line on top.
function bandTraces({ name, color, dash }, band) {
  const x = band.epoch;
  const upper = band.mean.map((mean, i) => mean + (band.std[i] ?? 0));
  const lower = band.mean.map((mean, i) => mean - (band.std[i] ?? 0));
  const edge = { type: "scatter", mode: "lines", x, line: { width: 0, color }, hoverinfo: "skip", showlegend: false, legendgroup: name };
  return [
    { ...edge, y: upper, name: `${plotText(name)} +std` },
    { ...edge, y: lower, name: `${plotText(name)} −std`, fill: "tonexty", fillcolor: hexToRgba(color, 0.18) },
    {
      type: "scatter", mode: "lines+markers", x, y: band.mean, name: plotText(name), legendgroup: name,
      line: { color, dash }, marker: { size: 5 },
      customdata: band.n.map((n, i) => [n, band.std[i]]),
      hovertemplate: "%{y:.4g} ± %{customdata[1]:.2g} (n=%{customdata[0]})",
    },
  ];
}

// series: [{name, color, dash, bands: {train_loss, valid_top1, valid_top5, lr: CurveBand}}]
export function drawBandCharts(series, { epochs = null } = {}) {
  for (const { field, title } of [...EPOCH_CHARTS, { field: "lr", title: LR_TITLE }]) {
    const traces = series.flatMap((s) => bandTraces(s, s.bands[field]));
    const empty = traces.every((t) => t.x.length === 0);
    const extra = { ...waiting(empty), xaxis: epochAxis(epochs), showlegend: true };
    Plotly.react(`chart-${field}`, traces, layout(title, "epoch", extra), CONFIG);
  }
}
