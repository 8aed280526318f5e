// The console's shell: sign-in, the navigation a role may use, the views by
// the page's #hash (#/scan, #/bills/B-1, #/lookup/SB00001, #/dashboard), the
// network badge and the service worker that keeps the console usable offline.

import { call, get, session } from "./api.js";
import * as queue from "./queue.js";
import { banner, clearBanner, el, field, fill, headline, values } from "./ui.js";

// view name → [label, roles that see it]; the API enforces the same roles.
const VIEWS = {
  scan: ["Scan", ["dispatcher", "admin"]],
  bills: ["Bills", ["biller", "admin"]],
  lookup: ["Lookup", ["dispatcher", "biller", "admin"]],
  dashboard: ["Dashboard", ["dispatcher", "biller", "admin"]],
};
const HOME = { dispatcher: "scan", biller: "bills", admin: "dashboard" };

const view = document.getElementById("view");
let unmount = null;
let shown = 0; // a route change while a view loads: only the last one is mounted

function allowed(user) {
  return Object.keys(VIEWS).filter((name) => VIEWS[name][1].includes(user.role));
}

/** Go to a view: go("lookup", "SB00001"). */
export function go(name, ...params) {
  location.hash = `#/${[name, ...params].map(encodeURIComponent).join("/")}`;
}

async function route() {
  const turn = ++shown;
  if (unmount) {
    try {
      unmount();
    } catch (err) {
      console.warn("view cleanup failed", err);
    }
    unmount = null;
  }
  clearBanner();
  const user = session.user();
  header(user);
  if (!user || !session.token()) return login();
  let name = "";
  let params = [];
  try {
    [name = "", ...params] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  } catch {
    // a link cut short ("%" without its two digits): the user's home view
  }
  // an admin's reset (must_change_password): the API refuses everything else until it is changed
  if (user.must_change_password || name === "password") return password(user);
  const names = allowed(user);
  if (!names.includes(name)) return go(HOME[user.role] || names[0]);
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.dataset.view === name);
  }
  const module = await import(`./${name}.js`);
  if (turn !== shown) return;
  fill(view);
  view.dataset.view = name;
  unmount = module.mount(view, { user, params, go }) || null;
}

function header(user) {
  const nav = document.getElementById("nav");
  fill(nav, user ? allowed(user).map((name) => el("a", { href: `#/${name}`, dataset: { view: name } }, VIEWS[name][0])) : null);
  const who = user ? `${user.username} · ${user.role}${user.dispatch_area ? ` · ${user.dispatch_area}` : ""}` : "";
  fill(document.getElementById("who"), user ? el("a", { href: "#/password", title: "Change my password" }, who) : null);
  document.getElementById("logout").hidden = !user;
}

function login() {
  view.dataset.view = "login";
  const form = el(
    "form",
    { class: "card login", autocomplete: "on" },
    el("h1", {}, "Sign in"),
    field("Username", { name: "username", autocomplete: "username", required: true, autocapitalize: "none" }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("button", { class: "primary big", type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await call("POST", "api/auth/login", { body: values(form) });
      session.save(answer);
      route();
    } catch (err) {
      banner("error", headline(err), err.code === "invalid_credentials" ? null : err.message);
      form.elements.password.select();
    } finally {
      button.disabled = false;
    }
  });
  fill(view, form);
  form.elements.username.focus();
}

function password(user) {
  view.dataset.view = "password";
  const form = el(
    "form",
    { class: "card login", autocomplete: "on" },
    el("h1", {}, user.must_change_password ? "Choose a new password" : "Change my password"),
    user.must_change_password ? el("p", {}, "An admin set your password: choose your own before you go on.") : null,
    el("input", { name: "username", autocomplete: "username", value: user.username, hidden: true }),
    field("Current password", { name: "current_password", type: "password", autocomplete: "current-password", required: true }),
    field("New password (12 characters or more)", {
      name: "new_password",
      type: "password",
      autocomplete: "new-password",
      required: true,
      minlength: 12,
    }),
    el("button", { class: "primary big", type: "submit" }, "Change password"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { current_password, new_password } = values(form);
    try {
      // every other token of this user ends; the answer is this device's new one
      session.save(await call("POST", "api/me/password", { body: { current_password, new_password } }));
      history.replaceState(null, "", `#/${HOME[user.role]}`); // no hashchange: the banner below stays
      await route();
      banner("ok", "Password changed", "Other devices signed in as you are signed out.");
    } catch (err) {
      banner("error", headline(err), err.message);
      form.elements[err.code === "wrong_password" ? "current_password" : "new_password"].select();
    }
  });
  fill(view, form);
  form.elements.current_password.focus();
}

async function logout() {
  try {
    await call("POST", "api/auth/logout", { body: {} });
  } catch {
    // offline or already signed out: the token is dropped here either way
  }
  session.clear();
  location.hash = "";
  route();
}

function network() {
  const badge = document.getElementById("net");
  badge.classList.toggle("off", !navigator.onLine);
  if (!navigator.onLine) badge.dataset.state = "offline";
  else delete badge.dataset.state;
  badge.dispatchEvent(new CustomEvent("tt:network"));
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
window.addEventListener("tt:signed-out", () => {
  banner("warn", "Signed out", "Your session ended: sign in again.");
  route();
});
window.addEventListener("online", network);
window.addEventListener("offline", network);

if ("serviceWorker" in navigator) {
  // The page and its files, cached for a reload without network (HTTPS or localhost only).
  navigator.serviceWorker
    .register("console/assets/sw.js", { scope: "console" })
    .catch((err) => console.warn("offline copy not available:", err.message));
}

/** On load, the caller as the server knows them now (a role or area may have changed since sign-in);
 * offline, the one remembered at sign-in, so queued scans still work. */
async function refreshUser() {
  if (!session.token()) return;
  try {
    const user = await get("api/me");
    session.setUser(user);
  } catch {
    // 401 signs out (api.js); offline keeps the remembered user
  }
}

network();
refreshUser().then(() => {
  // scans queued offline are sent whichever view the tab shows after a reload
  if (session.user() && VIEWS.scan[1].includes(session.user().role)) queue.start();
  route();
});
