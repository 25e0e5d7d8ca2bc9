// The file browser: breadcrumbs, folder listing, create/rename/move/delete, download; uploads are uploads.js.
// The folder on screen follows the event stream (files-live.js): changes made elsewhere re-list it.
import { ApiError, announce, api, clearError, el, formatBytes, formatTime, listAll, showError } from "./common.js";
import { followFolder } from "./files-live.js";
import { initUploads } from "./uploads.js";

const section = document.getElementById("files");
const entriesList = document.getElementById("entries");
const emptyNote = document.getElementById("empty-folder");
const crumbs = document.getElementById("breadcrumbs");

// children: the listing on screen (replaced whole by each re-list, never edited); shown: their ids;
// chain: the breadcrumb folders' ids; nodes: every node seen, newest rev kept
const state = { root: null, folder: null, children: [], shown: new Set(), chain: new Set(), nodes: new Map() };
let listings = 0;  // the latest re-list wins: an older answer arriving late is dropped
let crumbRenders = 0;

const MESSAGES = {
  name_taken: "There is already an item with that name here",
  invalid_name: "That name is not allowed",
  cycle: "A folder cannot be moved into itself or into one of its subfolders",
  stale_rev: "It was changed elsewhere in the meantime; the list is refreshed, please try again",
  not_found: "It no longer exists; the list is refreshed",
};

function explain(err) {
  if (err instanceof ApiError && MESSAGES[err.code]) return `${MESSAGES[err.code]} (${err.message})`;
  return err.message || String(err);
}

/** Keep the newest revision of a node: a listing started before a change may answer after it. */
function remember(node) {
  const known = state.nodes.get(node.id);
  if (known && known.rev > node.rev) return known;
  state.nodes.set(node.id, node);
  return node;
}

async function getNode(id) {
  return state.nodes.get(id) || remember(await api("GET", `/files/v1/nodes/${encodeURIComponent(id)}`));
}

function folderUrl(id) {
  return !state.root || id === state.root.id ? "/portal/files" : `/portal/files?folder=${encodeURIComponent(id)}`;
}

function displayName(node) {
  return node.parent_id ? node.name : "My files";
}

// --- browsing ---------------------------------------------------------------------------------------
/** Show folder `id`; `how` is true (push history), false, or "replace". A folder that is gone: the root. */
async function openFolder(id, how) {
  clearError();
  let folder;
  try {
    folder = id === state.root.id ? state.root : remember(await api("GET", `/files/v1/nodes/${encodeURIComponent(id)}`));
    if (folder.kind !== "folder" || folder.trashed_at) throw new ApiError(404, { code: "not_found", message: "not a folder" });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    showError("That folder does not exist or is in the trash; showing your files instead");
    folder = state.root;
  }
  state.folder = folder;
  section.dataset.folderId = folder.id;
  if (how === "replace") history.replaceState({ folder: folder.id }, "", folderUrl(folder.id));
  else if (how) history.pushState({ folder: folder.id }, "", folderUrl(folder.id));
  document.title = `${displayName(folder)} · PCloud`;
  await Promise.all([renderBreadcrumbs(folder), refresh()]);
}

async function renderBreadcrumbs(folder) {
  crumbRenders += 1;
  const mine = crumbRenders;
  const chain = [folder];
  let cursor = folder;
  while (cursor.parent_id) {
    cursor = await getNode(cursor.parent_id);
    chain.unshift(cursor);
  }
  if (mine !== crumbRenders) return;
  state.chain = new Set(chain.map((node) => node.id));
  crumbs.replaceChildren(...chain.map((node, i) => {
    const last = i === chain.length - 1;
    return el("li", {}, last
      ? el("span", { "aria-current": "page" }, displayName(node))
      : el("a", { href: folderUrl(node.id), onclick: navigate(node.id) }, displayName(node)));
  }));
}

function navigate(id) {
  return (event) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1) return;
    event.preventDefault();
    openFolder(id, true).catch((err) => showError(err, "Could not open the folder"));
  };
}

/** Re-list the folder on screen. Replaces only the entries, state.children/shown and the nodes listed:
 *  uploads in progress keep their rows and their own name indexes (uploads.js). */
async function refresh() {
  listings += 1;
  const mine = listings;
  entriesList.setAttribute("aria-busy", "true");
  const folderId = state.folder.id;
  const listed = (await listAll(`/files/v1/nodes/${encodeURIComponent(folderId)}/children`))
    .filter((n) => !n.trashed_at);
  if (mine !== listings || state.folder.id !== folderId) return;  // a newer re-list (or another folder) is on its way
  // a node an event already showed elsewhere (moved out, trashed) stays out even if this answer is older
  const children = listed.map(remember).filter((n) => n.parent_id === folderId && !n.trashed_at);
  children.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === "folder" ? -1 : 1));
  state.children = children;
  state.shown = new Set(children.map((node) => node.id));
  entriesList.replaceChildren(...children.map(renderEntry));
  emptyNote.hidden = children.length > 0;
  entriesList.setAttribute("aria-busy", "false");
}

