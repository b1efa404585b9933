// The runs list: polls /api/v1/runs (often while a run is active), with per-row actions.
import { ACTIVE, ApiError, api, detailText, el, poll, progress, showMessage, statusBadge, when } from "./common.js";
import { KEPT_CHECKPOINT, PEAK_EPOCH, atEpoch, duration, fileSize, meanStd, pair } from "./format.js";

const ACTIVE_POLL_MS = 2000;
const IDLE_POLL_MS = 10000;

const tbody = document.querySelector("#runs-table tbody");
const statusFilter = document.getElementById("filter-status");
const nameFilter = document.getElementById("filter-name");
const kindFilter = document.getElementById("filter-kind");
const archivedFilter = document.getElementById("filter-archived");
const bulk = document.getElementById("bulk");
const textFilter = document.getElementById("filter-text");
const textError = document.getElementById("filter-text-error");
const groupToggle = document.getElementById("filter-group");
const moreButton = document.getElementById("runs-more");
const runsWrap = document.querySelector("#runs-table").closest(".table-wrap");
const groupsWrap = document.getElementById("groups-wrap");
const groupsBody = document.querySelector("#groups-table tbody");
const PAGE = 100;
// Pages beyond the first that the reader asked for with Show more; each poll reads them again.
let extraPages = 0;
const compareButton = document.getElementById("compare-selected");
const message = document.getElementById("runs-message");
const countLine = document.getElementById("runs-count");
const epochsCsv = document.getElementById("runs-epochs-csv");

// Checked in this order; the comparison picks its baseline itself (the fewest tricks).
const selected = new Set();
// Study names by id, read when a run of a study not seen yet appears.
const studyNames = new Map();

// "study #3 “seed study”": the number, then the name (which often ends in "study" itself) quoted; a
// study still being created has no name yet.
function studyTitle(studyId) {
  const name = studyNames.get(studyId);
  return name ? `study #${studyId} “${name}”` : `study #${studyId}`;
}

function actionButton(run, action, label) {
  return el("button", { type: "button", class: "button small", dataset: { key: `${run.id}:${action}` }, onclick: () => act(run, action) }, label);
}

// A step up moves a queued run ahead of every run of the priority it leaves (the claim's order).
const PRIORITY_HELP = "Queued runs start highest priority first, then oldest first.";
const PRIORITY_RANGE = [-1000, 1000];

function priorityControls(run) {
  const step = (delta, symbol, verb) => el("button", {
    type: "button",
    class: "button small priority-step",
    title: `${verb} the priority. ${PRIORITY_HELP}`,
    "aria-label": `${verb} the priority of run #${run.id}`,
    disabled: !(PRIORITY_RANGE[0] <= run.priority + delta && run.priority + delta <= PRIORITY_RANGE[1]),
    dataset: { key: `${run.id}:priority${delta}` },
    onclick: () => reprioritise(run, run.priority + delta),
  }, symbol);
  return el("div", { class: "priority-line", title: PRIORITY_HELP },
    el("span", { class: "priority-value" }, `priority ${run.priority}`), " ",
    step(1, "▲", "Raise"), step(-1, "▼", "Lower"));
}

