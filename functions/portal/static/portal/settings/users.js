// Users and groups (admins): /admin/v1/users (role, disabled) and /admin/v1/groups (create, members, delete).
import { announce, api, clearError, el, formatTime, listAll, showError } from "../common.js";

const userList = document.getElementById("user-list");
const groupList = document.getElementById("group-list");
const noGroups = document.getElementById("no-groups");
let users = [];

const label = (u) => (u.name && u.name !== u.email ? `${u.name} <${u.email}>` : u.email);

function renderUser(u) {
  const select = el("select", { "aria-label": `Role of ${label(u)}`, class: "role-select" },
    el("option", { value: "member", selected: u.role === "member" }, "member"),
    el("option", { value: "admin", selected: u.role === "admin" }, "admin"));
  select.addEventListener("change", () => update(u, { role: select.value }, `${label(u)} is now ${select.value}`));
  return el("li", { class: "entry user", dataset: { userId: u.id, role: u.role, disabled: u.disabled } },
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, u.name || u.email),
      el("span", { class: "meta" }, [u.email, u.created_at ? `joined ${formatTime(u.created_at)}` : null,
        u.groups.length ? `${u.groups.length} group${u.groups.length > 1 ? "s" : ""}` : null].filter(Boolean).join(" · ")),
      u.disabled ? el("span", { class: "badge disabled" }, "disabled") : null),
    el("div", { class: "actions" }, select,
      el("button", { type: "button", class: u.disabled ? "secondary" : "danger",
        onclick: () => toggleDisabled(u) }, u.disabled ? "Enable" : "Disable")));
}

async function update(u, patch, done) {
  clearError();
  try {
    await api("PATCH", `/admin/v1/users/${encodeURIComponent(u.id)}`, patch);
    announce(done);
  } catch (err) {
    showError(err, `Could not change ${u.name || u.email}`);
  }
  await loadUsers();
}

function toggleDisabled(u) {
  if (!u.disabled && !window.confirm(`Disable ${label(u)}? They are signed out everywhere and cannot sign in.`)) return;
  update(u, { disabled: !u.disabled }, `${label(u)} ${u.disabled ? "enabled" : "disabled"}`);
}

async function loadUsers() {
  userList.setAttribute("aria-busy", "true");
  users = await listAll("/admin/v1/users");
  userList.replaceChildren(...users.map(renderUser));
  userList.setAttribute("aria-busy", "false");
  userList.dataset.ready = "true";
}

function renderGroup(g) {
  const byId = new Map(users.map((u) => [u.id, u]));
  const add = el("select", { "aria-label": `Add a member to ${g.name}` },
    el("option", { value: "" }, "Add a member…"),
    users.filter((u) => !g.members.includes(u.id)).map((u) => el("option", { value: u.id }, label(u))));
  add.addEventListener("change", async () => {
    if (!add.value) return;
    await groupCall("POST", `/admin/v1/groups/${encodeURIComponent(g.id)}/members`, { user_id: add.value },
      `Added to ${g.name}`);
  });
  return el("li", { class: "entry group", dataset: { groupId: g.id, name: g.name } },
    el("div", { class: "entry-main" },
      el("span", { class: "name" }, g.name),
      el("span", { class: "members" }, g.members.length ? g.members.map((id) => {
        const who = byId.get(id);
        const name = who ? who.name || who.email : id;
        return el("button", { type: "button", class: "link", "aria-label": `Remove ${name} from ${g.name}`,
          onclick: () => groupCall("DELETE", `/admin/v1/groups/${encodeURIComponent(g.id)}/members/${encodeURIComponent(id)}`,
            undefined, `Removed ${name} from ${g.name}`) }, `${name} ✕`);
      }) : el("span", { class: "meta" }, "no members"))),
    el("div", { class: "actions" }, add,
      el("button", { type: "button", class: "danger", onclick: () => deleteGroup(g) }, "Delete")));
}

async function groupCall(method, path, body, done) {
  clearError();
  try {
    await api(method, path, body);
    announce(done);
  } catch (err) {
    showError(err, "Could not change the group");
  }
  await Promise.all([loadUsers(), loadGroups()]);
}

function deleteGroup(g) {
  if (!window.confirm(`Delete the group ${g.name}? Its members keep their accounts.`)) return;
  groupCall("DELETE", `/admin/v1/groups/${encodeURIComponent(g.id)}`, undefined, `Deleted ${g.name}`);
}

async function loadGroups() {
  groupList.setAttribute("aria-busy", "true");
  const groups = await listAll("/admin/v1/groups");
  groupList.replaceChildren(...groups.map(renderGroup));
  noGroups.hidden = groups.length > 0;
  groupList.setAttribute("aria-busy", "false");
  groupList.dataset.ready = "true";
}

document.getElementById("group-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("group-name");
  const name = input.value.trim();
  if (!name) return;
  await groupCall("POST", "/admin/v1/groups", { name }, `Created ${name}`);
  input.value = "";
});
// the template ships the button disabled: a click before this module ran would submit the form natively
document.getElementById("group-create").disabled = false;

loadUsers().then(loadGroups).catch((err) => showError(err, "Could not load users"));
