// Shared by every page: JSON fetches from /api/v1, element building with text only, display formats.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.detail ?? response.statusText);
  return data;
}

// Builds an element; children are nodes or strings, and strings always become text nodes, so data
// from the API (run names, error texts) can never turn into markup.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export const ACTIVE = new Set(["queued", "running"]);

function pct(value) {
  return value === null || value === undefined ? "–" : value.toFixed(2);
}

export function pair(a, b) {
  return a === null || a === undefined ? "–" : `${pct(a)} / ${pct(b)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }) : "–";
}

export function statusBadge(run) {
  const badge = el("span", { class: `status status-${run.status}` }, run.status);
  if (run.cancel_requested && ACTIVE.has(run.status)) badge.append(" (cancelling)");
  return badge;
}

// "epoch k/N" and a progress bar; used by the runs list and the run page.
export function progress(run) {
  const done = run.status === "succeeded" ? run.epochs : run.epoch;
  const bar = el("progress", { max: run.epochs, value: done, "aria-label": `epoch ${done} of ${run.epochs}` });
  return el("span", { class: "progress" }, bar, ` epoch ${done}/${run.epochs}`);
}

export function showMessage(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
}

export function detailText(error) {
  if (!(error instanceof ApiError)) return String(error.message || error);
  if (Array.isArray(error.detail)) return error.detail.map((item) => `${item.loc.slice(2).join(".")}: ${item.msg}`).join("; ");
  return error.message;
}
