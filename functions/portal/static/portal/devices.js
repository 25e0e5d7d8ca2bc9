// Devices: the list with online state, unpairing, and "Pair a NAS" with live status. Both follow the event
// stream (live.js: devices.device.*, pairing.session.*); the pairing long-poll (CONTRACT §4) is the fallback.
import { ApiError, announce, api, el, formatTime, listAll, showError } from "./common.js";
import { debounce, isOpen, onEvent, onReset } from "./live.js";

const list = document.getElementById("device-list");
const none = document.getElementById("no-devices");
const form = document.getElementById("pair-form");
const statusBox = document.getElementById("pair-status");
const statusText = document.getElementById("pair-status-text");
const startButton = document.getElementById("pair-start");
const WAIT_SECONDS = 25;
const FINAL = new Set(["done", "failed", "expired"]);

const STATUS_TEXT = {
  start: (s) => `Contacting ${s.serial}…`,
  waiting: () => "Press the button on your NAS now (its light is blinking).",
  done: (s) => `Paired ${s.serial}. It is now in your devices.`,
  failed: (s) => `Pairing failed: ${s.reason === "device_offline"
    ? "the NAS did not answer. Is it switched on and connected to the internet?" : s.reason || "the NAS refused"}`,
  expired: () => "Nobody pressed the button in time. Start again when you are next to the NAS.",
};

async function loadDevices() {
  list.setAttribute("aria-busy", "true");
  const devices = await listAll("/devices/v1/devices");
  list.replaceChildren(...devices.map(renderDevice));
  none.hidden = devices.length > 0;
  list.setAttribute("aria-busy", "false");
  list.dataset.ready = "true";
}

function renderDevice(d) {
  const online = d.online ? "online" : "offline";
  const details = [d.kind === "nas" ? "NAS" : "Phone", d.serial, d.last_seen ? `last seen ${formatTime(d.last_seen)}` : null,
    d.paired_at ? `paired ${formatTime(d.paired_at)}` : null].filter(Boolean).join(" · ");
  return el("li", { class: `entry device ${d.kind}`, dataset: { deviceId: d.device_id, serial: d.serial || "", online } },
    el("span", { class: `icon icon-${d.kind}`, "aria-hidden": "true" }),
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, d.name || d.serial || d.device_id),
      el("span", { class: `badge ${online}` }, online),
      el("span", { class: "meta" }, details)),
    el("div", { class: "actions" },
      d.kind === "nas" ? el("a", { class: "button", href: `/portal/devices/${encodeURIComponent(d.device_id)}/packages`,
        "aria-label": `Packages on ${d.name || d.serial}` }, "Packages") : null,
      el("button", { type: "button", class: "danger", "aria-label": `Unpair ${d.name || d.serial}`,
        onclick: () => unpair(d) }, d.kind === "nas" ? "Unpair" : "Remove")));
}

async function unpair(d) {
  const label = d.name || d.serial || "this device";
  if (!window.confirm(`Unpair ${label}? It will no longer sync with your account.`)) return;
  try {
    await api("DELETE", `/devices/v1/devices/${encodeURIComponent(d.device_id)}`);
    announce(`${label} unpaired`);
  } catch (err) {
    showError(err, `Could not unpair ${label}`);
  }
  await loadDevices();
}

function showStatus(session) {
  statusBox.hidden = false;
  statusBox.dataset.status = session.status;
  const text = STATUS_TEXT[session.status];
  statusText.textContent = text ? text(session) : session.status;
}

const RANK = { start: 0, waiting: 1, confirming: 2, done: 3, failed: 3, expired: 3 };
const pairingSeen = new Map();  // session id → latest status the stream told (it may beat the POST's answer)
const pairingWatchers = new Map();

onEvent("pairing.session.", (event) => {
  const update = event.data;
  const seen = pairingSeen.get(update.session_id);
  if (seen && RANK[seen.status] >= RANK[update.status]) return;
  pairingSeen.set(update.session_id, update);
  const watcher = pairingWatchers.get(update.session_id);
  if (watcher) watcher(update);
});

/** Follow a pairing on the event stream; resolves with the final session, or null if the stream went away. */
function followLive(session) {
  return new Promise((resolve) => {
    let current = session;
    const take = (update) => {
      if (RANK[update.status] <= RANK[current.status]) return;
      current = { ...current, ...update };
      if (!FINAL.has(current.status)) {
        showStatus(current);
        return;
      }
      pairingWatchers.delete(session.session_id);
      clearInterval(guard);
      // the event names the outcome; the session says why (a failure's reason)
      api("GET", `/pairing/v1/sessions/${encodeURIComponent(session.session_id)}`)
        .then((full) => ({ ...current, ...full }), () => current)
        .then((final) => {
          showStatus(final);
          resolve(final);
        });
    };
    pairingWatchers.set(session.session_id, take);
    if (pairingSeen.has(session.session_id)) take(pairingSeen.get(session.session_id));
    // the stream went down mid-pairing: hand over to the long-poll
    const guard = setInterval(() => {
      if (!isOpen()) {
        pairingWatchers.delete(session.session_id);
        clearInterval(guard);
        resolve(null);
      }
    }, 1000);
    // a change made before the stream listened (or a deadline the server applies when asked): look once
    api("GET", `/pairing/v1/sessions/${encodeURIComponent(session.session_id)}`).then(take, () => {});
  });
}

async function follow(session) {
  showStatus(session);
  let current = session;
  if (isOpen()) {
    const final = await followLive(session);
    if (final) {
      if (final.status === "done") await loadDevices();
      return;
    }
  }
  while (!FINAL.has(current.status)) {
    try {
      current = await api("GET", `/pairing/v1/sessions/${encodeURIComponent(current.session_id)}`
        + `?wait=${WAIT_SECONDS}&since=${encodeURIComponent(current.status)}`);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 0 || err.status >= 500)) {
        statusText.textContent = "Connection lost, retrying…";
        await new Promise((resolve) => setTimeout(resolve, 2000));
        continue;
      }
      throw err;
    }
    showStatus(current);
  }
  if (current.status === "done") await loadDevices();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const serial = document.getElementById("pair-serial").value.trim();
  if (!serial) return;
  startButton.disabled = true;
  try {
    const session = await api("POST", "/pairing/v1/sessions", { serial });
    await follow(session);
  } catch (err) {
    statusBox.hidden = false;
    statusBox.dataset.status = "error";
    if (err instanceof ApiError && err.status === 404) {
      statusText.textContent = `No NAS with serial ${serial} has ever connected. Check the serial and that it is online.`;
    } else if (err instanceof ApiError && err.code === "device_paired_elsewhere") {
      statusText.textContent = `${serial} is paired to another account. Unpair it there first.`;
    } else if (err instanceof ApiError && err.code === "pairing_in_progress") {
      statusText.textContent = `A pairing of ${serial} is already under way. Press the button on the NAS if it `
        + "is yours, or try again once that attempt has finished or expired.";
    } else {
      statusText.textContent = `Could not pair: ${err.message}`;
    }
  } finally {
    startButton.disabled = false;
  }
});
// the template ships the button disabled: a click before this module ran would submit the form natively (a page
// reload with ?serial=, no pairing); from here on the handler above takes it
startButton.disabled = false;

loadDevices().catch((err) => showError(err, "Could not load your devices"));
// online, offline, paired, unpaired: the event stream says when; poll only while it is down
const reload = debounce(() => loadDevices().catch(() => {}));
onEvent("devices.device.", reload);
onReset(reload);
setInterval(() => {
  if (document.visibilityState === "visible" && document.body.dataset.live === "down") reload();
}, 30000);
