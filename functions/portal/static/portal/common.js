// Shared by every page: JSON API calls with the session's CSRF token, DOM building without innerHTML,
// and the status/alert live regions. No framework, no build step.

const csrfMeta = document.querySelector('meta[name="csrf-token"]');

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `The server answered ${status}`);
    this.status = status;
    this.code = (error && error.code) || `http_${status}`;
    this.details = (error && error.details) || {};
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * fetch that waits out rate limiting: a big folder upload makes many requests, and 429 + Retry-After
 * (or a 503 while a dependency restarts) is a reason to pause, not to fail the upload.
 */
export async function fetchPolitely(url, init, attempts = 6) {
  for (let attempt = 1; ; attempt += 1) {
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (err) {
      // a lost connection may have lost the answer, not the request: repeat only what is safe to repeat
      const idempotent = ["GET", "HEAD", "PUT"].includes((init && init.method) || "GET");
      if (!idempotent || attempt >= attempts) {
        throw new ApiError(0, { code: "network", message: "Cannot reach PCloud; check your connection." });
      }
      await sleep(500 * attempt);
      continue;
    }
    if ((resp.status !== 429 && resp.status !== 503) || attempt >= attempts) return resp;
    const retryAfter = Number(resp.headers.get("Retry-After"));
    await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 60) * 1000 : 1000 * attempt);
  }
}

/** Call a same-origin JSON API with the SSO cookie; state-changing calls carry X-CSRF-Token. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfMeta ? csrfMeta.content : "";
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetchPolitely(path, init);
  if (resp.status === 401) {
    const data = await resp.json().catch(() => null);
    if (!data || !data.error || data.error.code !== "csrf_required") {
      window.location.assign(`/portal/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiError(401, data && data.error);
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data && data.error);
  return data;
}

/** Every item of a paged list ({items, next_cursor}). */
export async function listAll(path) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** el("a", {href: "/x", class: "y"}, "text", child) — text is always text, never parsed as HTML. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${n} ${n === 1 ? "byte" : "bytes"}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatTime(value) {
  if (!value) return "";
  const d = new Date(typeof value === "number" ? value * 1000 : value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

/** Polite announcement for screen readers and a visible status line. */
export function announce(message) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = message;
  region.classList.add("visible");
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => region.classList.remove("visible"), 6000);
}

/** An error the person must see; network and server messages become plain words. */
export function showError(err, prefix) {
  const region = document.getElementById("alert");
  const text = `${prefix ? `${prefix}: ` : ""}${err && err.message ? err.message : String(err)}`;
  if (region) {
    region.textContent = text;
    region.classList.add("visible");
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => region.classList.remove("visible"), 10000);
  }
  console.warn(text);
}

export function clearError() {
  const region = document.getElementById("alert");
  if (region) { region.textContent = ""; region.classList.remove("visible"); }
}

/** NFC + casefold-ish key, as the server compares names within a folder. */
export function nameKey(name) {
  return name.normalize("NFC").toLowerCase();
}
