// App activity: the caller's executions (GET /apps/v1/executions, newest first), dead letters retried with one click.
// States change live: the stream's `apps.execution.*` notices (not in the log, not resumable) update a row in place
// or add a new one; when the stream comes back after being away, the list is read once again. No polling.
import { announce, api, clearError, el, formatTime, listAll, showError } from "../common.js";
import { onEvent, onState } from "../live.js";

const list = document.getElementById("execution-list");
const none = document.getElementById("no-executions");
const older = document.getElementById("older");
const appFilter = document.getElementById("filter-app");
const stateFilter = document.getElementById("filter-state");
const filters = document.getElementById("execution-filters");
const params = new URLSearchParams(window.location.search);
const shown = new Map(); // execution id -> what its row shows
let nextCursor = null;

function renderExecution(x) {
  shown.set(x.id, x);
  const details = [x.trigger ? `trigger ${x.trigger}` : "called directly", `${x.attempts} attempt${x.attempts === 1 ? "" : "s"}`,
    `started ${formatTime(x.created_at)}`, x.finished_at ? `ended ${formatTime(x.finished_at)}` : null,
    x.next_attempt_at && x.state === "failed" ? `next try ${formatTime(x.next_attempt_at)}` : null].filter(Boolean).join(" · ");
  return el("li", { class: "entry execution", dataset: { executionId: x.id, state: x.state, app: x.app } },
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, `${x.app}.${x.action}`),
      el("span", { class: `badge state-${x.state}` }, x.state === "dead" ? "dead letter" : x.state.replace("_", " ")),
      el("span", { class: "meta" }, details),
      x.error ? el("span", { class: "error-line" }, typeof x.error === "string" ? x.error : JSON.stringify(x.error)) : null),
    el("div", { class: "actions" }, x.state === "dead"
      ? el("button", { type: "button", "aria-label": `Retry ${x.app}.${x.action}`, onclick: () => retry(x) }, "Retry") : null));
}

async function retry(x) {
  clearError();
  try {
    const answer = await api("POST", `/apps/v1/executions/${encodeURIComponent(x.id)}/retry`);
    announce(`${x.app}.${x.action} will run again`);
    if (answer && answer.execution) apply(answer.execution); // the live notices take it from here
  } catch (err) {
    showError(err, "Could not retry");
  }
}

function matches(x) {
  return (!appFilter.value || appFilter.value === x.app) && (!stateFilter.value || stateFilter.value === x.state);
}

/** A newer view of one execution: its row is replaced in place, or (new and matching the filters) added on top. */
function apply(update) {
  const before = shown.get(update.id);
  const row = list.querySelector(`li[data-execution-id="${CSS.escape(update.id)}"]`);
  if (row && before) {
    row.replaceWith(renderExecution({ ...before, ...update, error: update.error }));
  } else if (!row && update.created_at && matches(update)) {
    list.prepend(renderExecution(update));
    none.hidden = true;
  }
}

onEvent("apps.execution.", (event) => {
  if (event.live) apply(event.data);
  else if (event.type === "apps.execution.dead" && event.data && event.data.execution) {
    apply({ ...event.data.execution, state: "dead" }); // the durable dead letter in the log
  }
});

let wasOpen = false;
let away = false;
onState((state) => {
  if (state === "open") {
    if (wasOpen && away) load().catch((err) => showError(err, "Could not load the activity"));
    wasOpen = true;
    away = false;
  } else if (wasOpen) {
    away = true; // notices sent meanwhile are gone: list again when the stream is back
  }
});

function query(cursor) {
  const q = new URLSearchParams({ limit: "50" });
  if (appFilter.value) q.set("app", appFilter.value);
  if (stateFilter.value) q.set("state", stateFilter.value);
  if (cursor) q.set("cursor", cursor);
  return `/apps/v1/executions?${q}`;
}

async function load(more = false) {
  list.setAttribute("aria-busy", "true");
  const page = await api("GET", query(more ? nextCursor : null));
  if (!more) shown.clear();
  const rows = page.items.map(renderExecution);
  if (more) list.append(...rows); else list.replaceChildren(...rows);
  nextCursor = page.next_cursor;
  older.hidden = !nextCursor;
  none.hidden = list.children.length > 0;
  list.setAttribute("aria-busy", "false");
  list.dataset.ready = "true";
}

function syncUrl() {
  const q = new URLSearchParams();
  if (appFilter.value) q.set("app", appFilter.value);
  if (stateFilter.value) q.set("state", stateFilter.value);
  window.history.replaceState(null, "", `${window.location.pathname}${q.toString() ? `?${q}` : ""}`);
}

for (const select of [appFilter, stateFilter]) {
  select.addEventListener("change", () => { syncUrl(); load().catch((err) => showError(err, "Could not load the activity")); });
}
filters.addEventListener("submit", (event) => {
  event.preventDefault();
  syncUrl();
  load().catch((err) => showError(err, "Could not load the activity"));
});
older.addEventListener("click", () => load(true).catch((err) => showError(err, "Could not load older activity")));

async function start() {
  const apps = await listAll("/apps/v1/apps");
  const names = new Set(apps.map((a) => a.name));
  if (params.get("app")) names.add(params.get("app"));
  appFilter.append(...[...names].sort().map((n) => el("option", { value: n }, n)));
  appFilter.value = params.get("app") || "";
  stateFilter.value = params.get("state") || "";
  document.getElementById("filter-apply").disabled = false;
  await load();
}

start().catch((err) => showError(err, "Could not load the activity"));
