// Applications: the list (search, create) and one application's frame (its name, its
// tabs, edit and delete).

import { call, query, enc } from "./api.js";
import { h, fill, field, formDialog, confirmAction, notice, when } from "./dom.js";

export async function appsView(main) {
  let rows = [];
  let iterator = null;
  let done = false;
  // The search runs on the server (over every application, not only those loaded), a
  // moment after the typing stops.
  let typing = null;
  const search = h("input", {
    type: "search",
    placeholder: "Name, uid or id",
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => restart().catch((e) => notice(e.message, "error")), 250);
    },
  });
  const body = h("tbody");
  const more = h("button", { type: "button", onclick: () => load().catch((e) => notice(e.message, "error")), text: "Load more" });
  const table = h(
    "table",
    {},
    h("caption", { class: "sr-only", text: "Applications" }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Name" }), h("th", { scope: "col", text: "Uid" }), h("th", { scope: "col", text: "Id" }), h("th", { scope: "col", text: "Created" }))),
    body,
  );
  fill(
    main,
    h(
      "div",
      { class: "heading" },
      h("h1", { text: "Applications" }),
      h("button", { type: "button", class: "primary", onclick: create, text: "New application" }),
    ),
    field("Search applications", search),
    h("div", { class: "scroll" }, table),
    more,
  );

  function draw() {
    fill(
      body,
      rows.length
        ? rows.map((a) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `#/apps/${enc(a.id)}`, text: a.name })),
              h("td", { text: a.uid || "" }),
              h("td", { class: "mono", text: a.id }),
              h("td", { text: when(a.createdAt) }),
            ),
          )
        : h("tr", {}, h("td", { colspan: 4, class: "empty", text: search.value.trim() ? "No application matches." : "No applications yet." })),
    );
    more.hidden = done;
  }

  async function restart() {
    rows = [];
    iterator = null;
    await load();
  }

  async function load() {
    const asked = search.value.trim();
    const page = await call("GET", `/api/v1/app${query({ limit: 100, iterator, search: asked })}`);
    // An answer to a search typed over since is dropped.
    if (asked !== search.value.trim()) return;
    rows.push(...page.data);
    iterator = page.iterator;
    done = page.done;
    draw();
  }

  async function create() {
    const made = await appDialog("New application");
    if (made) location.hash = `#/apps/${enc(made.id)}`;
  }

  await load();
}

/** The create or edit dialog of an application; resolves with the saved one. */
function appDialog(title, app) {
  return formDialog(title, "Save", () => {
    const name = h("input", { name: "name", required: true, maxlength: 256, value: app?.name || "" });
    const uid = h("input", { name: "uid", maxlength: 256, pattern: "[a-zA-Z0-9_.\\-]+", value: app?.uid || "" });
    return {
      fields: [field("Name", name), field("Uid (optional)", uid, "Your own id for this application: letters, digits, _ . -")],
      focus: name,
      send: () => {
        const body = { name: name.value.trim(), uid: uid.value.trim() || null };
        return app ? call("PUT", `/api/v1/app/${enc(app.id)}`, body) : call("POST", "/api/v1/app", body);
      },
    };
  });
}

/** One application: its heading and tabs, then `tab`'s content drawn by `draw`. */
export async function appView(main, ctx, tab, draw) {
  const app = await call("GET", `/api/v1/app/${enc(ctx.app)}`);
  const content = h("div");
  fill(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/apps", text: "Applications" }), " / "),
    h(
      "div",
      { class: "heading" },
      h("h1", { text: app.name }),
      h(
        "div",
        { class: "actions" },
        h("button", {
          type: "button",
          text: "Edit",
          onclick: async () => {
            if (await appDialog("Edit application", app)) location.reload();
          },
        }),
        h("button", {
          type: "button",
          class: "danger",
          text: "Delete",
          onclick: async () => {
            const sure = await confirmAction(
              "Delete application",
              `Delete “${app.name}” with all its webhooks and messages? This cannot be undone.`,
              "Delete application",
            );
            if (!sure) return;
            await call("DELETE", `/api/v1/app/${enc(app.id)}`);
            notice(`Deleted ${app.name}.`);
            location.hash = "#/apps";
          },
        }),
      ),
    ),
    h("p", { class: "mono muted", text: app.uid ? `${app.id} · uid ${app.uid}` : app.id }),
    h(
      "nav",
      { class: "tabs", "aria-label": "Application" },
      h("a", { href: ctx.base, text: "Webhooks", "aria-current": tab === "webhooks" ? "page" : false }),
      h("a", { href: `${ctx.base}/messages`, text: "Delivery log", "aria-current": tab === "messages" ? "page" : false }),
    ),
    content,
  );
  await draw(content);
}
