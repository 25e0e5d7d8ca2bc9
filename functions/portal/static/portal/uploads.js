// Uploads of the files page with the dedup protocol of CONTRACT §3: hash 4 MiB blocks in a Worker, negotiate a
// folder's files in one batch, send only the missing blocks, commit. Its bookkeeping is its own: the name
// indexes it builds are copies (the shown folder's from state.nodes, not from the listing a live re-list in
// files.js replaces), and its rows live in #uploads, which a re-list does not render.
import { ApiError, announce, api, clearError, el, fetchPolitely, formatBytes, listAll, nameKey,
  showError } from "./common.js";

const section = document.getElementById("files");
const uploadsList = document.getElementById("uploads");
const BLOCK_PARALLELISM = 3;
// Headers a page may not set itself (the browser adds them); presigned URLs may list Content-Length.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection", "expect", "keep-alive", "te",
  "trailer", "transfer-encoding", "upgrade", "cookie", "origin", "referer"]);

// set by initUploads: the page's state, and its remember/explain/refresh
let state;
let remember;
let explain;
let refresh;

let worker = null;
let hashJobs = 0;
const pendingHashes = new Map();

function hashFile(file, onProgress) {
  if (!worker) {
    worker = new Worker("/static/portal/hash-worker.js");
    worker.onmessage = (event) => {
      const job = pendingHashes.get(event.data.id);
      if (!job) return;
      if (event.data.type === "progress") job.onProgress(event.data.hashed);
      else {
        pendingHashes.delete(event.data.id);
        if (event.data.type === "done") job.resolve(event.data);
        else job.reject(new Error(`could not read the file: ${event.data.message}`));
      }
    };
  }
  hashJobs += 1;
  const id = hashJobs;
  return new Promise((resolve, reject) => {
    pendingHashes.set(id, { resolve, reject, onProgress });
    worker.postMessage({ id, file });
  });
}

function uploadRow(label, size) {
  const bar = el("progress", { max: Math.max(size, 1), value: 0, "aria-label": `Progress of ${label}` });
  const text = el("span", { class: "upload-text" }, "Waiting");
  const item = el("li", { class: "upload", dataset: { state: "waiting", name: label, size: String(size) } },
    el("span", { class: "name" }, label), bar, text);
  uploadsList.prepend(item);
  return {
    item,
    phase(stateName, message, value, max) {
      item.dataset.state = stateName;
      text.textContent = message;
      bar.max = Math.max(max, 1);
      bar.value = value;
    },
    done(size, sent, replaced) {
      const skipped = size - sent;
      item.dataset.state = "done";
      item.dataset.sentBytes = String(sent);
      item.dataset.skippedBytes = String(skipped);
      bar.max = Math.max(size, 1);
      bar.value = bar.max;
      text.textContent = skipped === size && size > 0
        ? `Done: ${formatBytes(size)}, all already stored, nothing sent (skipped ${formatBytes(skipped)} by dedup)`
        : `Done: sent ${formatBytes(sent)}, skipped ${formatBytes(skipped)} already stored (dedup)`;
      if (replaced) text.textContent += "; replaced the earlier version";
    },
    fail(err) {
      item.dataset.state = "error";
      text.textContent = `Failed: ${explain(err)}`;
      text.setAttribute("role", "alert");
    },
  };
}

async function sendBlock(missing, blob) {
  const headers = {};
  for (const [key, value] of Object.entries(missing.headers || {})) {
    if (!FORBIDDEN_HEADERS.has(key.toLowerCase())) headers[key] = value;
  }
  const sameOrigin = new URL(missing.url, location.href).origin === location.origin;
  const resp = await fetchPolitely(missing.url, { method: missing.method || "PUT", headers, body: blob,
    credentials: sameOrigin ? "same-origin" : "omit" });
  if (!resp.ok) {
    const data = await resp.json().catch(() => null);
    throw new ApiError(resp.status, data && data.error
      ? data.error : { code: "block_rejected", message: `the store refused a block (${resp.status})` });
  }
}

async function runPool(items, limit, fn) {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      await fn(item);
    }
  });
  await Promise.all(runners);
}

