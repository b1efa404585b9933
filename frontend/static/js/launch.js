// The launch form: presets, the teacher picker, the LR preview, and the API's 422s beside their fields.
import { api, detailText, el, showFormErrors, validationErrors } from "./common.js";
import { drawLines, nameDownloads } from "./charts.js";
import { number } from "./format.js";

const form = document.getElementById("launch-form");
const inputs = [...form.querySelectorAll("[name][data-kind]")];
const byName = new Map(inputs.map((input) => [input.name, input]));
const presetSelect = document.getElementById("preset");
const presetNote = document.getElementById("preset-note");
const kdEnabled = document.getElementById("kd-enabled");
const kdPicker = document.getElementById("kd-picker");
const teacherSelect = byName.get("tricks.kd.teacher");
const teacherHint = document.getElementById("kd-hint");
const formErrors = document.getElementById("form-errors");
const submitButton = document.getElementById("submit");
const findLrButton = document.getElementById("find-lr");
const previewNote = document.getElementById("preview-note");
const previewWarning = document.getElementById("preview-warning");
const combination = document.getElementById("kd-combination");
nameDownloads("new-run");
// The teacher the chosen preset names (T or T-LS); null without a preset, or once another is chosen.
let presetTeacher = null;
// Label smoothing of each teacher run on offer, by id.
const teacherSmoothing = new Map();

// --- reading and writing the form -------------------------------------------------------------

function readValue(input) {
  switch (input.dataset.kind) {
    case "boolean":
      return input.checked;
    case "integer":
    case "number":
      // An empty box is sent as null, so the API names the field instead of a default hiding it.
      return input.value === "" ? null : Number(input.value);
    case "optional-text":
      return input.value.trim() === "" ? null : input.value;
    case "teacher":
      if (!kdEnabled.checked || input.value === "") return null;
      return /^\d+$/.test(input.value) ? Number(input.value) : input.value;
    default:
      return input.value;
  }
}

function ensureTeacherOption(value) {
  const text = String(value);
  if (![...teacherSelect.options].some((option) => option.value === text)) {
    teacherSelect.append(el("option", { value: text }, typeof value === "number" ? `run #${value}` : `folder ${text}`));
  }
}

function writeValue(input, value) {
  if (input.dataset.kind === "boolean") input.checked = Boolean(value);
  else if (input.dataset.kind === "teacher") {
    setKd(value !== null && value !== undefined);
    if (value !== null && value !== undefined) {
      ensureTeacherOption(value);
      input.value = String(value);
    } else input.value = "";
  } else input.value = value ?? "";
}

// Dotted names ("tricks.kd.alpha") to the nested config the API takes.
function collectConfig() {
  const config = {};
  for (const input of inputs) {
    const parts = input.name.split(".");
    let node = config;
    for (const part of parts.slice(0, -1)) node = node[part] ??= {};
    node[parts.at(-1)] = readValue(input);
  }
  return config;
}

function flatten(values, prefix = "", out = {}) {
  for (const [key, value] of Object.entries(values)) {
    const name = prefix + key;
    if (value && typeof value === "object" && !Array.isArray(value)) flatten(value, `${name}.`, out);
    else out[name] = value;
  }
  return out;
}

function setValues(values) {
  for (const [name, value] of Object.entries(values)) {
    const input = byName.get(name);
    if (input) writeValue(input, value);
  }
  formChanged();
}

// --- errors -----------------------------------------------------------------------------------

// FastAPI's loc after "body" is ["config", ...the dotted path the inputs are named by].
function field(loc) {
  const name = loc.slice(1).join(".");
  return { name, input: byName.get(name) };
}

function showErrors(errors) {
  showFormErrors(form, formErrors, errors, field);
}

// --- presets and the teacher picker ------------------------------------------------------------

const presets = new Map(JSON.parse(document.getElementById("presets-data").textContent).map((p) => [p.key, p]));

