// The Sweeps page: the form (a preset fills it), 422s beside their fields, and the list of sweeps.
import { api, el, poll, showFormErrors, validationErrors } from "./common.js";

const form = document.getElementById("sweep-form");
const summary = document.getElementById("sweep-form-errors");
const presets = JSON.parse(document.getElementById("sweep-presets").textContent);
const input = (name) => document.getElementById(`sweep-${name}`);

function pair(text) {
  const parts = text.split(",").map((part) => part.trim()).filter(Boolean);
  return parts.length ? parts.map(Number) : null;
}

function json(name) {
  try {
    return JSON.parse(input(name).value || "{}");
  } catch (error) {
    throw { loc: [name], msg: `not valid JSON: ${error.message}` };
  }
}

function body() {
  const sampler = { name: input("sampler").value };
  if (input("sampler-seed").value !== "") sampler.seed = Number(input("sampler-seed").value);
  const pruner = { name: input("pruner").value };
  if (pruner.name === "halving") {
    const [minResource, factor] = pair(input("halving").value) ?? [1, 2];
    Object.assign(pruner, { min_resource: minResource, reduction_factor: factor });
  }
  const budget = { trials: Number(input("trials").value), parallel: Number(input("parallel").value) };
  if (input("minutes").value !== "") budget.minutes = Number(input("minutes").value);
  const confirm = pair(input("confirm").value);
  return {
    name: input("name").value,
    space: json("space"),
    base: json("base"),
    objective: input("objective").value,
    seeds: Number(input("seeds").value),
    budget,
    sampler,
    pruner,
    confirm: confirm ? { top: confirm[0], seeds: confirm[1] } : null,
    warm_start: input("warm").checked,
  };
}

// A 422's loc (["space", "optim.lr", "float", "high"]) to the input that holds it.
const INPUTS = { budget: null, sampler: "sampler", pruner: "pruner", confirm: "confirm", warm_start: "warm" };
function field(loc) {
  const [head, second] = loc;
  let id = head in INPUTS ? INPUTS[head] : head;
  if (head === "budget") id = second;
  if (head === "sampler" && second === "seed") id = "sampler-seed";
  if (head === "pruner" && loc.includes("reduction_factor")) id = "halving";
  const node = id ? input(id) : null;
  const name = loc.join(".");
  return { input: node, name, label: head === "space" || head === "base" ? loc.slice(1).join(".") : null };
}

for (const button of document.querySelectorAll(".preset")) {
  button.addEventListener("click", () => {
    const preset = presets[button.dataset.preset];
    input("name").value = preset.title;
    input("space").value = JSON.stringify(preset.space, null, 2);
    input("sampler").value = preset.sampler?.name ?? "tpe";
    input("pruner").value = preset.pruner?.name ?? "none";
    if (preset.pruner?.name === "halving") input("halving").value = `${preset.pruner.min_resource}, ${preset.pruner.reduction_factor}`;
    input("trials").value = preset.budget?.trials ?? 8;
    input("parallel").value = preset.budget?.parallel ?? 2;
    input("seeds").value = preset.seeds ?? 1;
    input("confirm").value = preset.confirm ? `${preset.confirm.top}, ${preset.confirm.seeds}` : "";
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  let request;
  try {
    request = body();
  } catch (error) {
    showFormErrors(form, summary, [error], field);
    return;
  }
  try {
    const sweep = await api("/sweeps", { method: "POST", body: request });
    location.assign(`/sweeps/${sweep.id}`);
  } catch (error) {
    showFormErrors(form, summary, validationErrors(error), field);
  }
});

const tbody = document.querySelector("#sweep-list tbody");
poll(
  async () => {
    const { data } = await api("/sweeps");
    tbody.replaceChildren(
      ...data.map((sweep) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `/sweeps/${sweep.id}` }, `#${sweep.id} ${sweep.name}`)),
          el("td", {}, sweep.status),
          el("td", {}, `${sweep.trials.length} of ${sweep.budget}`),
          el("td", {}, sweep.conclusion?.text ?? ""),
        ),
      ),
    );
    return data.some((sweep) => !["finished", "cancelled"].includes(sweep.status));
  },
  { intervalMs: 3000, message: summary, failure: "Could not load the sweeps" },
);