/** nameKey → live child of folderId. For the folder on screen (unless `fresh` is asked for) it is what the page
 *  knows, read at once: state.nodes keeps each node's newest revision from the listings, the page's own commits
 *  and the stream's events, so a re-list that lands mid-upload (or an older one dropped for a newer) cannot hide
 *  a file this page just committed from the next upload's name check. */
async function childrenIndex(folderId, fresh) {
  const index = new Map();
  const children = folderId === state.folder.id && !fresh ? [...state.nodes.values()]
    : await listAll(`/files/v1/nodes/${encodeURIComponent(folderId)}/children`);
  for (const node of children) {
    if (node.parent_id === folderId && !node.trashed_at) index.set(nameKey(node.name), node);
  }
  return index;
}

/** Hash a file and build its negotiation body for parentId; `siblings` (nameKey → node) says whether it
 *  overwrites a file. commit=if_complete: a file the server already holds is committed by the negotiation. */
async function prepareUpload(file, parentId, siblings, row) {
  row.phase("hashing", "Hashing…", 0, file.size);
  const { blocks, contentHash, webcrypto } = await hashFile(file, (hashed) =>
    row.phase("hashing", `Hashing ${Math.round((100 * hashed) / Math.max(file.size, 1))}%`, hashed, file.size));
  row.item.dataset.hasher = webcrypto ? "webcrypto" : "portable";
  const existing = siblings.get(nameKey(file.name));
  if (existing && existing.kind === "folder") {
    throw new ApiError(409, { code: "name_taken", message: `a folder named “${file.name}” is already there` });
  }
  const body = { parent_id: parentId, name: file.name, size: file.size,
    mtime: new Date(file.lastModified || Date.now()).toISOString(),
    blocks: blocks.map(({ hash, size }) => ({ hash, size })), commit: "if_complete" };
  if (existing) Object.assign(body, { node_id: existing.id, base_rev: existing.rev });
  return { blocks, contentHash, body };
}

/** Upload one file into parentId: negotiate (unless a batch did), send the missing blocks, commit. */
async function uploadFile(file, parentId, siblings, row, retried, prepared, negotiated) {
  const { blocks, contentHash, body } = prepared || await prepareUpload(file, parentId, siblings, row);
  const upload = negotiated || await api("POST", "/files/v1/uploads", body);
  const byHash = new Map();
  for (const block of blocks) if (!byHash.has(block.hash)) byHash.set(block.hash, block);
  const missing = upload.missing.filter((m, i, all) => all.findIndex((x) => x.hash === m.hash) === i);
  const toSend = missing.reduce((sum, m) => sum + byHash.get(m.hash).size, 0);
  let sent = 0;
  row.phase("uploading", `Sending ${formatBytes(toSend)} of ${formatBytes(file.size)} (the rest is already stored)`,
    0, toSend);
  await runPool(missing, BLOCK_PARALLELISM, async (m) => {
    const block = byHash.get(m.hash);
    await sendBlock(m, file.slice(block.offset, block.offset + block.size));
    sent += block.size;
    row.phase("uploading", `Sent ${formatBytes(sent)} of ${formatBytes(toSend)}`, sent, toSend);
  });
  let node = upload.committed ? upload.node : null;
  try {
    if (upload.commit_error) throw new ApiError(409, upload.commit_error);
    if (!node) node = await api("POST", `/files/v1/uploads/${encodeURIComponent(upload.upload_id)}/commit`);
  } catch (err) {
    // someone changed or created the same name meanwhile: the person asked for this file there, overwrite once
    if (!retried && err instanceof ApiError && (err.code === "stale_rev" || err.code === "name_taken"
        || err.code === "blocks_missing")) {
      const fresh = await childrenIndex(parentId, true).catch(() => null);
      if (err.code === "stale_rev" && err.details.node) siblings.set(nameKey(file.name), err.details.node);
      else if (fresh) for (const [k, v] of fresh) siblings.set(k, v);
      return uploadFile(file, parentId, siblings, row, true);
    }
    throw err;
  }
  if (node.content_hash && node.content_hash !== contentHash) {
    console.warn(`content hash differs for ${file.name}: ${node.content_hash} != ${contentHash}`);
  }
  siblings.set(nameKey(node.name), remember(node));
  row.done(file.size, sent, Boolean(body.node_id));
  return node;
}

