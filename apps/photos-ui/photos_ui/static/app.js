// The Photos gallery: only PCloud's public APIs, from the browser, as the signed-in user.
// GraphQL (§7) and search (§9) with the SSO cookie; writes carry the session's CSRF token from GET /auth/session.
"use strict";

const state = { csrf: null, user: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);  // CSSOM, not an inline style attribute (CSP)
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

async function session() {
  const answer = await fetch("/auth/session", { credentials: "same-origin" });
  if (answer.status === 401) {
    location.href = "/portal/?next=" + encodeURIComponent(location.pathname + location.hash);
    throw new Error("not signed in");
  }
  const body = await answer.json();
  state.csrf = body.csrf_token;
  state.user = body.user;
  document.getElementById("who").textContent = body.user.name || body.user.email;
}

async function gql(query, variables = {}) {
  const answer = await fetch("/graph/v1/graphql", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify({ query, variables }),
  });
  const body = await answer.json();
  if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
  if (!answer.ok) throw new Error((body.error && body.error.message) || `HTTP ${answer.status}`);
  return body.data;
}

async function all(type, where = {}) {
  const items = [];
  let after = null;
  do {
    const data = await gql(`query($type: String!, $where: JSON, $after: String) {
      nodes(type: $type, where: $where, first: 500, after: $after) { items { id type rev createdAt data } nextCursor } }`,
      { type, where, after });
    items.push(...data.nodes.items);
    after = data.nodes.nextCursor;
  } while (after);
  return items;
}

async function update(id, data) {
  return (await gql(`mutation($id: ID!, $data: JSON!) { updateNode(id: $id, data: $data) { id rev data } }`,
    { id, data })).updateNode;
}

async function action(app, name, params) {
  const answer = await fetch(`/apps/v1/actions/${app}/${name}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify(params),
  });
  const body = await answer.json();
  if (!answer.ok) throw new Error((body.error && body.error.message) || `HTTP ${answer.status}`);
  const execution = body.execution || {};
  if (execution.state && execution.state !== "done" && answer.status === 200) {
    throw new Error(`${app}.${name}: ${execution.state} ${execution.error || ""}`);
  }
  return execution;
}

const preview = (image, size = 256) => `/files/v1/nodes/${encodeURIComponent(image.data.file_id)}/preview?size=${size}`;
const day = (image) => (image.data.taken_at || image.createdAt || "").slice(0, 10) || "Undated";
const byTaken = (a, b) => (b.data.taken_at || "").localeCompare(a.data.taken_at || "");

function thumb(image) {
  return el("a", { href: `#/image/${image.id}`, class: "thumb", title: image.data.name },
    el("img", { src: preview(image), alt: image.data.name, loading: "lazy" }));
}

// ------------------------------------------------------------------------------------------- pages

async function timeline(main) {
  const images = (await all("photos.Image")).sort(byTaken);
  main.replaceChildren(el("h2", {}, "Timeline"));
  if (!images.length) {
    main.append(el("p", { class: "muted" }, "No photos yet. Back up a folder into /Camera and they appear here."));
    return;
  }
  let current = null, grid = null;
  for (const image of images) {
    if (day(image) !== current) {
      current = day(image);
      main.append(el("h3", { class: "day" }, current));
      grid = el("div", { class: "grid" });
      main.append(grid);
    }
    grid.append(thumb(image));
  }
}

async function imagePage(main, id) {
  const data = await gql(`query($id: ID!) { node(id: $id) { id type data } }`, { id });
  const image = data.node;
  if (!image) { main.replaceChildren(el("p", {}, "This photo is gone.")); return; }
  const faces = await all("faces.Face", { image: id });
  const people = {};
  for (const face of faces) {
    if (face.data.person && !(face.data.person in people)) {
      const found = await gql(`query($id: ID!) { node(id: $id) { id data } }`, { id: face.data.person });
      people[face.data.person] = found.node;
    }
  }
  const frame = el("div", { class: "frame" });
  const img = el("img", { src: preview(image, 1024), alt: image.data.name, id: "photo" });
  frame.append(img);
  const draw = () => {
    frame.querySelectorAll(".face").forEach((n) => n.remove());
    const scale = img.clientWidth / (image.data.width || img.naturalWidth || 1);
    for (const face of faces) {
      const b = face.data.box;
      const person = people[face.data.person];
      const label = person ? (person.data.name || "Unnamed") : "";
      frame.append(el("a", {
        class: "face", href: person ? `#/person/${person.id}` : null, title: label || "Not grouped yet",
        style: { left: `${b.left * scale}px`, top: `${b.top * scale}px`, width: `${(b.right - b.left) * scale}px`,
          height: `${(b.bottom - b.top) * scale}px` },
      }, el("span", {}, label)));
    }
  };
  img.addEventListener("load", draw);
  window.addEventListener("resize", draw);
  const facts = [
    image.data.taken_at && `Taken ${image.data.taken_at}`,
    image.data.camera, `${image.data.width}×${image.data.height}`,
    image.data.gps && `at ${image.data.gps.lat}, ${image.data.gps.lon}`,
    `${faces.length} face${faces.length === 1 ? "" : "s"}`,
  ].filter(Boolean);
  main.replaceChildren(el("h2", {}, image.data.name), el("p", { class: "muted" }, facts.join(" · ")), frame,
    el("p", { class: "muted" }, image.data.path));
}

