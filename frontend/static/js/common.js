// Shared by every page: JSON fetches from /api/v1, element building with text only, statuses,
// the polling of live pages, and the API's 422s shown beside the form inputs they name.

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
  // The log-in ended (logged out elsewhere, expired, token revoked): log in again, then come back here.
  if (response.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
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

export function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }) : "–";
}

export function statusBadge(run) {
  // A run whose Slurm job still waits is "queued in Slurm", with Slurm's reason, not running; a run its
  // sweep stopped early ends cancelled, and is shown as what happened to it.
  const waiting = run.status === "running" && run.slurm_state === "PENDING";
  const shown = waiting ? "queued in Slurm" : run.pruned && run.status === "cancelled" ? "pruned" : run.status;
  const badge = el("span", { class: `status status-${waiting ? "queued" : run.status}` }, shown);
  if (run.cancel_requested && ACTIVE.has(run.status)) badge.append(" (cancelling)");
  if (!run.slurm) return badge;
  const where = waiting ? (run.slurm_reason ? `${run.slurm_reason}, job ${run.slurm_job_id}` : `job ${run.slurm_job_id}`) : run.slurm;
  return el("span", { class: "status-with-slurm" }, badge, el("span", { class: "muted slurm" }, ` ${where}`));
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

function named(name, msg) {
  return name ? `${name}: ${msg}` : msg;
}

// skip: the parts of a 422's loc that name no field the user set: ["body", "config", "epochs"] is
// "epochs" (the default, 2), and a change's ["body", "name"] is "name" (skip 1).
export function detailText(error, { skip = 2 } = {}) {
  if (!(error instanceof ApiError)) return String(error.message || error);
  if (Array.isArray(error.detail)) return error.detail.map((item) => named(item.loc.slice(skip).join("."), item.msg)).join("; ");
  return error.message;
}

// FastAPI's 422 detail as [{loc, msg}], loc without its first part (the forms send only bodies, so it is
// always "body"); any other error as one message that names no input.
export function validationErrors(error) {
  if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) {
    return error.detail.map((item) => ({ loc: item.loc.slice(1).map(String), msg: item.msg }));
  }
  return [{ loc: [], msg: detailText(error) }];
}

// Shows errors ([{loc, msg}]) in a form: each beside the input that field(loc) finds, in its
// `${input.id}-error` box, and all of them in the summary box, which takes the focus unless an input
// named by an error does. field(loc) gives {input, name, label}: the input or none, the error's name
// in the summary, and the words before msg beside the input (none: msg alone).
export function showFormErrors(form, summary, errors, field) {
  for (const box of form.querySelectorAll(".field-error")) {
    box.hidden = true;
    box.textContent = "";
  }
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const list = el("ul");
  let first = null;
  for (const { loc, msg } of errors) {
    const { input, name, label } = field(loc);
    const box = input && document.getElementById(`${input.id}-error`);
    if (box) {
      // Several errors on one input (two override keys, two values of a switch) share its box.
      box.textContent = box.textContent ? `${box.textContent}; ${named(label, msg)}` : named(label, msg);
      box.hidden = false;
      input.setAttribute("aria-invalid", "true");
      first ??= input;
      list.append(el("li", {}, el("a", { href: `#${input.id}` }, name), `: ${msg}`));
    } else {
      list.append(el("li", {}, named(name, msg)));
    }
  }
  const count = errors.length === 1 ? "One setting needs fixing:" : `${errors.length} settings need fixing:`;
  summary.replaceChildren(el("p", {}, count), list);
  summary.hidden = false;
  (first ?? summary).focus();
}

// Keeps a page live: load() fetches and draws, and resolves to whether anything it shows is still
// changing (a queued or running run, an unfinished study). It runs again after intervalMs while so, and
// after idleMs while not (without idleMs, polling stops until the next refresh). A failed load is shown
// in message after `failure` and counts as nothing changing, unless retry(error) says to go on.
// Returns refresh(): load now (after an action, a changed filter), which also restarts a stopped poll.
export function poll(load, { intervalMs, idleMs = null, message, failure, retry = () => false }) {
  let timer = null;
  let latest = 0;
  async function refresh() {
    clearTimeout(timer);
    const call = ++latest;
    let changing;
    try {
      changing = await load();
    } catch (error) {
      showMessage(message, `${failure}: ${detailText(error)}`, "error");
      changing = retry(error);
    }
    // A refresh that answers after a newer one leaves the schedule to the newer one.
    if (call !== latest) return;
    const delay = changing ? intervalMs : idleMs;
    if (delay !== null) timer = setTimeout(refresh, delay);
  }
  refresh();
  return refresh;
}