/** A folder named `name` in parentId: created, or the existing one when the name is taken. */
async function ensureFolder(parentId, name, cache) {
  const key = `${parentId}/${nameKey(name)}`;
  if (cache.has(key)) return cache.get(key);
  let folder;
  try {
    folder = await api("POST", "/files/v1/folders", { parent_id: parentId, name });
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "name_taken") throw err;
    const found = (await childrenIndex(parentId, true)).get(nameKey(name));
    if (!found || found.kind !== "folder") throw err;
    folder = found;
  }
  cache.set(key, folder);
  return folder;
}

const BATCH_FILES = 100;  // files negotiated per request (POST /files/v1/uploads/batch)
const BATCH_BLOCKS = 2000;
const BLOCK_SIZE = 4 * 1024 * 1024;

/** Negotiate a group of prepared files of one folder in one request, then finish each on its own. */
async function uploadGroup(group, siblings) {
  if (!group.length) return 0;
  const { results } = await api("POST", "/files/v1/uploads/batch",
    { uploads: group.map((g) => g.prepared.body) });
  let failures = 0;
  for (const [i, g] of group.entries()) {  // one file at a time, as before: its blocks go BLOCK_PARALLELISM at once
    const result = results[i];
    try {
      if (result.error) throw new ApiError(result.status, result.error);
      await uploadFile(g.file, g.parentId, siblings, g.row, false, g.prepared, result);
    } catch (err) {
      failures += 1;
      g.row.fail(err);
    }
  }
  return failures;
}

async function uploadAll(files) {
  clearError();
  const target = state.folder;
  const folderCache = new Map();
  const indexes = new Map([[target.id, await childrenIndex(target.id)]]);
  let failures = 0;
  let group = [];
  let groupParent = null;
  const flush = async () => {
    const pending = group;
    group = [];
    try {
      failures += await uploadGroup(pending, indexes.get(groupParent));
    } catch (err) {  // the batch request itself failed
      failures += pending.length;
      for (const g of pending) g.row.fail(err);
    }
  };
  for (const file of files) {
    const path = (file.webkitRelativePath || file.name).split("/").filter(Boolean);
    const row = uploadRow(path.join("/"), file.size);
    try {
      let parent = target;
      for (const part of path.slice(0, -1)) parent = await ensureFolder(parent.id, part, folderCache);
      if (!indexes.has(parent.id)) indexes.set(parent.id, await childrenIndex(parent.id));
      const blocksSoFar = group.reduce((n, g) => n + g.prepared.blocks.length, 0);
      const sameName = group.some((g) => nameKey(g.file.name) === nameKey(file.name));
      if (group.length && (parent.id !== groupParent || group.length >= BATCH_FILES || sameName
          || blocksSoFar + Math.ceil(file.size / BLOCK_SIZE) > BATCH_BLOCKS)) await flush();
      groupParent = parent.id;
      const prepared = await prepareUpload(file, parent.id, indexes.get(parent.id), row);
      row.phase("waiting", "Waiting for the batch", 0, file.size);
      group.push({ file, parentId: parent.id, row, prepared });
    } catch (err) {
      failures += 1;
      row.fail(err);
    }
  }
  await flush();
  if (state.folder.id === target.id) await refresh();
  announce(failures ? `${failures} of ${files.length} uploads failed` : `Uploaded ${files.length} file(s)`);
}

/** Wire the file inputs and drag-and-drop to `ctx` = {state, remember, explain, refresh} of files.js. */
export function initUploads(ctx) {
  ({ state, remember, explain, refresh } = ctx);
  for (const id of ["upload-files", "upload-folder"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => {
      const files = Array.from(input.files || []);
      input.value = "";
      if (files.length) uploadAll(files).catch((err) => showError(explain(err), "Upload failed"));
    });
  }

  // dropping files on the page uploads them into the folder on screen
  section.addEventListener("dragover", (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
      event.preventDefault();
      section.classList.add("dropping");
    }
  });
  section.addEventListener("dragleave", () => section.classList.remove("dropping"));
  section.addEventListener("drop", (event) => {
    event.preventDefault();
    section.classList.remove("dropping");
    // a dropped folder arrives as an empty File without a type: "Upload a folder" is the way for those
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []).filter((f) => f.size || f.type);
    if (files.length) uploadAll(files).catch((err) => showError(explain(err), "Upload failed"));
  });
}
