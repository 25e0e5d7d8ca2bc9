// The trash: what was deleted, and a Restore button that puts it back (CONTRACT §3).
import { ApiError, announce, api, el, formatBytes, formatTime, listAll, showError } from "./common.js";

const list = document.getElementById("trash-entries");
const empty = document.getElementById("empty-trash");

async function load() {
  list.setAttribute("aria-busy", "true");
  const items = await listAll("/files/v1/trash");
  list.replaceChildren(...items.map(renderItem));
  empty.hidden = items.length > 0;
  list.setAttribute("aria-busy", "false");
  list.dataset.ready = "true";
}

function renderItem(node) {
  const meta = `${node.kind === "folder" ? "Folder" : formatBytes(node.size)} · deleted ${formatTime(node.trashed_at)}`;
  return el("li", { class: `entry ${node.kind}`, dataset: { nodeId: node.id, name: node.name } },
    el("span", { class: `icon icon-${node.kind}`, "aria-hidden": "true" }),
    el("div", { class: "entry-main" }, el("span", { class: "name" }, node.name), el("span", { class: "meta" }, meta)),
    el("div", { class: "actions" },
      el("button", { type: "button", "aria-label": `Restore ${node.name}`, onclick: () => restore(node) }, "Restore")));
}

async function restore(node) {
  try {
    await api("POST", `/files/v1/nodes/${encodeURIComponent(node.id)}/restore`);
    announce(`“${node.name}” restored`);
  } catch (err) {
    const why = err instanceof ApiError && err.code === "name_taken"
      ? "an item with the same name is already in that folder; rename it first" : err.message;
    showError(why, `Could not restore “${node.name}”`);
  }
  await load();
}

load().catch((err) => showError(err, "Could not load the trash"));