function row(run) {
  const check = el("input", {
    type: "checkbox",
    "aria-label": `Select run #${run.id} ${run.name}`,
    checked: selected.has(run.id),
    dataset: { key: `${run.id}:select` },
    onchange: (event) => {
      if (event.target.checked) selected.add(run.id);
      else selected.delete(run.id);
      updateSelection();
    },
  });
  const rangeTest = run.kind === "lr_range";
  // A range test's page is its curve; its steps are no epochs of a run.
  const page = rangeTest ? `/lr-range-tests/${run.id}` : `/runs/${run.id}`;
  const status = el("td", {}, statusBadge(run));
  if (run.status === "running" && !rangeTest) status.append(el("br"), progress(run));
  if (run.status === "queued") status.append(priorityControls(run));
  // The first words of why it failed, so the list alone says whether to retry.
  if (run.status === "failed" && run.error) status.append(el("div", { class: "error-line", title: run.error }, run.error.split("\n")[0]));
  const actions = el("td", { class: "actions" },
    el("a", { class: "button small", href: page, dataset: { key: `${run.id}:open` } }, "Open"),
    el("a", { class: "button small", href: `/runs/new?clone=${run.id}`, dataset: { key: `${run.id}:clone` } }, "Clone"),
  );
  if (ACTIVE.has(run.status) && !run.cancel_requested) actions.append(actionButton(run, "cancel", "Cancel"));
  if (run.status === "failed" || run.status === "cancelled") actions.append(actionButton(run, "retry", "Retry"));
  if (run.status !== "running") actions.append(actionButton(run, "delete", "Delete"));
  return el("tr", { dataset: { runId: run.id, status: run.status } },
    el("td", {}, check),
    el("td", {}, el("a", { href: page }, run.name), " ", el("span", { class: "muted" }, `#${run.id}`),
      rangeTest ? el("div", { class: "muted kind-line" }, "LR range test") : null,
      run.study_id === null ? null : el("div", { class: "study-line" }, "in ",
        el("a", { href: `/studies/${run.study_id}`, class: "study-link" }, studyTitle(run.study_id))),
      run.archived_at ? el("div", { class: "muted archived-line" }, `archived ${when(run.archived_at)}`) : null,
      run.tags.length ? el("ul", { class: "tags", "aria-label": "tags" }, ...run.tags.map((tag) => el("li", { class: "tag" }, tag))) : null,
      run.notes ? el("div", { class: "notes-line", title: run.notes }, excerpt(run.notes)) : null),
    status,
    el("td", { class: "num", title: PEAK_EPOCH }, atEpoch(pair(run.peak_valid_top1, run.peak_valid_top5), run.peak_epoch)),
    el("td", { class: "num", title: KEPT_CHECKPOINT }, atEpoch(pair(run.test_top1, run.test_top5), run.test_top1 === null ? null : run.checkpoint_epoch)),
    el("td", { class: "num" }, duration(run.seconds_per_epoch), run.devices ? el("div", { class: "muted" }, run.devices) : null),
    el("td", { class: "num disk" }, fileSize(run.disk_bytes)),
    el("td", {}, when(run.created_at), run.created_by ? el("div", { class: "muted creator" }, `by ${run.created_by}`) : null),
    actions,
  );
}

