// Notifications: push rules (GET/PUT /notify/v1/rules) and webhooks (/notify/v1/webhooks: add, ping, rotate the
// secret, enable/disable, delete, delivery log); for admins, the networks webhooks may reach
// (GET/PUT /notify/v1/admin/allowed-networks).
import { announce, api, clearError, el, formatTime, listAll, showError } from "../common.js";

const ruleList = document.getElementById("rule-list");
const rulesForm = document.getElementById("rules-form");
const hookList = document.getElementById("hook-list");
const noHooks = document.getElementById("no-hooks");
const hookForm = document.getElementById("hook-form");
const hookEvents = document.getElementById("hook-events");
const secretBox = document.getElementById("secret-box");
const logSection = document.getElementById("log-section");
const logBody = document.querySelector("#delivery-log tbody");
const logMore = document.getElementById("log-more");
let eventTypes = [];
let logState = null;

function checkbox(name, value, label, checked) {
  const id = `${name}-${value.replaceAll(".", "-")}`;
  return el("div", { class: "check" },
    el("input", { type: "checkbox", id, name, value, checked: checked ? "checked" : null }),
    el("label", { for: id }, label));
}

async function loadRules() {
  const rules = await api("GET", "/notify/v1/rules");
  eventTypes = rules.event_types;
  ruleList.replaceChildren(...eventTypes.map((t) => checkbox("push", t.type, `${t.description} (${t.type})`, t.push)));
  hookEvents.replaceChildren(checkbox("events", "*", "Every event", false),
    ...eventTypes.map((t) => checkbox("events", t.type, t.type, t.type === "devices.device.offline")));
  rulesForm.setAttribute("aria-busy", "false");
  rulesForm.dataset.ready = "true";
  // both buttons ship disabled: a click before this module ran would submit natively (the URL in a reload), and
  // one before the rules came would save an empty list
  document.getElementById("rules-save").disabled = false;
  document.getElementById("hook-add").disabled = false;
}

rulesForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const push = [...ruleList.querySelectorAll("input:checked")].map((i) => i.value);
  try {
    await api("PUT", "/notify/v1/rules", { push });
    announce("Notification rules saved");
  } catch (err) {
    showError(err, "Could not save the rules");
  }
});

function showSecret(secret) {
  document.getElementById("secret-value").textContent = secret;
  secretBox.hidden = false;
}

function renderHook(h) {
  const meta = [h.events.join(", "), h.last_attempt_at ? `last attempt ${formatTime(h.last_attempt_at)}` : null,
    h.last_status ? `answered ${h.last_status}` : h.last_error, h.consecutive_failures ? `${h.consecutive_failures} failures in a row` : null,
    h.state === "disabled" ? `disabled: ${h.disabled_reason}` : null].filter(Boolean).join(" · ");
  const act = (label, fn, cls) => el("button", { type: "button", class: cls || "secondary",
    "aria-label": `${label} ${h.url}`, onclick: fn }, label);
  return el("li", { class: `entry webhook ${h.state}`, dataset: { hookId: h.id, state: h.state } },
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, h.url),
      el("span", { class: `badge state-${h.state}` }, h.state),
      el("span", { class: "meta" }, meta)),
    el("div", { class: "actions" },
      act("Ping", () => ping(h)),
      act("Deliveries", () => openLog(h, null)),
      act("New secret", () => rotate(h)),
      act(h.state === "enabled" ? "Disable" : "Enable", () => toggle(h)),
      act("Delete", () => remove(h), "danger")));
}

async function loadHooks() {
  hookList.setAttribute("aria-busy", "true");
  const hooks = await listAll("/notify/v1/webhooks");
  hookList.replaceChildren(...hooks.map(renderHook));
  noHooks.hidden = hooks.length > 0;
  hookList.setAttribute("aria-busy", "false");
  hookList.dataset.ready = "true";
}

hookForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const url = document.getElementById("hook-url").value.trim();
  let events = [...hookEvents.querySelectorAll("input:checked")].map((i) => i.value);
  if (events.includes("*")) events = ["*"];
  try {
    const made = await api("POST", "/notify/v1/webhooks", { url, events });
    showSecret(made.secret);
    hookForm.reset();
    announce(`Webhook ${made.url} added`);
  } catch (err) {
    showError(err, "Could not add the webhook");
  }
  await loadHooks();
});