async function applyPreset(key) {
  const preset = presets.get(key);
  if (!preset) return;
  presetTeacher = preset.teacher;
  setValues(preset.values);
  presetNote.textContent = preset.teacher
    ? `${preset.title}: distils from a ${preset.teacher} run, as the report did. Pick it below under Knowledge distillation.`
    : `${preset.title}: applied.`;
  if (preset.teacher) {
    setKd(true);
    await loadTeachers({ preferSuggested: true });
  }
}

function setKd(on) {
  kdEnabled.checked = on;
  kdPicker.hidden = !on;
}

async function loadTeachers({ preferSuggested = false } = {}) {
  const smoothing = readValue(byName.get("tricks.label_smoothing")) ?? 0;
  let answer;
  const params = new URLSearchParams({ label_smoothing: smoothing });
  if (presetTeacher) params.set("teacher", presetTeacher);
  try {
    answer = await api(`/presets/teachers?${params}`);
  } catch (error) {
    teacherHint.textContent = `Could not list teacher runs: ${detailText(error)}`;
    return;
  }
  const current = teacherSelect.value;
  teacherSelect.replaceChildren(
    el("option", { value: "" }, answer.count ? "choose a finished run…" : "no finished run yet"),
    ...answer.data.map((run) => el("option", { value: String(run.id) }, run.label)),
  );
  const keep = current && !preferSuggested;
  if (keep) ensureTeacherOption(/^\d+$/.test(current) ? Number(current) : current);
  teacherSelect.value = keep ? current : String(answer.suggested_id ?? "");
  teacherHint.textContent = answer.hint;
  teacherSmoothing.clear();
  for (const run of answer.data) teacherSmoothing.set(String(run.id), run.label_smoothing);
  sayCombination();
}

// Label smoothing meets distillation in one of two ways; the form says which this config is.
function sayCombination() {
  const smoothing = readValue(byName.get("tricks.label_smoothing")) ?? 0;
  const teacherLs = teacherSmoothing.get(teacherSelect.value);
  let text = "";
  if (kdEnabled.checked && smoothing > 0) {
    text = "Label smoothing on the student's own task term as well as distillation: the paper's combination " +
      "(the report's g, h, i1 and i2 leave the student unsmoothed and smooth only the teacher).";
  } else if (kdEnabled.checked && teacherLs > 0) {
    text = "The report's combination (g, h, i1, i2): the student's task term is plain cross-entropy, and label " +
      "smoothing comes only through the teacher, trained with it.";
  }
  combination.textContent = text;
  combination.hidden = !text;
}

// --- LR preview --------------------------------------------------------------------------------

let previewTimer = null;
let previewSeq = 0;

async function preview() {
  const seq = ++previewSeq;
  previewNote.textContent = "Computing the schedule…";
  try {
    const result = await api("/schedule/preview", { method: "POST", body: { config: collectConfig() } });
    if (seq !== previewSeq) return; // a newer edit is already being previewed
    // Groups with the same divisor share one curve: one line named for all of them, none hidden under another.
    const curves = new Map();
    for (const [group, lrs] of Object.entries(result.groups)) {
      const key = JSON.stringify(lrs);
      if (!curves.has(key)) curves.set(key, { names: [], lrs });
      curves.get(key).names.push(group);
    }
    const traces = [...curves.values()].map(({ names, lrs }) => ({ name: names.join(" = "), x: result.epochs, y: lrs }));
    drawLines("lr-preview", traces, "Learning rate per step", "epoch");
    const source = result.steps_per_epoch_source === "dataset"
      ? "from the configured dataset"
      : "assumed CUB-200-2011: the configured dataset could not be read here";
    previewNote.textContent = `${result.steps_per_epoch} step${result.steps_per_epoch === 1 ? "" : "s"} per epoch (${result.n_train.toLocaleString()} training images, ${source}).${memoryText(result.gpu_memory)}`;
    previewNote.title = result.gpu_memory ? `GPU memory: ${result.gpu_memory.basis}` : "";
    sayWarnings(result.warnings);
  } catch (error) {
    if (seq !== previewSeq) return;
    sayWarnings([]);
    // The curves of the last valid settings would be read as these settings' ones: they go.
    Plotly.purge("lr-preview");
    previewNote.textContent = `No preview until the settings are valid: ${detailText(error)}`;
  }
}