// The notes' first line that says something, as text: the table shows what a run was for at a glance.
function excerpt(notes) {
  const line = notes.split("\n").map((text) => text.replace(/^[\s#>*+-]+/, "").trim()).find(Boolean) ?? "";
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}

function groupRow(group) {
  const statuses = Object.entries(group.statuses).map(([status, n]) => `${n} ${status}`).join(", ");
  const spread = (figure) => (figure.n ? `${meanStd(figure.mean, figure.std)} (n=${figure.n})` : "–");
  return el("tr", { dataset: { configuration: group.configuration } },
    el("td", {}, el("a", { href: `/compare?runs=${group.run_ids.join(",")}` }, group.name), " ",
      el("span", { class: "muted" }, `${group.count} run${group.count === 1 ? "" : "s"}: ${group.run_ids.map((id) => `#${id}`).join(" ")}`)),
    el("td", {}, statuses),
    el("td", { class: "num" }, spread(group.peak_valid_top1)),
    el("td", { class: "num" }, spread(group.test_top1)),
    el("td", {}, `#${group.run_ids[0]}`),
  );
}

function render(page, grouped) {
  runsWrap.hidden = grouped;
  groupsWrap.hidden = !grouped;
  const body = grouped ? groupsBody : tbody;
  // Rows are rebuilt on every poll; keep keyboard focus on the same control across the rebuild.
  const focused = document.activeElement?.dataset?.key;
  body.replaceChildren(...page.data.map(grouped ? groupRow : row));
  if (!page.data.length) {
    const filtered = statusFilter.value || kindFilter.value || nameFilter.value || textFilter.value.trim() || archivedFilter.value !== "false";
    body.append(el("tr", {}, el("td", { colspan: grouped ? 5 : 9, class: "empty" }, filtered ? "No run matches the filter." : "No runs yet: launch one with New run.")));
  }
  if (focused) body.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  const noun = grouped ? "configuration" : "run";
  const runs = (n) => `${n} ${noun}${n === 1 ? "" : "s"}`;
  countLine.textContent = page.count > page.data.length ? `Showing ${page.data.length} of ${runs(page.count)}.` : `${runs(page.count)}.`;
  moreButton.hidden = !page.more;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const name = sortValue().replace(/^-/, "");
    if (th.dataset.sort === name) th.setAttribute("aria-sort", sortValue().startsWith("-") ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
}

function updateSelection() {
  compareButton.disabled = selected.size === 0;
  compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  bulk.hidden = selected.size === 0;
  document.getElementById("bulk-count").textContent = `${selected.size} selected:`;
}

// The view lives in the address (/?filter=…&sort=-peak.valid_top1&group=seeds&status=failed), so a
// link shares it; the address changes with each filter, sort or grouping (replaced, not pushed).
const linked = new URLSearchParams(location.search);
statusFilter.value = linked.get("status") ?? "";
kindFilter.value = linked.get("kind") ?? "";
nameFilter.value = linked.get("name") ?? "";
archivedFilter.value = ["true", "any"].includes(linked.get("archived")) ? linked.get("archived") : "false";
textFilter.value = linked.get("filter") ?? "";
groupToggle.checked = linked.get("group") === "seeds";
let sort = linked.get("sort") ?? "-id";

function sortValue() {
  return sort;
}

function viewParams() {
  const params = new URLSearchParams();
  if (textFilter.value.trim()) params.set("filter", textFilter.value.trim());
  if (sort !== "-id") params.set("sort", sort);
  if (groupToggle.checked) params.set("group", "seeds");
  if (statusFilter.value) params.set("status", statusFilter.value);
  if (kindFilter.value) params.set("kind", kindFilter.value);
  if (nameFilter.value.trim()) params.set("name", nameFilter.value.trim());
  if (archivedFilter.value !== "false") params.set("archived", archivedFilter.value);
  return params;
}

function keepInAddress() {
  const query = viewParams().toString();
  history.replaceState(null, "", query ? `/?${query}` : "/");
}

// The groups take the filter language only: the status, kind and name boxes join it as conditions.
function groupFilter() {
  const parts = [];
  const quoted = (text) => `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  if (textFilter.value.trim()) parts.push(`(${textFilter.value.trim()})`);
  if (statusFilter.value) parts.push(`status = ${quoted(statusFilter.value)}`);
  if (kindFilter.value) parts.push(`kind = ${quoted(kindFilter.value)}`);
  const name = nameFilter.value.trim().replaceAll("\\", "\\\\").replaceAll("%", "\\%").replaceAll("_", "\\_");
  if (name) parts.push(`name ilike ${quoted(`%${name}%`)}`);
  return parts.join(" and ");
}

async function loadGroups() {
  // Groups page by offset: each Show more asks for a page more, up to the API's 1,000 rows.
  const params = new URLSearchParams({ limit: String(Math.min(1000, PAGE * (extraPages + 1))), sort });
  const filter = groupFilter();
  if (filter) params.set("filter", filter);
  params.set("archived", archivedFilter.value);
  const page = await api(`/run-groups?${params}`);
  return { data: page.data, count: page.count, more: page.count > page.data.length };
}

async function loadRuns() {
  const params = viewParams();
  params.delete("group");
  params.set("limit", String(PAGE));
  params.set("sort", sort);
  const page = await api(`/runs?${params}`);
  const data = [...page.data];
  let cursor = page.next_cursor;
  for (let extra = 0; extra < extraPages && cursor; extra++) {
    params.set("cursor", cursor);
    const next = await api(`/runs?${params}`);
    data.push(...next.data);
    cursor = next.next_cursor;
  }
  return { data, count: page.count, more: cursor !== null };
}

const refresh = poll(
  async () => {
    const grouped = groupToggle.checked;
    // The CSV takes the list's filters (the same parameters as GET /runs), not its order or grouping.
    const csvParams = viewParams();
    csvParams.delete("sort");
    csvParams.delete("group");
    epochsCsv.href = `/api/v1/epochs.csv${csvParams.size ? `?${csvParams}` : ""}`;
    let page;
    try {
      page = await (grouped ? loadGroups() : loadRuns());
    } catch (error) {
      // A filter the server cannot read is said beside the box; the list waits for a better one.
      if (error instanceof ApiError && error.status === 422) {
        textError.textContent = detailText(error);
        textError.hidden = false;
        textFilter.setAttribute("aria-invalid", "true");
        render({ data: [], count: 0, more: false }, grouped);
        return false;
      }
      throw error;
    }
    textError.hidden = true;
    textError.textContent = "";
    textFilter.removeAttribute("aria-invalid");
    if (grouped) {
      render(page, true);
      return page.data.some((group) => (group.statuses.queued ?? 0) + (group.statuses.running ?? 0) > 0);
    }
    if (page.data.some((run) => run.study_id !== null && !studyNames.has(run.study_id))) {
      for (const study of (await api("/studies?limit=1000")).data) studyNames.set(study.id, study.name);
      // A study still being created is not listed yet: asked again only with the next new study.
      for (const run of page.data) if (run.study_id !== null && !studyNames.has(run.study_id)) studyNames.set(run.study_id, null);
    }
    render(page, false);
    return page.data.some((run) => ACTIVE.has(run.status));
  },
  { intervalMs: ACTIVE_POLL_MS, idleMs: IDLE_POLL_MS, message, failure: "Could not load the runs" },
);

async function act(run, action) {
  if (action === "delete" && !confirm(`Delete run #${run.id} "${run.name}" with its metrics and files?`)) return;
  try {
    if (action === "delete") {
      await api(`/runs/${run.id}`, { method: "DELETE" });
      selected.delete(run.id);
      updateSelection();
    } else {
      await api(`/runs/${run.id}/${action}`, { method: "POST" });
    }
    const done = { cancel: "cancel requested", retry: "queued again", delete: "deleted" }[action];
    showMessage(message, `Run #${run.id} ${done}.`);
  } catch (error) {
    showMessage(message, `Could not ${action} run #${run.id}: ${detailText(error)}`, "error");
  }
  refresh();
}

async function reprioritise(run, priority) {
  try {
    await api(`/runs/${run.id}`, { method: "PATCH", body: { priority } });
    showMessage(message, `Run #${run.id} now has priority ${priority}.`);
  } catch (error) {
    showMessage(message, `Could not change the priority of run #${run.id}: ${detailText(error)}`, "error");
  }
  refresh();
}

// Any change of the view starts again from its first page and is kept in the address.
function changed() {
  extraPages = 0;
  keepInAddress();
  refresh();
}

let typing = null;
nameFilter.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(changed, 300);
});
statusFilter.addEventListener("change", changed);
kindFilter.addEventListener("change", changed);
archivedFilter.addEventListener("change", changed);
groupToggle.addEventListener("change", changed);
// The filter applies on Enter or Apply: half a condition is no filter yet.
document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  changed();
});
for (const th of document.querySelectorAll("th[data-sort]")) {
  // A first click sorts a figure or a date highest first, a name A to Z; a second click turns it.
  th.querySelector("button.sort").addEventListener("click", () => {
    const name = th.dataset.sort;
    const first = name === "name" || name === "status" ? name : `-${name}`;
    sort = sort === first ? (first.startsWith("-") ? name : `-${name}`) : first;
    changed();
  });
}
moreButton.addEventListener("click", () => {
  extraPages += 1;
  refresh();
});
compareButton.addEventListener("click", () => {
  location.assign(`/compare?runs=${[...selected].join(",")}`);
});

// One change to every selected run, all of them or none (the API says which run is in the way).
async function changeSelected(verb) {
  const name = document.getElementById("bulk-name").value.trim();
  const tag = document.getElementById("bulk-tag").value.trim();
  const body = {
    rename: { name },
    tag: { add_tags: [tag] },
    untag: { remove_tags: [tag] },
    archive: { archived: true },
    restore: { archived: false },
  }[verb];
  const ids = [...selected];
  const runs = ids.length === 1 ? `run #${ids[0]}` : `${ids.length} runs`;
  try {
    await api("/runs", { method: "PATCH", body: { run_ids: ids, ...body } });
    const done = {
      rename: `renamed ${runs} “${name}”`,
      tag: `tagged ${runs} ${tag}`,
      untag: `removed the tag ${tag} from ${runs}`,
      archive: `archived ${runs}`,
      restore: `restored ${runs}`,
    }[verb];
    showMessage(message, `${done[0].toUpperCase()}${done.slice(1)}.`);
  } catch (error) {
    showMessage(message, `Could not change ${runs}: ${detailText(error, { skip: 1 })}`, "error");
  }
  refresh();
}

for (const button of bulk.querySelectorAll("[data-bulk]")) {
  button.addEventListener("click", () => changeSelected(button.dataset.bulk));
}
bulk.addEventListener("submit", (event) => event.preventDefault());
updateSelection();
