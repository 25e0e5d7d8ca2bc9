// Account: rename (PATCH /account/v1/me) and sign out everywhere (POST /account/v1/sign-out-everywhere).
import { announce, api, clearError, showError } from "../common.js";

const form = document.getElementById("name-form");
const input = document.getElementById("account-name");
const save = document.getElementById("name-save");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  save.disabled = true;
  try {
    const profile = await api("PATCH", "/account/v1/me", { name: input.value });
    input.value = profile.name;
    const who = document.querySelector(".topbar .who");
    if (who) who.textContent = profile.name;
    announce("Name saved");
  } catch (err) {
    showError(err, "Could not save your name");
  } finally {
    save.disabled = false;
  }
});
// the template ships Save disabled: a click before this module ran would submit the form natively
save.disabled = false;

document.getElementById("sign-out-everywhere").addEventListener("click", async (event) => {
  if (!window.confirm("Sign out everywhere? Every browser, phone and app must sign in again, this one too.")) return;
  event.target.disabled = true;
  try {
    await api("POST", "/account/v1/sign-out-everywhere");
    window.location.assign("/portal/signin?signed_out=1");
  } catch (err) {
    event.target.disabled = false;
    showError(err, "Could not sign out everywhere");
  }
});