function coverOf(person, faceIndex, imageIndex) {
  const face = faceIndex[person.data.cover];
  const image = face && imageIndex[face.data.image];
  const canvas = el("canvas", { width: 96, height: 96, class: "cover" });
  if (!image) return canvas;
  const source = new Image();
  source.onload = () => {
    const scale = source.naturalWidth / (image.data.width || source.naturalWidth);
    const b = face.data.box, pad = 0.25 * (b.right - b.left);
    const x = Math.max(0, (b.left - pad) * scale), y = Math.max(0, (b.top - pad) * scale);
    const w = (b.right - b.left + 2 * pad) * scale, h = (b.bottom - b.top + 2 * pad) * scale;
    canvas.getContext("2d").drawImage(source, x, y, w, h, 0, 0, 96, 96);
  };
  source.src = preview(image, 1024);
  return canvas;
}

async function peoplePage(main, showHidden) {
  const [people, faces, images] = await Promise.all([all("faces.Person"), all("faces.Face"), all("photos.Image")]);
  const faceIndex = Object.fromEntries(faces.map((f) => [f.id, f]));
  const imageIndex = Object.fromEntries(images.map((i) => [i.id, i]));
  const shown = people.filter((p) => showHidden || !p.data.hidden)
    .sort((a, b) => (b.data.face_count || 0) - (a.data.face_count || 0));
  const selected = new Set();
  const mergeButton = el("button", { id: "merge", disabled: true, onclick: async () => {
    const [into, ...from] = [...selected];
    try {
      await action("face-detector", "merge-people", { into, from });
      route();
    } catch (e) { showError(e.message); }
  } }, "Merge selected");
  const toolbar = el("div", { class: "toolbar" }, mergeButton,
    el("label", {}, el("input", { type: "checkbox", id: "show-hidden", checked: showHidden,
      onchange: (e) => { location.hash = e.target.checked ? "#/people?hidden=1" : "#/people"; } }), " Show hidden"));
  const grid = el("div", { class: "people" });
  for (const person of shown) {
    const name = el("input", { class: "name", value: person.data.name || "", placeholder: "Add a name",
      "aria-label": "Name" });
    const save = async () => {
      try { await update(person.id, { name: name.value.trim() || null }); route(); } catch (e) { showError(e.message); }
    };
    name.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); });
    const pick = el("input", { type: "checkbox", class: "pick", "aria-label": "Select for merge", onchange: (e) => {
      if (e.target.checked) selected.add(person.id); else selected.delete(person.id);
      mergeButton.disabled = selected.size < 2;
      mergeButton.textContent = selected.size < 2 ? "Merge selected" : `Merge ${selected.size} people`;
    } });
    grid.append(el("div", { class: "person" + (person.data.hidden ? " hidden-person" : ""), "data-id": person.id },
      el("a", { href: `#/person/${person.id}` }, coverOf(person, faceIndex, imageIndex)),
      name,
      el("div", { class: "row" },
        el("button", { class: "rename", onclick: save }, "Rename"),
        el("button", { class: "hide", onclick: async () => {
          try { await update(person.id, { hidden: !person.data.hidden }); route(); } catch (e) { showError(e.message); }
        } }, person.data.hidden ? "Unhide" : "Hide"),
        pick),
      el("div", { class: "muted" }, `${person.data.face_count || 0} photo${person.data.face_count === 1 ? "" : "s"}`)));
  }
  main.replaceChildren(el("h2", {}, "People"), toolbar,
    shown.length ? grid : el("p", { class: "muted" }, "No people yet: they appear once a face is seen often enough."));
}

async function personPage(main, id) {
  const found = (await gql(`query($id: ID!) { node(id: $id) { id data } }`, { id })).node;
  if (!found) { main.replaceChildren(el("p", {}, "This person is gone.")); return; }
  const faces = await all("faces.Face", { person: id });
  const images = [];
  for (const imageId of new Set(faces.map((f) => f.data.image))) {
    const image = (await gql(`query($id: ID!) { node(id: $id) { id data createdAt } }`, { id: imageId })).node;
    if (image) images.push(image);
  }
  main.replaceChildren(el("h2", {}, found.data.name || "Unnamed person"),
    el("div", { class: "grid" }, images.sort(byTaken).map(thumb)));
}

async function searchPage(main, q) {
  document.getElementById("q").value = q;
  const data = await gql(`query($q: String!) { search(q: $q, types: ["faces.Person", "photos.Image"], first: 100) {
    items { score node { id type data createdAt } } } }`, { q });
  const hits = data.search.items.map((h) => h.node);
  const people = hits.filter((n) => n.type === "faces.Person");
  const images = hits.filter((n) => n.type === "photos.Image");
  main.replaceChildren(el("h2", {}, `Results for “${q}”`));
  if (!hits.length) { main.append(el("p", { class: "muted" }, "Nothing found.")); return; }
  if (people.length) {
    main.append(el("h3", {}, "People"), el("ul", { class: "hits" }, people.map((p) =>
      el("li", {}, el("a", { href: `#/person/${p.id}` }, p.data.name || "Unnamed")))));
  }
  if (images.length) main.append(el("h3", {}, "Photos"), el("div", { class: "grid" }, images.map(thumb)));
}

// ------------------------------------------------------------------------------------------- routing

async function route() {
  showError("");
  const main = document.getElementById("main");
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.tab === (parts[0] === "people" ? "people" : parts.length ? "" : "timeline")));
  try {
    if (parts[0] === "image") await imagePage(main, parts[1]);
    else if (parts[0] === "people") await peoplePage(main, params.get("hidden") === "1");
    else if (parts[0] === "person") await personPage(main, parts[1]);
    else if (parts[0] === "search") await searchPage(main, params.get("q") || "");
    else await timeline(main);
  } catch (e) {
    showError(e.message);
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (q) location.hash = "#/search?q=" + encodeURIComponent(q);
});
window.addEventListener("hashchange", route);
session().then(route).catch((e) => showError(e.message));
