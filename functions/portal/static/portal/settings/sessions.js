// Sessions and phones: GET /account/v1/sessions (sign one out: DELETE), phones from /devices/v1 (remove: DELETE).
import { announce, api, el, formatTime, listAll, showError } from "../common.js";

const sessionList = document.getElementById("session-list");
const phoneList = document.getElementById("phone-list");
const noPhones = document.getElementById("no-phones");

function describe(s) {
  if (s.kind === "browser") {
    const via = s.provider ? ` (signed in with ${s.provider[0].toUpperCase()}${s.provider.slice(1)})` : "";
    return [s.current ? "This browser" : "A browser", via].join("");
  }
  if (s.kind === "phone") return s.device_name ? `Phone app on ${s.device_name}` : "Phone app (no device registered)";
  return `App ${s.client_id}`;
}

function renderSession(s) {
  const details = [s.created_at ? `signed in ${formatTime(s.created_at)}` : null,
    s.last_used_at ? `last used ${formatTime(s.last_used_at)}` : null,
    s.apps.length ? `apps: ${s.apps.join(", ")}` : null,
    s.expires_at ? `until ${formatTime(s.expires_at)}` : null].filter(Boolean).join(" · ");
  const label = describe(s);
  return el("li", { class: `entry session ${s.kind}`, dataset: { sessionId: s.id, kind: s.kind, current: s.current } },
    el("span", { class: `icon icon-${s.kind === "phone" ? "phone" : "file"}`, "aria-hidden": "true" }),
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, label),
      s.current ? el("span", { class: "badge current" }, "current") : null,
      el("span", { class: "meta" }, details)),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "danger", "aria-label": `Sign out ${label}`, onclick: () => endSession(s, label) },
        "Sign out")));
}

async function endSession(s, label) {
  const warning = s.current ? "Sign out of this browser now?" : `Sign out ${label}? It must sign in again.`;
  if (!window.confirm(warning)) return;
  try {
    await api("DELETE", `/account/v1/sessions/${encodeURIComponent(s.id)}`);
    if (s.current) {
      window.location.assign("/portal/signin?signed_out=1");
      return;
    }
    announce(`${label} signed out`);
  } catch (err) {
    showError(err, `Could not sign out ${label}`);
  }
  await loadSessions();
}

async function loadSessions() {
  sessionList.setAttribute("aria-busy", "true");
  const page = await api("GET", "/account/v1/sessions");
  sessionList.replaceChildren(...page.items.map(renderSession));
  sessionList.setAttribute("aria-busy", "false");
  sessionList.dataset.ready = "true";
}

function renderPhone(d) {
  const label = d.name || d.device_id;
  return el("li", { class: "entry device phone", dataset: { deviceId: d.device_id } },
    el("span", { class: "icon icon-phone", "aria-hidden": "true" }),
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, label),
      el("span", { class: "meta" }, [d.paired_at ? `registered ${formatTime(d.paired_at)}` : null,
        d.last_seen ? `last seen ${formatTime(d.last_seen)}` : null].filter(Boolean).join(" · "))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "danger", "aria-label": `Remove ${label}`, onclick: () => removePhone(d, label) },
        "Remove")));
}

async function removePhone(d, label) {
  if (!window.confirm(`Remove ${label}? It gets no more pushes and must sign in again.`)) return;
  try {
    await api("DELETE", `/devices/v1/devices/${encodeURIComponent(d.device_id)}`);
    announce(`${label} removed`);
  } catch (err) {
    showError(err, `Could not remove ${label}`);
  }
  await Promise.all([loadPhones(), loadSessions()]);
}

async function loadPhones() {
  phoneList.setAttribute("aria-busy", "true");
  const phones = (await listAll("/devices/v1/devices")).filter((d) => d.kind === "phone");
  phoneList.replaceChildren(...phones.map(renderPhone));
  noPhones.hidden = phones.length > 0;
  phoneList.setAttribute("aria-busy", "false");
  phoneList.dataset.ready = "true";
}

loadSessions().catch((err) => showError(err, "Could not load your sessions"));
loadPhones().catch((err) => showError(err, "Could not load your phones"));