function renderEntry(node) {
  const isFolder = node.kind === "folder";
  const contentUrl = `/files/v1/nodes/${encodeURIComponent(node.id)}/content`;
  const link = isFolder
    ? el("a", { href: folderUrl(node.id), class: "name", onclick: navigate(node.id) }, node.name)
    : el("a", { href: contentUrl, class: "name", download: node.name }, node.name);
  const meta = isFolder ? "Folder" : `${formatBytes(node.size)}${node.mtime ? ` · ${formatTime(node.mtime)}` : ""}`;
  const actions = el("div", { class: "actions" },
    isFolder ? null : el("a", { class: "button secondary", href: contentUrl, download: node.name,
      "aria-label": `Download ${node.name}` }, "Download"),
    el("button", { type: "button", class: "secondary", "aria-label": `Rename ${node.name}`,
      onclick: () => renameDialog(node) }, "Rename"),
    el("button", { type: "button", class: "secondary", "aria-label": `Move ${node.name}`,
      onclick: () => moveDialog(node) }, "Move"),
    el("button", { type: "button", class: "danger", "aria-label": `Delete ${node.name}`,
      onclick: () => deleteNode(node) }, "Delete"));
  return el("li", { class: `entry ${node.kind}`, dataset: { nodeId: node.id, name: node.name } },
    el("span", { class: `icon icon-${node.kind}`, "aria-hidden": "true" }),
    el("div", { class: "entry-main" }, link, el("span", { class: "meta" }, meta)),
    actions);
}

// --- create, rename, move, delete ---------------------------------------------------------------------
const newFolderForm = document.getElementById("new-folder-form");
newFolderForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("new-folder-name");
  const name = input.value.trim();
  if (!name) return;
  try {
    const node = await api("POST", "/files/v1/folders", { parent_id: state.folder.id, name });
    input.value = "";
    announce(`Folder “${node.name}” created`);
    await refresh();
  } catch (err) {
    showError(explain(err), "Could not create the folder");
  }
});
// the template ships Create disabled: before this module ran a click would submit the form natively
newFolderForm.querySelector("button[type=submit]").disabled = false;

async function afterConflict(err) {
  if (err instanceof ApiError && (err.code === "stale_rev" || err.status === 404)) await refresh();
}

function renameDialog(node) {
  const dialog = document.getElementById("name-dialog");
  const form = document.getElementById("name-dialog-form");
  const input = document.getElementById("name-dialog-input");
  const error = document.getElementById("name-dialog-error");
  document.getElementById("name-dialog-title").textContent = `Rename “${node.name}”`;
  error.textContent = "";
  input.value = node.name;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name || name === node.name) { dialog.close(); return; }
    try {
      const updated = remember(await api("PATCH", `/files/v1/nodes/${encodeURIComponent(node.id)}`,
        { name, base_rev: node.rev }));
      dialog.close();
      announce(`Renamed to “${updated.name}”`);
      await refresh();
    } catch (err) {
      error.textContent = explain(err);
      await afterConflict(err);
    }
  };
  document.getElementById("name-dialog-cancel").onclick = () => dialog.close();
  dialog.showModal();
  const dot = node.kind === "file" ? node.name.lastIndexOf(".") : -1;
  input.setSelectionRange(0, dot > 0 ? dot : node.name.length);
}

async function moveDialog(node) {
  const dialog = document.getElementById("move-dialog");
  const list = document.getElementById("move-dialog-folders");
  const where = document.getElementById("move-dialog-where");
  const up = document.getElementById("move-dialog-up");
  const error = document.getElementById("move-dialog-error");
  document.getElementById("move-dialog-title").textContent = `Move “${node.name}”`;
  error.textContent = "";
  let here = state.folder;

  async function show(folder) {
    const subfolders = (await listAll(`/files/v1/nodes/${encodeURIComponent(folder.id)}/children`))
      .filter((n) => n.kind === "folder" && !n.trashed_at && n.id !== node.id);
    subfolders.forEach(remember);
    here = folder;
    where.textContent = displayName(folder);
    up.disabled = !folder.parent_id;
    list.replaceChildren(...subfolders.map((f) => el("li", {},
      el("button", { type: "button", class: "link", onclick: () => show(f).catch((e) => { error.textContent = explain(e); }) },
        `${f.name} ›`))));
    if (!subfolders.length) list.replaceChildren(el("li", { class: "muted" }, "No subfolders here"));
  }

  up.onclick = async () => { if (here.parent_id) await show(await getNode(here.parent_id)); };
  document.getElementById("move-dialog-cancel").onclick = () => dialog.close();
  document.getElementById("move-dialog-ok").onclick = async () => {
    if (here.id === node.parent_id) { dialog.close(); return; }
    try {
      remember(await api("PATCH", `/files/v1/nodes/${encodeURIComponent(node.id)}`,
        { parent_id: here.id, base_rev: node.rev }));
      dialog.close();
      announce(`Moved “${node.name}” to ${displayName(here)}`);
      await refresh();
    } catch (err) {
      error.textContent = explain(err);
      await afterConflict(err);
    }
  };
  await show(here);
  dialog.showModal();
}

async function deleteNode(node) {
  try {
    const trashed = await api("DELETE",
      `/files/v1/nodes/${encodeURIComponent(node.id)}?base_rev=${encodeURIComponent(node.rev)}`);
    if (trashed && trashed.id) remember(trashed);
    else state.nodes.delete(node.id);  // no longer here: the uploads' name check must not find it
    announce(`“${node.name}” moved to the trash`);
    await refresh();
  } catch (err) {
    showError(explain(err), `Could not delete “${node.name}”`);
    await afterConflict(err);
  }
}

// --- start ------------------------------------------------------------------------------------------------
window.addEventListener("popstate", (event) => {
  const id = (event.state && event.state.folder) || (state.root && state.root.id);
  if (id) openFolder(id, false).catch((err) => showError(err, "Could not open the folder"));
});

initUploads({ state, remember, explain, refresh });
followFolder({ state, section, remember, refresh, openFolder, renderBreadcrumbs, displayName });

(async () => {
  state.root = remember(await api("GET", "/files/v1/root"));
  await openFolder(section.dataset.folderId || state.root.id, false);
  history.replaceState({ folder: state.folder.id }, "", folderUrl(state.folder.id));
  section.dataset.ready = "true";
})().catch((err) => showError(explain(err), "Could not load your files"));