// The GPU memory a training step takes, as the server estimates it (the note's title says from what).
function memoryText(memory) {
  if (!memory) return "";
  const where = memory.gpus > 1 ? ` on each of ${memory.gpus} GPUs` : "";
  const largest = memory.largest_gpu_gib === null ? "" : `; the largest GPU of the live workers has ${number(memory.largest_gpu_gib, 1)} GiB`;
  return ` A training step needs about ${number(memory.gib, 1)} GiB of GPU memory${where} (approximate)${largest}.`;
}

// What the batch does to the training split (larger than it, or much of it left out), before launching.
function sayWarnings(warnings) {
  previewWarning.textContent = warnings.map((warning) => `Warning: ${warning}.`).join(" ");
  previewWarning.hidden = !warnings.length;
}

function formChanged() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}

// --- wiring ------------------------------------------------------------------------------------

form.addEventListener("input", formChanged);
form.addEventListener("change", (event) => {
  formChanged();
  if (event.target.name === "tricks.label_smoothing" && kdEnabled.checked) loadTeachers();
  else sayCombination();
});
presetSelect.addEventListener("change", () => {
  presetTeacher = null;
  if (presetSelect.value) applyPreset(presetSelect.value);
});
kdEnabled.addEventListener("change", () => {
  setKd(kdEnabled.checked);
  if (kdEnabled.checked) loadTeachers({ preferSuggested: !teacherSelect.value });
  else sayCombination();
});

// Launch run queues the form's config; Find LR queues an LR range test of it (the report's sweep).
async function queue(path, page) {
  if (kdEnabled.checked && teacherSelect.value === "") {
    showErrors([{ loc: ["config", "tricks", "kd", "teacher"], msg: "choose the teacher run, or untick distillation" }]);
    return;
  }
  submitButton.disabled = findLrButton.disabled = true;
  try {
    const priority = Number(document.getElementById("priority").value || 0);
    const queued = await api(path, { method: "POST", body: { config: collectConfig(), priority } });
    location.assign(`${page}/${queued.id}`);
  } catch (error) {
    // The form keeps every value; only the messages are added.
    showErrors(validationErrors(error));
    submitButton.disabled = findLrButton.disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  queue("/runs", "/runs");
});
findLrButton.addEventListener("click", () => queue("/lr-range-tests", "/lr-range-tests"));

async function start() {
  const params = new URLSearchParams(location.search);
  const cloneId = params.get("clone");
  if (cloneId) {
    try {
      const run = await api(`/runs/${encodeURIComponent(cloneId)}`);
      setValues(flatten(run.config));
      const note = document.getElementById("clone-note");
      note.textContent = `Prefilled from run #${run.id} ${run.name}; change what you like and launch.`;
      // "Use this rate" on a range test's page: its config, at the rate it suggests.
      const rate = params.get("lr");
      if (run.kind === "lr_range" && rate !== null) {
        setValues({ "optim.lr": Number(rate) });
        note.textContent = `Prefilled from LR range test #${run.id} ${run.name}, with its suggested rate ` +
          `optim.lr = ${Number(rate).toExponential(2)}; change what you like and launch.`;
      }
      note.hidden = false;
      if (kdEnabled.checked) await loadTeachers();
    } catch (error) {
      showErrors([{ loc: [], msg: `Could not load run ${cloneId} to clone: ${detailText(error)}` }]);
    }
  } else {
    // A preset named in the URL, or one chosen while this script was still loading.
    presetSelect.value = params.get("preset") ?? presetSelect.value;
    if (presetSelect.value) await applyPreset(presetSelect.value);
  }
  // Launch stays disabled until the form holds what the page promised (clone, preset).
  submitButton.disabled = findLrButton.disabled = false;
  preview();
}

start();
