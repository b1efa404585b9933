// The studies page: the launch form (preset or grid, overrides, seeds) with what it would queue and
// for about how long, checked as the launch checks it; and the recent studies.
import { api, detailText, el, poll, showFormErrors, showMessage, validationErrors, when } from "./common.js";
import { duration } from "./format.js";

const POLL_MS = 5000;

const form = document.getElementById("study-form");
const gridBox = document.getElementById("grid-switches");
const overridesBox = document.getElementById("study-overrides");
const formErrors = document.getElementById("study-form-errors");
const submitButton = document.getElementById("study-submit");
const tbody = document.querySelector("#studies-table tbody");
const message = document.getElementById("studies-message");
const previewLine = document.getElementById("study-preview");

function design() {
  return form.querySelector('input[name="design"]:checked').value;
}

// The name the form starts with follows the preset until someone types their own.
const PRESET_NAMES = { seed: "seed study", paper: "paper study" };

function syncDesign() {
  gridBox.disabled = design() !== "grid";
  const name = document.getElementById("study-name");
  if (Object.values(PRESET_NAMES).includes(name.value)) name.value = PRESET_NAMES[design()] ?? PRESET_NAMES.seed;
}

// A typed value: JSON when it parses (3, 0.1, true, null, "x"), the text itself otherwise (resnet18).
function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// "key = value" lines; blank lines and # comments are skipped. Throws naming the line.
function parseOverrides(text) {
  const overrides = {};
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const match = line.match(/^([^=\s]+)\s*=\s*(.*)$/);
    if (!match) throw new Error(`line ${index + 1}: expected key = value, got "${line}"`);
    overrides[match[1]] = parseValue(match[2].trim());
  });
  return overrides;
}

function collectSwitches() {
  const switches = {};
  for (const input of gridBox.querySelectorAll("[data-kind]")) {
    if (input.dataset.kind === "flag") {
      if (input.checked) switches[input.name] = true;
    } else if (input.value.trim()) {
      switches[input.name] = input.value.split(",").map((part) => parseValue(part.trim()));
    }
  }
  return switches;
}

// --- errors: FastAPI's 422 locations to the inputs they name ----------------------------------

// The body's "name", "seeds", "priority"; "overrides" and a key; "grid", "switches", a switch's name.
function field(loc) {
  const [where, ...rest] = loc;
  const name = loc.join(".");
  if (where === "grid") {
    const input = rest.length >= 2 ? document.getElementById(`switch-${rest[1]}`) : gridBox.querySelector("[data-kind]");
    return { name, input };
  }
  if (where === "overrides") return { name, input: overridesBox, label: rest[0] };
  return { name, input: form.querySelector(`[name="${CSS.escape(where ?? "")}"]`) };
}

function showErrors(errors) {
  showFormErrors(form, formErrors, errors, field);
}

// The request body, or throws naming the overrides line that cannot be read.
function collectBody() {
  const body = {
    name: document.getElementById("study-name").value,
    seeds: Number(document.getElementById("study-seeds").value),
    priority: Number(document.getElementById("study-priority").value),
    overrides: parseOverrides(overridesBox.value),
  };
  if (design() === "grid") body.grid = { switches: collectSwitches() };
  else body.preset = design();
  return body;
}

function previewText(plan) {
  const runs = (n) => `${n} run${n === 1 ? "" : "s"}`;
  const shape = `${plan.groups} groups × ${plan.seeds.length} seed${plan.seeds.length === 1 ? "" : "s"}`;
  const reused = plan.reused_runs ? `, ${plan.reused_runs} of them reused from earlier runs` : "";
  const time = plan.new_runs ? `; about ${duration(plan.seconds)} (${plan.basis})` : "";
  const idle = plan.workers ? "" : " No worker is running: nothing starts until one does.";
  const warnings = plan.warnings.map((warning) => ` Warning: ${warning}.`).join("");
  return `${shape}: ${runs(plan.runs)}${reused}${time}.${idle}${warnings}`;
}

// What the form would launch, asked of the server on each change: the runs, the time, and every
// problem beside its field before anyone presses Launch.
let previewTimer = null;
let previewSeq = 0;
async function preview() {
  const seq = ++previewSeq;
  let body;
  try {
    body = collectBody();
  } catch (error) {
    previewLine.textContent = `No estimate until the overrides can be read: ${error.message}`;
    previewLine.dataset.kind = "error";
    return;
  }
  try {
    const plan = await api("/studies/preview", { method: "POST", body });
    if (seq !== previewSeq) return;
    previewLine.textContent = previewText(plan);
    previewLine.dataset.kind = plan.warnings.length ? "warning" : "ok";
    clearErrors();
  } catch (error) {
    if (seq !== previewSeq) return;
    previewLine.textContent = `Not launchable yet: ${detailText(error)}`;
    previewLine.dataset.kind = "error";
  }
}

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 400);
}

function clearErrors() {
  formErrors.hidden = true;
  for (const box of form.querySelectorAll(".field-error")) box.hidden = true;
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

async function submit(event) {
  event.preventDefault();
  let body;
  try {
    body = collectBody();
  } catch (error) {
    showErrors([{ loc: ["overrides"], msg: error.message }]);
    return;
  }
  submitButton.disabled = true;
  try {
    const study = await api("/studies", { method: "POST", body });
    window.location.assign(`/studies/${study.id}`);
  } catch (error) {
    showErrors(validationErrors(error));
  } finally {
    submitButton.disabled = false;
  }
}

// --- the list ---------------------------------------------------------------------------------

function row(study) {
  const { progress } = study;
  const done = progress.succeeded + progress.failed + progress.cancelled;
  const bar = el("progress", { max: Math.max(progress.total, 1), value: done, "aria-label": `${done} of ${progress.total} runs finished` });
  // Finished is not succeeded: say how many runs will give no result.
  const unfinished = ["failed", "cancelled"].filter((status) => progress[status]).map((status) => `${progress[status]} ${status}`).join(", ");
  const design = study.kind === "preset" ? `preset ${study.preset}` : `grid: ${Object.keys(study.grid.switches).join(" × ")}`;
  return el("tr", { dataset: { studyId: study.id } },
    el("td", {}, el("a", { href: `/studies/${study.id}` }, study.name), " ", el("span", { class: "muted" }, `#${study.id}`)),
    el("td", {}, design),
    el("td", { class: "num" }, `${study.groups.length} × ${study.seeds.length}`),
    el("td", {}, el("span", { class: "progress" }, bar, ` ${done}/${progress.total}`, unfinished ? ` (${unfinished})` : "")),
    el("td", {}, when(study.created_at)),
  );
}

for (const radio of form.querySelectorAll('input[name="design"]')) radio.addEventListener("change", syncDesign);
form.addEventListener("submit", submit);
form.addEventListener("input", schedulePreview);
form.addEventListener("change", schedulePreview);
syncDesign();
preview();
poll(
  async () => {
    const page = await api("/studies?limit=50");
    tbody.replaceChildren(...page.data.map(row));
    if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No study yet: launch one above.")));
    showMessage(message, "");
    return page.data.some((study) => !study.finished);
  },
  { intervalMs: POLL_MS, message, failure: "Could not load the studies" },
);
