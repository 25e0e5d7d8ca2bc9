// The files page follows the signed-in user's event stream (live.js) instead of polling: a files.node.* event
// about the folder on screen (a child created, changed, moved in or out, trashed) re-lists it, debounced, so an
// upload of 100 files elsewhere is one re-list; the folder itself renamed or moved redraws the breadcrumbs, and
// trashed or deleted elsewhere the page says so and shows its parent. After a reset or a stream that was down
// the folder is looked at again (something may have been missed); only while it is down a 30 s poll remains.
// #files[data-events] counts the events seen and #files[data-sync] is "pending" until the re-lists they asked
// for are done: what a test (or a person's devtools) can wait on instead of a clock.
import { ApiError, api, showError } from "./common.js";
import { debounce, onEvent, onReset, onState } from "./live.js";

const POLL_MS = 30000;

/** page = {state, section, remember, refresh, openFolder, renderBreadcrumbs, displayName} of files.js */
export function followFolder(page) {
  const { state, section, remember, refresh, openFolder, renderBreadcrumbs, displayName } = page;
  let wanted = { list: false, folder: false, crumbs: false };
  let scheduled = false;
  let running = 0;
  let seen = 0;
  let wasDown = false;
  section.dataset.sync = "idle";
  section.dataset.events = "0";

  function settle() {
    section.dataset.sync = scheduled || running ? "pending" : "idle";
  }

  async function track(work) {
    running += 1;
    settle();
    try {
      await work();
    } catch (err) {
      console.warn("live files update failed", err);
    } finally {
      running -= 1;
      settle();
    }
  }

  /** The folder on screen is gone (trashed or purged elsewhere): say so and show its parent (or the root). */
  async function leave(node, deleted) {
    await openFolder(node.parent_id || state.root.id, "replace");
    showError(`“${node.name}” was ${deleted ? "deleted" : "moved to the trash"} elsewhere; `
      + `showing ${displayName(state.folder)}`);
  }

  async function run() {
    const want = wanted;
    wanted = { list: false, folder: false, crumbs: false };
    if (!state.root || !state.folder) return;  // the first load has not shown a folder yet: it lists after this
    const shown = state.folder;
    if (want.folder && shown.id !== state.root.id) {
      let folder = null;
      try {
        folder = remember(await api("GET", `/files/v1/nodes/${encodeURIComponent(shown.id)}`));
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 404) throw err;
      }
      if (state.folder.id !== shown.id) return;  // the person moved on meanwhile
      if (!folder || folder.trashed_at) {
        await leave(folder || shown, !folder);
        return;
      }
      state.folder = folder;
      want.crumbs = true;
    }
    await Promise.all([want.crumbs ? renderBreadcrumbs(state.folder) : null, want.list ? refresh() : null]);
  }

  const fire = debounce(() => {
    scheduled = false;
    track(run);
  });

  function ask(what) {
    Object.assign(wanted, what);
    scheduled = true;
    settle();
    fire();
  }

  onEvent("files.node.", (event) => {
    seen += 1;
    section.dataset.events = String(seen);
    const node = event.data && event.data.node;
    if (!node || !node.id || !state.root || !state.folder) return;
    if (state.nodes.has(node.id)) remember(node);  // what the page knows stays current (breadcrumbs, moved entries)
    if (node.id === state.folder.id) {
      const purged = event.type === "files.node.purged";
      if (purged || event.type === "files.node.trashed" || node.trashed_at) {
        track(() => leave(state.nodes.get(node.id) || node, purged));
        return;
      }
      state.folder = state.nodes.get(node.id) || node;
      document.title = `${displayName(state.folder)} · PCloud`;
      ask({ crumbs: true });
      return;
    }
    if (event.type === "files.node.purged" && !state.shown.has(node.id)) return;  // already out of the trash view
    if (node.parent_id === state.folder.id || state.shown.has(node.id)) ask({ list: true });
    if (state.chain.has(node.id)) ask({ crumbs: true });
  });

  onReset(() => ask({ folder: true, list: true }));

  onState((value) => {
    if (value === "down") wasDown = true;
    if (value !== "open") return;
    // the first open may come after the first listing was read, a reopen after a gap: look once more
    if (state.folder) ask({ list: true, folder: wasDown });
    wasDown = false;
  });

  setInterval(() => {
    if (document.visibilityState === "visible" && document.body.dataset.live === "down") ask({ list: true });
  }, POLL_MS);
}
