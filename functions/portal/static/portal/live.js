// Live updates: the signed-in user's events from GET /events/v1/stream (Server-Sent Events), one stream per
// page. Pages subscribe by event type prefix instead of polling:
//   import { onEvent, onReset } from "./live.js";
//   onEvent("devices.device.", (event) => …);   // every event whose type starts with the prefix
//   onReset(() => reloadEverything());            // the stream lost track (the log no longer reaches back)
// Live notices (`event: live`, {type, data, live: true}) reach the same onEvent subscribers.
// EventSource resumes by itself with Last-Event-ID after a dropped connection; when the server refuses a
// stream (429 too many tabs, 503 while it restarts) we open a new one later, resuming from the last seq seen.
// document.body.dataset.live says "connecting", "open" or "down" (the page may fall back to polling then).

const STREAM = "/events/v1/stream";
const subscribers = [];
const resetHandlers = [];
const stateHandlers = [];
let source = null;
let lastSeq = null;
let retryMs = 2000;

function setState(value) {
  if (document.body.dataset.live === value) return;
  document.body.dataset.live = value;
  stateHandlers.forEach((fn) => fn(value));
}

function dispatch(message) {
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  if (typeof event.seq === "number") lastSeq = event.seq;
  for (const { prefix, handler } of subscribers) {
    if (event.type && event.type.startsWith(prefix)) {
      try {
        handler(event);
      } catch (err) {
        console.warn("live handler failed", err);
      }
    }
  }
}

function connect() {
  const url = lastSeq === null ? STREAM : `${STREAM}?after=${lastSeq}`;
  source = new EventSource(url, { withCredentials: true });
  setState("connecting");
  source.onopen = () => {
    retryMs = 2000;
    setState("open");
  };
  source.onmessage = dispatch;
  // live notices (`event: live`, no id): states that are a view, not history (app executions); not resumable,
  // so a page that shows them lists again when the stream reopens (onState)
  source.addEventListener("live", dispatch);
  source.addEventListener("reset", (message) => {
    const info = JSON.parse(message.data || "{}");
    if (typeof info.seq === "number") lastSeq = info.seq;
    resetHandlers.forEach((fn) => fn(info));
  });
  source.addEventListener("bye", (message) => {
    const info = JSON.parse(message.data || "{}");
    if (info.reason === "session_ended" || info.reason === "account_disabled") {
      source.close();
      window.location.assign(`/portal/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    // otherwise the server closes after this and EventSource reconnects with Last-Event-ID
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // refused (not a dropped connection, which EventSource retries itself): try again later
      setState("down");
      const wait = retryMs + Math.floor(Math.random() * 1000);
      retryMs = Math.min(retryMs * 2, 60000);
      setTimeout(connect, wait);
    } else {
      setState("connecting");
    }
  };
}

function ensureConnected() {
  if (source === null) connect();
}

/** Call `handler(event)` for each of the user's events whose type starts with `prefix`. */
export function onEvent(prefix, handler) {
  subscribers.push({ prefix, handler });
  ensureConnected();
}

/** Call `handler(info)` when the stream could not resume where it was (reload what the page shows). */
export function onReset(handler) {
  resetHandlers.push(handler);
  ensureConnected();
}

/** Call `handler(state)` when the stream opens ("open"), reconnects ("connecting") or is refused ("down"). */
export function onState(handler) {
  stateHandlers.push(handler);
}

export function isOpen() {
  return source !== null && source.readyState === EventSource.OPEN;
}

/** Coalesce a burst of events (a folder upload, a subtree trashed) into one call after `ms` of quiet. */
export function debounce(fn, ms = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
