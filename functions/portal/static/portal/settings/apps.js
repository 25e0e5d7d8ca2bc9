// Apps: catalog and archive install (admins), review of requested permissions, approve/reject/uninstall (admins),
// each user's settings form (from the app's settings_schema), replay of past events with its progress.
import { ApiError, announce, api, clearError, el, fetchPolitely, listAll, showError } from "../common.js";

const list = document.getElementById("app-list");
const none = document.getElementById("no-apps");
const isAdmin = list.dataset.admin === "true";
const catalogList = document.getElementById("catalog-list");
const polls = new Map(); // replay id → timer
let refreshTimer = null;

// --- what an app asks for, in words --------------------------------------------------------------------------
function requestLines(req) {
  const lines = [];
  for (const action of req.actions || []) lines.push(`Run ${action}`);
  for (const [type, kinds] of Object.entries(req.types || {})) lines.push(`${kinds.join(", ")} ${type} items`);
  for (const t of req.triggers || []) {
    const where = Object.entries(t.where || {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ");
    lines.push(`Run ${t.run} on every ${t.event}${where ? ` where ${where}` : ""}`);
  }
  if ((req.schema_types || []).length) lines.push(`Add the types ${req.schema_types.join(", ")} to your graph`);
  if (req.web) lines.push("Show its own pages inside PCloud");
  return lines.length ? lines : ["Nothing beyond its own actions"];
}

function requestsBlock(title, req) {
  return el("div", { class: "requests-block" }, el("strong", {}, title),
    el("ul", { class: "requests" }, requestLines(req).map((line) => el("li", {}, line))));
}

// --- settings form from JSON Schema ---------------------------------------------------------------------------
function settingsForm(app, values) {
  const props = (app.settings_schema && app.settings_schema.properties) || {};
  const form = el("form", { class: "settings-form", dataset: { app: app.name } });
  const readers = [];
  for (const [key, prop] of Object.entries(props)) {
    const id = `setting-${app.name}-${key}`;
    const title = prop.title || key.replace(/_/g, " ");
    const help = prop.description ? el("span", { class: "meta" }, prop.description) : null;
    const value = values[key];
    let input;
    if (prop.type === "boolean") {
      input = el("input", { type: "checkbox", id, name: key, checked: Boolean(value) });
      form.append(el("div", { class: "field check" }, input, el("label", { for: id }, title), help));
      readers.push(() => [key, input.checked]);
      continue;
    }
    if (Array.isArray(prop.enum)) {
      input = el("select", { id, name: key }, prop.enum.map((v) => el("option", { value: v, selected: v === value }, v)));
      readers.push(() => [key, input.value]);
    } else if (prop.type === "integer" || prop.type === "number") {
      input = el("input", { type: "number", id, name: key, value: value ?? "", min: prop.minimum, max: prop.maximum,
        step: prop.type === "integer" ? 1 : "any" });
      readers.push(() => [key, input.value === "" ? undefined : Number(input.value)]);
    } else if (prop.type === "array" && (prop.items || {}).type === "string") {
      input = el("textarea", { id, name: key, rows: 3 }, (value || []).join("\n"));
      readers.push(() => [key, input.value.split("\n").map((s) => s.trim()).filter(Boolean)]);
    } else if (prop.type === "string") {
      input = el("input", { type: "text", id, name: key, value: value ?? "" });
      readers.push(() => [key, input.value]);
    } else {
      input = el("textarea", { id, name: key, rows: 3 }, JSON.stringify(value ?? null, null, 2));
      readers.push(() => [key, JSON.parse(input.value || "null")]);
    }
    form.append(el("div", { class: "field" }, el("label", { for: id }, title), input, help));
  }
  const problems = el("ul", { class: "problems", "aria-live": "polite" });
  form.append(problems, el("div", {}, el("button", { type: "submit" }, "Save settings")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problems.replaceChildren();
    let body;
    try {
      body = Object.fromEntries(readers.map((read) => read()).filter(([, v]) => v !== undefined));
    } catch (err) {
      problems.append(el("li", {}, `Not valid JSON: ${err.message}`));
      return;
    }
    try {
      await api("PUT", `/apps/v1/apps/${encodeURIComponent(app.name)}/settings`, body);
      announce(`Settings of ${app.title || app.name} saved`);
    } catch (err) {
      problems.replaceChildren(...(err.details.problems || [err.message]).map((p) => el("li", {}, p)));
      showError(err, "Could not save the settings");
    }
  });
  return form;
}

// --- replay progress --------------------------------------------------------------------------------------------
function replayBox(app, replayId, label) {
  const bar = el("progress", { max: 1, value: 0, "aria-label": label });
  const text = el("span", { class: "meta replay-text" }, "Starting…");
  const box = el("div", { class: "replay", dataset: { replayId, state: "running" } }, el("span", {}, label), bar, text);
  const tick = async () => {
    try {
      const r = await api("GET", `/apps/v1/replays/${encodeURIComponent(replayId)}`);
      box.dataset.state = r.state;
      bar.max = Math.max(r.total, 1);
      bar.value = r.state === "done" ? bar.max : r.done;
      text.textContent = r.state === "running" ? `${r.done} of ${r.total || "?"} past events`
        : r.state === "done" ? `Done: ${r.done} past events processed` : `Replay ${r.state}`;
      if (r.state !== "running") { polls.delete(replayId); return; }
    } catch (err) {
      text.textContent = `Progress unavailable: ${err.message}`;
      if (err instanceof ApiError && err.status === 404) { polls.delete(replayId); return; }
    }
    polls.set(replayId, setTimeout(tick, 1000));
  };
  clearTimeout(polls.get(replayId));
  tick();
  return box;
}

// --- one app -----------------------------------------------------------------------------------------------------
function lifecycleButtons(app) {
  if (!isAdmin) return [];
  const buttons = [];
  const pending = app.state === "pending_approval" || app.state === "failed" || app.upgrade;
  if (pending) {
    const replay = el("input", { type: "checkbox", id: `replay-${app.name}` });
    buttons.push(el("span", { class: "check" }, replay, el("label", { for: `replay-${app.name}` }, " also process past events")));
    buttons.push(el("button", { type: "button", onclick: () => lifecycle(app, "approve", { replay: replay.checked }) },
      app.upgrade ? `Approve ${app.upgrade.version}` : "Approve"));
  }
  if (app.state === "pending_approval" || app.upgrade) {
    buttons.push(el("button", { type: "button", class: "secondary", onclick: () => lifecycle(app, "reject") }, "Reject"));
  }
  buttons.push(el("button", { type: "button", class: "danger", onclick: () => uninstall(app) }, "Uninstall"));
  return buttons;
}

async function lifecycle(app, step, body) {
  clearError();
  try {
    await api("POST", `/apps/v1/apps/${encodeURIComponent(app.name)}/${step}`, body);
    announce(step === "approve" ? `${app.title || app.name} approved; installing…` : `${app.title || app.name} rejected`);
  } catch (err) {
    showError(err, `Could not ${step} ${app.name}`);
  }
  await loadAll();
}

async function uninstall(app) {
  if (!window.confirm(`Uninstall ${app.title || app.name}? It stops at once for everyone.`)) return;
  const purge = window.confirm("Also delete everything it created (its items in everyone's graph)? Cancel keeps them.");
  try {
    await api("DELETE", `/apps/v1/apps/${encodeURIComponent(app.name)}${purge ? "?purge=true" : ""}`);
    announce(`${app.title || app.name} uninstalled`);
  } catch (err) {
    showError(err, `Could not uninstall ${app.name}`);
  }
  await loadAll();
}

async function renderApp(app) {
  const state = app.state;
  const card = el("section", { class: "card app-card", dataset: { app: app.name, state }, "aria-label": app.title || app.name },
    el("div", { class: "app-head" },
      el("h3", {}, app.title || app.name),
      el("span", { class: "meta" }, `${app.name} ${app.version}`),
      el("span", { class: `badge state-${state}` }, state.replace("_", " "))),
    app.description ? el("p", { class: "muted" }, app.description) : null,
    app.error ? el("p", { class: "error-line" }, `Install failed: ${typeof app.error === "string" ? app.error : JSON.stringify(app.error)}`) : null,
    state === "installing" && app.progress ? el("p", { class: "meta" }, `Installing: ${app.progress.step || "…"}`) : null,
    app.granted ? requestsBlock("Approved to:", app.granted) : requestsBlock("Asks to:", app.requests),
    app.upgrade ? requestsBlock(`Version ${app.upgrade.version} waits for approval and asks to:`, app.upgrade.requests) : null,
    el("div", { class: "actions" }, lifecycleButtons(app)));
  if (isAdmin && app.replay_id) card.append(replayBox(app, app.replay_id, "Past events of every user"));
  if (state === "active") {
    const links = el("p", { class: "actions" },
      el("a", { class: "button secondary", href: `/portal/settings/executions?app=${encodeURIComponent(app.name)}` }, "Activity"),
      app.granted && app.granted.web ? el("a", { class: "button secondary", href: `/apps/${encodeURIComponent(app.name)}/` }, "Open") : null,
      el("button", { type: "button", class: "secondary", onclick: () => startReplay(app, card) }, "Process my past events"));
    card.append(links);
    try {
      const dead = await api("GET", `/apps/v1/executions?app=${encodeURIComponent(app.name)}&state=dead&limit=1`);
      if (dead.items.length) {
        links.prepend(el("a", { class: "button danger dead-letters",
          href: `/portal/settings/executions?app=${encodeURIComponent(app.name)}&state=dead` }, "Dead letters to look at"));
      }
    } catch (err) {
      // the activity link still leads there; a failed hint is not worth an alert
    }
    try {
      const values = await api("GET", `/apps/v1/apps/${encodeURIComponent(app.name)}/settings`);
      card.append(el("h4", {}, "Your settings"), settingsForm(app, values));
    } catch (err) {
      card.append(el("p", { class: "error-line" }, `Settings unavailable: ${err.message}`));
    }
  }
  return card;
}

async function startReplay(app, card) {
  try {
    const { replay_id: id } = await api("POST", `/apps/v1/apps/${encodeURIComponent(app.name)}/replay`, {});
    card.append(replayBox(app, id, "Your past events"));
  } catch (err) {
    showError(err, `Could not start processing past events for ${app.name}`);
  }
}

async function loadApps() {
  list.setAttribute("aria-busy", "true");
  const apps = await listAll("/apps/v1/apps");
  for (const timer of polls.values()) clearTimeout(timer);
  polls.clear();
  list.replaceChildren(...(await Promise.all(apps.map(renderApp))));
  none.hidden = apps.length > 0;
  list.setAttribute("aria-busy", "false");
  list.dataset.ready = "true";
  clearTimeout(refreshTimer);
  if (apps.some((a) => a.state === "installing")) refreshTimer = setTimeout(() => loadAll().catch(() => {}), 2000);
}

// --- install (admins) ----------------------------------------------------------------------------------------------
async function loadCatalog() {
  if (!catalogList) return;
  const { items } = await api("GET", "/apps/v1/catalog");
  catalogList.replaceChildren(...items.map((c) => el("li", { class: "entry catalog-entry", dataset: { name: c.name } },
    el("div", { class: "entry-main" }, el("span", { class: "name" }, c.title || c.name),
      el("span", { class: "meta" }, `${c.name} ${c.version}${c.installed ? ` · ${c.installed} installed` : ""}`),
      c.description ? el("span", { class: "meta" }, c.description) : null),
    el("div", { class: "actions" }, c.installed === c.version ? el("span", { class: "badge state-active" }, "installed")
      : el("button", { type: "button", onclick: () => install(c) }, c.installed ? `Upgrade to ${c.version}` : "Install")))));
  catalogList.setAttribute("aria-busy", "false");
  catalogList.dataset.ready = "true";
}

async function install(c) {
  clearError();
  try {
    await api("POST", "/apps/v1/apps", { catalog: c.name });
    announce(`${c.title || c.name} is waiting for your review below`);
  } catch (err) {
    showError(err, `Could not install ${c.name}`);
  }
  await loadAll();
}

const archiveForm = document.getElementById("archive-form");
if (archiveForm) {
  archiveForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const problems = document.getElementById("archive-problems");
    problems.replaceChildren();
    const file = document.getElementById("archive-file").files[0];
    if (!file) return;
    const type = file.name.toLowerCase().endsWith(".zip") ? "application/zip" : "application/gzip";
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const resp = await fetchPolitely("/apps/v1/apps", { method: "POST", body: file, credentials: "same-origin",
      headers: { "Content-Type": type, Accept: "application/json", "X-CSRF-Token": csrf } });
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = new ApiError(resp.status, data && data.error);
      problems.replaceChildren(...(err.details.problems || [err.message]).map((p) => el("li", {}, p)));
      showError(err, "The archive was refused");
      return;
    }
    archiveForm.reset();
    announce(`${data.name} ${data.version} is waiting for your review below`);
    await loadAll();
  });
  // the template ships the button disabled: a click before this module ran would submit the form natively
  document.getElementById("archive-upload").disabled = false;
}

async function loadAll() {
  await Promise.all([loadApps(), loadCatalog()]);
}

loadAll().catch((err) => showError(err, "Could not load the apps"));
