// The event-type catalogue: each type's description, JSON schema and example payload;
// operators create, edit and archive them, tenants read them.

import { call, query, enc } from "./api.js";
import { h, fill, field, formDialog, confirmAction, notice, pretty } from "./dom.js";

/** Svix keeps schemas by version: {"1": {…}}; the example is the schema's first `examples`. */
function latestSchema(t) {
  const versions = Object.keys(t.schemas || {}).sort((a, b) => Number(b) - Number(a));
  return versions.length ? t.schemas[versions[0]] : null;
}

export async function eventTypesView(main, { portal }) {
  const list = h("div", { class: "cards" });
  const archived = h("input", { type: "checkbox", name: "archived", onchange: () => load() });
  fill(
    main,
    h(
      "div",
      { class: "heading" },
      h(portal ? "h2" : "h1", { text: "Event types" }),
      portal
        ? null
        : h("button", {
            type: "button",
            class: "primary",
            text: "New event type",
            onclick: async () => {
              if (await typeDialog()) await load();
            },
          }),
    ),
    portal ? null : h("label", { class: "check" }, archived, "Show archived"),
    list,
  );

  async function load() {
    const page = await call("GET", `/api/v1/event-type${query({ limit: 250, include_archived: archived.checked || undefined })}`);
    fill(
      list,
      page.data.length
        ? page.data.map((t) => card(t, portal, load))
        : h("p", { class: "empty", text: "No event types yet." }),
    );
  }
  await load();
}

function card(t, portal, reload) {
  const schema = latestSchema(t);
  const example = schema?.examples?.[0];
  return h(
    "section",
    { class: "card", "aria-label": t.name },
    h(
      "div",
      { class: "heading" },
      h("h3", { class: "mono", text: t.name }),
      t.archived ? h("span", { class: "badge off", text: "Archived" }) : null,
      t.deprecated ? h("span", { class: "badge wait", text: "Deprecated" }) : null,
      t.enforceSchema ? h("span", { class: "badge on", text: "Schema enforced" }) : null,
    ),
    h("p", { text: t.description }),
    example !== undefined
      ? h("details", {}, h("summary", { text: "Example payload" }), h("pre", { text: pretty(example) }))
      : null,
    schema ? h("details", {}, h("summary", { text: "JSON schema" }), h("pre", { text: pretty(schema) })) : null,
    portal
      ? null
      : h(
          "div",
          { class: "actions" },
          h("button", {
            type: "button",
            text: "Edit",
            onclick: async () => {
              if (await typeDialog(t)) await reload();
            },
          }),
          t.archived
            ? null
            : h("button", {
                type: "button",
                class: "danger",
                text: "Archive",
                onclick: async () => {
                  const sure = await confirmAction(
                    "Archive event type",
                    `Archive “${t.name}”? It leaves the catalogue; messages of this type are still accepted and delivered.`,
                    "Archive",
                  );
                  if (!sure) return;
                  await call("DELETE", `/api/v1/event-type/${enc(t.name)}`);
                  notice(`Archived ${t.name}.`);
                  await reload();
                },
              }),
        ),
  );
}

function typeDialog(t) {
  return formDialog(t ? "Edit event type" : "New event type", "Save", () => {
    const schema = t ? latestSchema(t) : null;
    const example = schema?.examples?.[0];
    const bare = schema ? { ...schema } : null;
    if (bare) delete bare.examples;
    const name = h("input", { name: "name", required: true, maxlength: 256, pattern: "[a-zA-Z0-9\\-_.]+", value: t?.name || "", disabled: Boolean(t) });
    const description = h("textarea", { name: "description", rows: 2, value: t?.description || "" });
    const schemaText = h("textarea", { name: "schema", rows: 6, class: "mono", value: bare ? pretty(bare) : "" });
    const exampleText = h("textarea", { name: "example", rows: 4, class: "mono", value: example !== undefined ? pretty(example) : "" });
    const enforce = h("input", { type: "checkbox", name: "enforce", checked: Boolean(t?.enforceSchema) });
    const parse = (label, text) => {
      if (!text.trim()) return undefined;
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new Error(`${label} is not JSON: ${err.message}`);
      }
    };
    return {
      fields: [
        field("Name", name, "e.g. order.created"),
        field("Description", description),
        field("JSON schema", schemaText, "Optional: the payload's JSON Schema."),
        field("Example payload", exampleText, "Optional: shown to subscribers and used to try filters."),
        h(
          "label",
          { class: "check" },
          enforce,
          "Enforce the schema: refuse a publish of this type whose payload does not satisfy it (422)",
        ),
      ],
      focus: t ? description : name,
      send: async () => {
        let s = parse("The schema", schemaText.value);
        const ex = parse("The example", exampleText.value);
        if (ex !== undefined) s = { ...(s || {}), examples: [ex] };
        const body = { name: name.value.trim(), description: description.value, schemas: s ? { 1: s } : null, archived: false, enforceSchema: enforce.checked };
        const saved = t
          ? await call("PUT", `/api/v1/event-type/${enc(t.name)}`, body)
          : await call("POST", "/api/v1/event-type", body);
        notice(t ? "Event type saved." : "Event type created.");
        return saved;
      },
    };
  });
}
