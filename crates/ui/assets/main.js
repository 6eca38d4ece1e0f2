// The page: which face (console or portal), sign-in, the layout and the routes.

import { call, session, signIn, signOut, ApiError } from "./api.js";
import { h, fill, field, notice } from "./dom.js";
import { appsView, appView } from "./apps.js";
import { endpointsView } from "./endpoints.js";
import { messagesView, messageView } from "./messages.js";
import { eventTypesView } from "./event_types.js";
import { failingView } from "./failing.js";

const portal = location.pathname.startsWith("/portal");

// The portal's look: the operator's accent colour and logo (brand.json), which a portal
// link may override (`/portal?accent=1a73e8&logo=…#key=…`); kept for this tab, as the
// address bar is cleaned.
const BRAND = "herald.brand";
if (portal && location.search) {
  const q = new URLSearchParams(location.search);
  sessionStorage.setItem(BRAND, JSON.stringify({ accent: q.get("accent"), logo: q.get("logo") }));
  history.replaceState(null, "", `/portal${location.hash}`);
}
// The portal link carries its token in the fragment (#key=…&app=…), which the browser
// never sends to a server; it moves to this tab's session storage and leaves the address
// bar at once.
if (portal && location.hash.includes("key=")) {
  const params = new URLSearchParams(location.hash.slice(1));
  signIn(params.get("key"), params.get("app"));
  history.replaceState(null, "", "/portal#/webhooks");
}

let brand = {};

async function loadBrand() {
  const given = await fetch("/portal/brand.json", { credentials: "omit" }).then((r) => r.json()).catch(() => ({}));
  let linked = {};
  try {
    linked = JSON.parse(sessionStorage.getItem(BRAND) || "{}") || {};
  } catch {}
  const accent = [linked.accent, given.accent].map(hexColour).find(Boolean);
  const logo = [linked.logo, given.logo].find((l) => typeof l === "string" && /^(https?:\/\/|\/(?!\/))\S+$/.test(l));
  if (accent) document.documentElement.style.setProperty("--accent", accent);
  brand = { logo };
}

/** `#rgb` or `#rrggbb` (the `#` optional), or undefined. */
function hexColour(text) {
  const m = typeof text === "string" && /^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.exec(text.trim());
  return m ? `#${m[1]}` : undefined;
}

const root = document.getElementById("root");

function layout(nav) {
  const main = h("main", { id: "main", tabindex: "-1" });
  fill(
    root,
    h(
      "header",
      { class: "top" },
      h(
        "a",
        { class: "brand", href: portal ? "#/webhooks" : "#/apps" },
        brand.logo ? h("img", { class: "logo", src: brand.logo, alt: "", onerror: (e) => e.target.remove() }) : null,
        portal ? "Webhooks" : "Herald",
      ),
      h("nav", { "aria-label": "Main" }, nav),
      h("button", { type: "button", class: "quiet", onclick: logout, text: "Sign out" }),
    ),
    h("div", { id: "notices", class: "notices", "aria-live": "polite" }),
    main,
  );
  return main;
}

async function logout() {
  if (portal) {
    // The portal's token is revoked, not only forgotten.
    await call("POST", "/api/v1/auth/logout").catch(() => {});
  }
  signOut();
  allowed = null;
  location.hash = "";
  route();
}

function loginView(message) {
  const main = h("main", { id: "main", tabindex: "-1", class: "login" });
  fill(root, main);
  if (portal) {
    fill(
      main,
      h("h1", { text: "Webhooks" }),
      h("p", { role: "alert", text: message || "This link has expired or was signed out. Ask for a new one." }),
    );
    return;
  }
  const token = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        signIn(token.value.trim());
        try {
          await call("GET", "/api/v1/app?limit=1");
          location.hash = "#/apps";
          route();
        } catch (err) {
          signOut();
          error.textContent =
            err instanceof ApiError && err.status === 401
              ? "That token was not accepted."
              : `Signing in failed: ${err.message}`;
          token.focus();
        }
      },
    },
    field("Admin token", token, "Printed by `herald serve` at its first start, or set with --admin-token."),
    error,
    h("button", { type: "submit", class: "primary", text: "Sign in" }),
  );
  fill(main, h("h1", { text: "Herald console" }), form);
  if (message) error.textContent = message;
  token.focus();
}

/** The routes: the hash after `#/`, split at slashes. */
async function route() {
  const s = session();
  if (!s || (portal && !s.app)) {
    loginView();
    return;
  }
  // `#/path/to/view?name=value`: the path picks the view, the query its filters.
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search || "");
  let main;
  if (portal) {
    const here = parts[0] || "webhooks";
    main = layout([
      navLink("#/webhooks", "Webhooks", here === "webhooks"),
      navLink("#/messages", "Delivery log", here === "messages" || here === "msg"),
      navLink("#/event-types", "Event types", here === "event-types"),
    ]);
  } else {
    const here = parts[0] || "apps";
    main = layout([
      navLink("#/apps", "Applications", here === "apps"),
      navLink("#/failing", "Failing endpoints", here === "failing"),
      navLink("#/event-types", "Event types", here === "event-types"),
    ]);
  }
  try {
    await render(main, parts, params, s);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      loginView(portal ? undefined : "Your session has ended; sign in again.");
      return;
    }
    fill(main, h("h1", { text: "Something went wrong" }), h("p", { role: "alert", text: err.message }));
  }
}

function navLink(href, text, current) {
  return h("a", { href, text, "aria-current": current ? "page" : false });
}

/** What the token may do, from its session (capabilities), for showing only that. */
let allowed = null;
async function can() {
  if (!allowed) {
    const session = await call("GET", "/api/v1/auth/session");
    const has = (c) => session.capabilities.includes(c);
    allowed = {
      manage: has("ManageEndpoint"),
      rules: has("ManageEndpoint") || has("ManageTransformations"),
      secret: has("ViewEndpointSecret") || has("ManageEndpointSecret") || has("ManageEndpoint"),
      rotate: has("ManageEndpointSecret") || has("ManageEndpoint"),
      replay: has("CreateAttempts"),
    };
  }
  return allowed;
}

async function render(main, parts, params, s) {
  if (portal) {
    // The portal's one application: its screens, with links relative to it.
    const ctx = { app: s.app, base: "#", portal: true, can: await can() };
    const [what, id] = parts;
    if (what === "messages") return messagesView(main, ctx, params);
    if (what === "msg" && id) return messageView(main, ctx, id);
    if (what === "event-types") return eventTypesView(main, { portal: true });
    return endpointsView(main, ctx);
  }
  const [what, app, sub, id] = parts;
  if (what === "event-types") return eventTypesView(main, { portal: false });
  if (what === "failing") return failingView(main);
  if (what === "apps" && app) {
    const ctx = { app, base: `#/apps/${encodeURIComponent(app)}`, portal: false, can: await can() };
    if (sub === "messages") return appView(main, ctx, "messages", (el) => messagesView(el, ctx, params));
    if (sub === "msg" && id) return appView(main, ctx, "messages", (el) => messageView(el, ctx, id));
    return appView(main, ctx, "webhooks", (el) => endpointsView(el, ctx));
  }
  return appsView(main);
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (e) => notice(e.reason?.message || String(e.reason), "error"));
if (portal) await loadBrand();
route();