async function ping(h) {
  try {
    const d = await api("POST", `/notify/v1/webhooks/${encodeURIComponent(h.id)}/ping`);
    announce(d.state === "delivered" ? `Ping delivered (${d.last.status})` : `Ping failed: ${d.last && d.last.error}`);
  } catch (err) {
    showError(err, "Could not ping");
  }
  await loadHooks();
  if (logState && logState.hook.id === h.id) await openLog(h, null);
}

async function rotate(h) {
  if (!window.confirm(`A new secret for ${h.url}? The old one keeps signing for a day.`)) return;
  try {
    showSecret((await api("POST", `/notify/v1/webhooks/${encodeURIComponent(h.id)}/rotate-secret`, {})).secret);
  } catch (err) {
    showError(err, "Could not rotate the secret");
  }
}

async function toggle(h) {
  try {
    await api("PATCH", `/notify/v1/webhooks/${encodeURIComponent(h.id)}`, { enabled: h.state !== "enabled" });
    announce(`Webhook ${h.state === "enabled" ? "disabled" : "enabled"}`);
  } catch (err) {
    showError(err, "Could not change the webhook");
  }
  await loadHooks();
}

async function remove(h) {
  if (!window.confirm(`Delete the webhook ${h.url} and its delivery log?`)) return;
  try {
    await api("DELETE", `/notify/v1/webhooks/${encodeURIComponent(h.id)}`);
    announce("Webhook deleted");
    if (logState && logState.hook.id === h.id) logSection.hidden = true;
  } catch (err) {
    showError(err, "Could not delete the webhook");
  }
  await loadHooks();
}

function renderDelivery(d) {
  let last = d.last ? (d.last.status ? `${d.last.status}` : d.last.error) || "" : "";
  if (d.last && d.last.note) last += ` — ${d.last.note}`;  // Retry-After honoured or not, 410 Gone
  return el("tr", { class: `delivery state-${d.state}`, dataset: { deliveryId: d.id, state: d.state } },
    el("td", {}, formatTime(d.created_at)), el("td", {}, d.event_type), el("td", {}, d.state),
    el("td", {}, String(d.attempts)), el("td", {}, last));
}

async function openLog(h, cursor) {
  const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
  try {
    const page = await api("GET", `/notify/v1/webhooks/${encodeURIComponent(h.id)}/deliveries${q}`);
    const rows = page.items.map(renderDelivery);
    if (cursor) logBody.append(...rows); else logBody.replaceChildren(...rows);
    logState = { hook: h, next: page.next_cursor };
    logMore.hidden = !page.next_cursor;
    document.getElementById("log-url").textContent = h.url;
    logSection.hidden = false;
    logSection.dataset.ready = "true";
  } catch (err) {
    showError(err, "Could not load the deliveries");
  }
}

logMore.addEventListener("click", () => logState && openLog(logState.hook, logState.next));

// admins only: the section is in the page only for them (the API refuses members anyway)
const NETS = "/notify/v1/admin/allowed-networks";
const netSection = document.getElementById("nets-section");
const netList = document.getElementById("net-list");
const netForm = document.getElementById("net-form");
let allowed = [];

function renderNets(n) {
  allowed = n.networks;
  netList.replaceChildren(...allowed.map((net) => el("li", { class: "entry network", dataset: { network: net } },
    el("div", { class: "entry-main" }, el("span", { class: "name" }, net)),
    el("div", { class: "actions" }, el("button", { type: "button", class: "danger", "aria-label": `Remove ${net}`,
      onclick: () => saveNets(allowed.filter((x) => x !== net), `${net} is no longer allowed`) }, "Remove")))));
  document.getElementById("no-nets").hidden = allowed.length > 0;
  document.getElementById("net-settings").hidden = n.from_settings.length === 0;
  document.getElementById("net-settings-list").textContent = n.from_settings.join(", ");
  netList.setAttribute("aria-busy", "false");
  netList.dataset.ready = "true";
}

async function saveNets(networks, message) {
  clearError();
  try {
    renderNets(await api("PUT", NETS, { networks }));
    announce(message);
    return true;
  } catch (err) {
    showError(err, "Could not change the allowed networks");
    return false;
  }
}

async function loadNets() {
  if (!netSection) return;
  renderNets(await api("GET", NETS));
  netForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("net-add");
    const net = input.value.trim();
    if (net && await saveNets([...allowed, net], `${net} allowed`)) netForm.reset();
  });
  document.getElementById("net-allow").disabled = false;  // shipped disabled, as every form's button
}

Promise.all([loadRules(), loadHooks(), loadNets()])
  .catch((err) => showError(err, "Could not load your notification settings"));
