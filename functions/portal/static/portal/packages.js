// NAS "Package Setting": the packages a paired NAS reports, a form per package built from its typed settings,
// and each change followed from pending to applied or failed (docs/device-protocol.md).
import { ApiError, announce, api, el, formatTime, listAll } from "./common.js";

const root = document.getElementById("packages");
const deviceId = root.dataset.deviceId;
const list = document.getElementById("package-list");
const none = document.getElementById("no-packages");
const problem = document.getElementById("packages-error");
const base = `/devices/v1/devices/${encodeURIComponent(deviceId)}/packages`;
const POLL_MS = 1000;

const REASONS = {
  timeout: "the NAS did not confirm in time. Is it switched on and connected?",
  broker_unavailable: "PCloud could not reach its message broker; try again.",
  invalid_settings: "the NAS refused these values.",
  expired: "the NAS received it too late.",
};

function changeText(change) {
  if (!change) return "";
  if (change.state === "pending") return "Pending: waiting for the NAS to confirm…";
  if (change.state === "applied") return `Applied ${formatTime(change.finished_at)}`;
  return `Failed: ${REASONS[change.reason] || change.reason || "unknown reason"}`;
}

function fieldId(pkg, spec) {
  return `pkg-${pkg.name}-${spec.key}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

function input(pkg, spec, value) {
  const id = fieldId(pkg, spec);
  const common = { id, name: spec.key, dataset: { key: spec.key, type: spec.type } };
  if (spec.type === "boolean") return el("input", { ...common, type: "checkbox", checked: value === true });
  if (spec.type === "enum") {
    return el("select", common, ...spec.choices.map((c) => el("option", { value: c, selected: c === value }, c)));
  }
  if (spec.type === "integer" || spec.type === "number") {
    return el("input", { ...common, type: "text", inputmode: spec.type === "integer" ? "numeric" : "decimal",
      value: value ?? "", "aria-describedby": `${id}-hint` });
  }
  return el("input", { ...common, type: "text", value: value ?? "", "aria-describedby": `${id}-hint` });
}

function hint(spec) {
  if (spec.type === "integer" || spec.type === "number") {
    const range = [spec.min != null ? `from ${spec.min}` : null, spec.max != null ? `to ${spec.max}` : null];
    return [spec.type === "integer" ? "whole number" : "number", ...range].filter(Boolean).join(" ");
  }
  if (spec.type === "string") return `up to ${spec.max_length} characters`;
  return "";
}

/** The value a field holds, typed as the setting declares; text that is no number goes as text (the API says why). */
function read(field) {
  const { type } = field.dataset;
  if (type === "boolean") return field.checked;
  if (type === "integer" || type === "number") {
    const text = field.value.trim();
    return text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
  }
  return field.value;
}

function renderPackage(pkg) {
  const form = el("form", { class: "package card", id: `package-${pkg.name}`, novalidate: true,
    dataset: { package: pkg.name }, "aria-labelledby": `package-${pkg.name}-title` });
  const state = el("span", { class: "change-state", role: "status", dataset: { state: pkg.change ? pkg.change.state : "" } },
    changeText(pkg.change));
  const grid = el("div", { class: "settings" });
  for (const spec of pkg.settings) {
    const id = fieldId(pkg, spec);
    grid.append(el("label", { for: id }, spec.label || spec.key),
      el("div", {}, input(pkg, spec, pkg.values[spec.key]), el("span", { id: `${id}-hint`, class: "meta" }, ` ${hint(spec)}`)),
      el("span", { class: "field-error", id: `${id}-error`, dataset: { errorFor: spec.key } }));
  }
  form.append(el("h2", { id: `package-${pkg.name}-title` }, pkg.title || pkg.name),
    el("p", { class: "meta" }, [pkg.name, pkg.version ? `version ${pkg.version}` : null,
      pkg.reported_at ? `reported ${formatTime(pkg.reported_at)}` : null].filter(Boolean).join(" · ")),
    pkg.description ? el("p", {}, pkg.description) : null,
    grid,
    el("div", {}, el("button", { type: "submit", "aria-label": `Save ${pkg.title || pkg.name}` }, "Save"), state));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(form, pkg).catch((err) => showProblem(err));
  });
  return form;
}

function showProblem(err) {
  problem.hidden = false;
  problem.textContent = err instanceof ApiError && err.status === 404
    ? "This NAS is not one of your devices (or was unpaired)." : `Something went wrong: ${err.message}`;
}

async function save(form, pkg) {
  for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
  const changed = {};
  for (const field of form.querySelectorAll("[data-key]")) {
    const value = read(field);
    if (value !== pkg.values[field.dataset.key]) changed[field.dataset.key] = value;
  }
  const state = form.querySelector(".change-state");
  if (Object.keys(changed).length === 0) {
    state.dataset.state = "";
    state.textContent = "Nothing changed.";
    return;
  }
  let answer;
  try {
    answer = await api("PUT", `${base}/${encodeURIComponent(pkg.name)}/settings`, changed);
  } catch (err) {
    if (err instanceof ApiError && err.code === "invalid_settings") {
      for (const p of err.details.problems || []) {
        const span = form.querySelector(`[data-error-for="${CSS.escape(p.key || "")}"]`);
        if (span) span.textContent = p.message;
      }
      state.dataset.state = "failed";
      state.textContent = "Not sent: fix the values marked above.";
      return;
    }
    throw err;
  }
  await follow(form, answer);
}

/** Poll the package until its change is no longer pending, then show the values the NAS confirmed. */
async function follow(form, pkg) {
  const state = form.querySelector(".change-state");
  state.dataset.state = pkg.change.state;
  state.textContent = changeText(pkg.change);
  let current = pkg;
  while (current.change && current.change.state === "pending") {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    current = await api("GET", `${base}/${encodeURIComponent(pkg.name)}`);
  }
  const fresh = renderPackage(current);
  form.replaceWith(fresh);
  announce(`${current.title || current.name}: ${changeText(current.change)}`);
}

async function load() {
  try {
    const devices = await listAll("/devices/v1/devices");
    const nas = devices.find((d) => d.device_id === deviceId);
    if (nas) document.getElementById("nas-name").textContent = nas.name || nas.serial;
    const packages = await listAll(base);
    list.replaceChildren(...packages.map(renderPackage));
    none.hidden = packages.length > 0;
    for (const pkg of packages) {
      if (pkg.change && pkg.change.state === "pending") follow(document.getElementById(`package-${pkg.name}`), pkg).catch(showProblem);
    }
  } catch (err) {
    showProblem(err);
  } finally {
    list.setAttribute("aria-busy", "false");
    list.dataset.ready = "true";
  }
}

load();
