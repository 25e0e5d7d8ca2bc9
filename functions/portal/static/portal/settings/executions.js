// App activity: the caller's executions (GET /apps/v1/executions, newest first), dead letters retried with one click.
import { announce, api, clearError, el, formatTime, listAll, showError } from "../common.js";

const list = document.getElementById("execution-list");
const none = document.getElementById("no-executions");
const older = document.getElementById("older");
const appFilter = document.getElementById("filter-app");
const stateFilter = document.getElementById("filter-state");
const params = new URLSearchParams(window.location.search);
let nextCursor = null;

function renderExecution(x) {
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
    await api("POST", `/apps/v1/executions/${encodeURIComponent(x.id)}/retry`);
    announce(`${x.app}.${x.action} will run again`);
  } catch (err) {
    showError(err, "Could not retry");
  }
  await load();
}

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
older.addEventListener("click", () => load(true).catch((err) => showError(err, "Could not load older activity")));

async function start() {
  const apps = await listAll("/apps/v1/apps");
  const names = new Set(apps.map((a) => a.name));
  if (params.get("app")) names.add(params.get("app"));
  appFilter.append(...[...names].sort().map((n) => el("option", { value: n }, n)));
  appFilter.value = params.get("app") || "";
  stateFilter.value = params.get("state") || "";
  await load();
}

start().catch((err) => showError(err, "Could not load the activity"));
