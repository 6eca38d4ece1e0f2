// An application's webhooks (endpoints): the list with each one's health, the create and
// edit dialog, and what can be done to one (activate, delete, secret, recover).

import { call, exchange, query, enc, ApiError } from "./api.js";
import { h, fill, field, dialog, formDialog, confirmAction, notice, when, pretty } from "./dom.js";

const DAY_MS = 24 * 3600 * 1000;

/** Webhooks a page: their cards, and their health in one call. */
const PAGE = 50;

export async function endpointsView(main, ctx) {
  const list = h("div", { class: "cards" });
  const more = h("button", { type: "button", hidden: true, text: "Load more", onclick: () => next().catch((e) => notice(e.message, "error")) });
  fill(
    main,
    h(
      "div",
      { class: "heading" },
      h("h2", { text: "Webhooks" }),
      ctx.can.manage
        ? h("button", {
            type: "button",
            class: "primary",
            text: "Create webhook",
            onclick: async () => {
              if (await endpointDialog(ctx)) await load();
            },
          })
        : null,
    ),
    list,
    more,
  );
  let iterator = null;

  async function load() {
    list.replaceChildren();
    iterator = null;
    await next();
    if (!list.children.length) {
      fill(list, h("p", { class: "empty", text: "No webhooks yet. Create one to start receiving events." }));
    }
  }

  async function next() {
    const page = await call("GET", `/api/v1/app/${enc(ctx.app)}/endpoint${query({ limit: PAGE, iterator })}`);
    const cards = page.data.map((ep) => card(ctx, ep, load));
    list.append(...cards.map((c) => c.el));
    iterator = page.iterator;
    more.hidden = page.done || !page.iterator;
    if (cards.length) fillHealth(ctx, cards).catch((err) => cards.forEach((c) => fill(c.health, h("dt", { text: "Health" }), h("dd", { text: err.message }))));
  }

  await load();
}

export function title(ep) {
  return ep.name || ep.description || ep.url;
}

/** One webhook: what it is, its health, and its actions. */
function card(ctx, ep, reload) {
  const health = h("dl", { class: "health" }, h("dt", { text: "Health" }), h("dd", { text: "…" }));
  const base = `/api/v1/app/${enc(ctx.app)}/endpoint/${enc(ep.id)}`;
  const el = h(
    "section",
    { class: "card", "aria-label": title(ep), "data-endpoint": ep.id },
    h(
      "div",
      { class: "heading" },
      h("h3", { text: title(ep) }),
      h("span", { class: ep.disabled ? "badge off" : "badge on", text: ep.disabled ? "Disabled" : "Enabled" }),
    ),
    ep.name && ep.description ? h("p", { text: ep.description }) : null,
    h("p", { class: "mono url", text: ep.url }),
    h(
      "p",
      { class: "topics" },
      ep.eventTypes?.length
        ? ep.eventTypes.map((t) => h("span", { class: "tag", text: t }))
        : h("span", { class: "muted", text: "All events" }),
    ),
    health,
    h(
      "div",
      { class: "actions" },
      ctx.can.rules
        ? h("button", {
            type: "button",
            text: ctx.can.manage ? "Edit" : "Edit filter",
            onclick: async () => {
              if (await endpointDialog(ctx, ep)) await reload();
            },
          })
        : null,
      ctx.can.manage
        ? h("button", {
            type: "button",
            text: ep.disabled ? "Activate" : "Deactivate",
            onclick: async () => {
              await call("PATCH", base, { disabled: !ep.disabled });
              notice(ep.disabled ? `Activated ${title(ep)}.` : `Deactivated ${title(ep)}.`);
              await reload();
            },
          })
        : null,
      ctx.can.secret ? h("button", { type: "button", text: "Signing secret", onclick: () => secretDialog(base, ctx.can.rotate) }) : null,
      (ctx.can.manage || ctx.can.replay) && !ep.disabled
        ? h("button", { type: "button", text: "Send test event", onclick: () => testDialog(ctx, base) })
        : null,
      ctx.can.replay ? h("button", { type: "button", text: "Recover failed", onclick: () => recoverDialog(base) }) : null,
      h("a", { class: "button", href: `${ctx.base}/messages?endpoint=${enc(ep.id)}`, text: "Deliveries" }),
      !ctx.can.manage ? null : h("button", {
        type: "button",
        class: "danger",
        text: "Delete",
        onclick: async () => {
          const sure = await confirmAction(
            "Delete webhook",
            `Delete the webhook “${title(ep)}”? It will receive nothing more, and its delivery history goes with it.`,
            "Delete webhook",
          );
          if (!sure) return;
          await call("DELETE", base);
          notice(`Deleted ${title(ep)}.`);
          await reload();
        },
      }),
    ),
  );
  return { el, health, id: ep.id };
}

/**
 * The last 24 hours of a page of webhooks, in one call: the share of deliveries that
 * succeeded, the median time the receiver took over the latest attempts, and the last
 * failure with its reason.
 */
async function fillHealth(ctx, cards) {
  const since = new Date(Date.now() - DAY_MS).toISOString();
  const answer = await call("GET", `/api/v1/app/${enc(ctx.app)}/endpoint-health${query({ endpoint_id: cards.map((c) => c.id), since })}`);
  const byId = new Map(answer.data.map((x) => [x.endpointId, x]));
  for (const { health, id } of cards) {
    const stats = byId.get(id);
    if (!stats) continue;
    const finished = stats.success + stats.fail;
    const rate = finished ? `${Math.round((100 * stats.success) / finished)} % delivered` : "No deliveries";
    const median = stats.medianDurationMs != null ? `${stats.medianDurationMs} ms median` : "";
    const last = stats.lastFailure;
    fill(
      health,
      h("dt", { text: "Last 24 h" }),
      h("dd", { text: [rate, `${stats.success} ok, ${stats.fail} failed, ${stats.pending + stats.sending} pending`, median].filter(Boolean).join(" · ") }),
      last ? h("dt", { text: "Last failure" }) : null,
      last ? h("dd", { class: "failure", text: `${when(last.timestamp)}: ${reason(last)}` }) : null,
    );
  }
}

/** Why an attempt failed, in words. */
export function reason(attempt) {
  if (attempt.responseStatusCode > 0) return `HTTP ${attempt.responseStatusCode}`;
  return (attempt.errorKind || "no response").replaceAll("_", " ");
}

/** Event types offered as topics: the catalogue's names, archived ones left out. */
async function catalogue() {
  const page = await call("GET", `/api/v1/event-type${query({ limit: 250 })}`);
  return page.data.filter((t) => !t.archived).map((t) => t.name);
}

function lines(headers) {
  return Object.entries(headers || {})
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n");
}

function parseHeaders(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 1) throw new Error(`Custom headers: “${line.trim()}” is not “Name: value”.`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function parseJson(label, text) {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${label} is not JSON: ${err.message}`);
  }
}

function list(text) {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length ? items : null;
}

/** The create or edit dialog of a webhook; resolves with the saved endpoint. */
async function endpointDialog(ctx, ep) {
  const base = `/api/v1/app/${enc(ctx.app)}/endpoint`;
  let etag = null;
  let headers = {};
  if (ep) {
    const fresh = await exchange("GET", `${base}/${enc(ep.id)}`);
    ep = fresh.json;
    etag = fresh.etag;
    headers = (await call("GET", `${base}/${enc(ep.id)}/headers`)).headers;
  }
  const known = await catalogue();
  return dialog(ep ? "Edit webhook" : "Create webhook", (close) => {
    const name = h("input", { name: "name", maxlength: 256, value: ep?.name || "" });
    const description = h("textarea", { name: "description", rows: 2, value: ep?.description || "" });
    const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/webhooks", value: ep?.url || "" });
    const chosen = new Set(ep?.eventTypes || []);
    const boxes = known.map((t) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "topic", value: t, checked: chosen.has(t) }), t),
    );
    const other = h("input", {
      name: "other-topics",
      value: [...chosen].filter((t) => !known.includes(t)).join(", "),
    });
    const topics = h(
      "fieldset",
      {},
      h("legend", { text: "Topics" }),
      boxes.length ? h("div", { class: "checks" }, boxes) : h("p", { class: "muted", text: "The event-type catalogue is empty." }),
      field("Other topics", other, "Comma-separated event types. No topic at all means every event."),
    );
    const headerText = h("textarea", { name: "headers", rows: 3, value: lines(headers), placeholder: "X-Partner: acme" });
    const method = h(
      "select",
      { name: "method" },
      ["POST", "PUT", "PATCH", "DELETE", "GET"].map((m) => h("option", { value: m, text: m })),
    );
    method.value = ep?.method || "POST";
    const envelope = h("select", { name: "envelope" }, h("option", { value: "raw", text: "The payload as published" }), h("option", { value: "standard", text: "Standard Webhooks envelope" }));
    envelope.value = ep?.envelope || "raw";
    const payload = h("select", { name: "payload" }, h("option", { value: "full", text: "Full payload" }), h("option", { value: "diff", text: "Only what changed (entities)" }));
    payload.value = ep?.payload || "full";
    const rate = h("input", { name: "rate", type: "number", min: 1, max: 65535, value: ep?.throttleRate ?? "" });
    const channels = h("input", { name: "channels", value: (ep?.channels || []).join(", ") });
    const filter = h("textarea", { name: "filter", rows: 4, class: "mono", value: ep?.filter ? pretty(ep.filter) : "" });
    const transform = h("textarea", { name: "transform", rows: 4, class: "mono", value: ep?.transform ? pretty(ep.transform) : "" });
    const tryOut = tryIt(ctx, ep, filter, transform, known);
    const more = h(
      "details",
      { open: Boolean(ep && (ep.filter || ep.transform || Object.keys(headers).length)) },
      h("summary", { text: "More options" }),
      field("Custom headers", headerText, "One per line: Name: value. Sent with every delivery."),
      h("div", { class: "row" }, field("Method", method), field("Rate limit (per second)", rate)),
      h("div", { class: "row" }, field("Envelope", envelope), field("Payload", payload)),
      field("Channels", channels, "Comma-separated; only messages on these channels are delivered."),
      field("Filter", filter, 'JSON, e.g. {"payload.status": {"$in": ["paid", "shipped"]}}: only events for which it holds are delivered.'),
      field("Transform", transform, 'JSON, e.g. {"map": {"payload.status": {"shipped": "sent"}}}: rewrites the payload before the filter and signing.'),
      tryOut,
    );
    // A token that may change only filters and transforms sees the rest, unchangeable.
    const full = ctx.can.manage;
    if (!full) {
      for (const control of [name, description, url, other, headerText, method, envelope, payload, rate, channels, ...boxes.map((b) => b.querySelector("input"))]) {
        control.disabled = true;
      }
      more.open = true;
    }
    const error = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          error.textContent = "";
          try {
            if (!full) {
              const saved = await call(
                "PATCH",
                `${base}/${enc(ep.id)}`,
                { filter: parseJson("The filter", filter.value), transform: parseJson("The transform", transform.value) },
                etag ? { "If-Match": etag } : {},
              );
              notice("Filter saved.");
              close(saved);
              return;
            }
            const picked = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
            const eventTypes = [...new Set([...picked, ...(list(other.value) || [])])];
            const body = {
              name: name.value.trim() || null,
              description: description.value,
              url: url.value.trim(),
              eventTypes: eventTypes.length ? eventTypes : null,
              method: method.value,
              envelope: envelope.value,
              payload: payload.value,
              throttleRate: rate.value ? Number(rate.value) : null,
              channels: list(channels.value),
              filter: parseJson("The filter", filter.value),
              transform: parseJson("The transform", transform.value),
            };
            const wanted = parseHeaders(headerText.value);
            let saved;
            if (ep) {
              Object.assign(body, { disabled: ep.disabled, uid: ep.uid, version: ep.version, metadata: ep.metadata, party: ep.party, diffKeep: ep.diffKeep });
              saved = await call("PUT", `${base}/${enc(ep.id)}`, body, etag ? { "If-Match": etag } : {});
              if (lines(wanted) !== lines(headers)) {
                await call("PUT", `${base}/${enc(ep.id)}/headers`, { headers: wanted });
              }
            } else {
              body.headers = Object.keys(wanted).length ? wanted : null;
              saved = await call("POST", base, body);
            }
            notice(ep ? "Webhook saved." : "Webhook created.");
            close(saved);
          } catch (err) {
            error.textContent =
              err instanceof ApiError && err.status === 412
                ? "Someone else changed this webhook meanwhile. Close this dialog and open it again to see their change."
                : err.message;
          }
        },
      },
      field("Name", name),
      field("Description", description),
      field("URL", url),
      topics,
      more,
      error,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => close(), text: "Cancel" }),
        h("button", { type: "submit", class: "primary", text: ep ? "Save" : "Create" }),
      ),
    );
    queueMicrotask(() => (ep ? url : name).focus());
    return form;
  });
}

/**
 * "Try it": runs the filter and transform being edited against a sample, or the latest
 * message of the application, on the server (the filter-test route), and shows whether it
 * would be delivered and what would be sent.
 */
function tryIt(ctx, ep, filter, transform, known) {
  const eventType = h("input", { name: "try-event-type", value: ep?.eventTypes?.[0] || known[0] || "" });
  const sample = h("textarea", { name: "try-payload", rows: 4, class: "mono", placeholder: '{"status": "paid"}' });
  const out = h("div", { class: "try-out", "aria-live": "polite" });
  const box = h(
    "fieldset",
    { class: "try" },
    h("legend", { text: "Try it" }),
    ep ? null : h("p", { class: "muted", text: "Save the webhook first to try its filter on the server." }),
    h("div", { class: "row" }, field("Event type", eventType), h("div", { class: "field" },
      h("button", {
        type: "button",
        disabled: !ep,
        text: "Use the latest message",
        onclick: async () => {
          const page = await call("GET", `/api/v1/app/${enc(ctx.app)}/msg${query({ limit: 1, with_content: true })}`);
          const m = page.data[0];
          if (!m) return notice("This application has no message yet.");
          eventType.value = m.eventType;
          sample.value = pretty(m.payload);
        },
      }))),
    field("Sample payload", sample),
    h("button", {
      type: "button",
      disabled: !ep,
      text: "Try the filter",
      onclick: async () => {
        try {
          const result = await call("POST", `/api/v1/app/${enc(ctx.app)}/endpoint/${enc(ep.id)}/filter/test`, {
            eventType: eventType.value.trim(),
            payload: parseJson("The sample payload", sample.value) ?? {},
            filter: parseJson("The filter", filter.value) ?? undefined,
            transform: parseJson("The transform", transform.value) ?? undefined,
          });
          fill(
            out,
            h("p", { class: result.matches ? "ok" : "error", text: result.matches ? "Would be delivered." : "Would not be delivered." }),
            h("pre", { text: pretty(result.body) }),
          );
        } catch (err) {
          fill(out, h("p", { class: "error", role: "alert", text: err.message }));
        }
      },
    }),
    out,
  );
  return box;
}

async function secretDialog(base, mayRotate) {
  await dialog("Signing secret", (close) => {
    const value = h("code", { class: "secret", text: "Hidden" });
    const reveal = h("button", {
      type: "button",
      text: "Reveal",
      onclick: async () => {
        value.textContent = (await call("GET", `${base}/secret`)).key;
        reveal.hidden = true;
      },
    });
    return h(
      "div",
      {},
      h("p", { text: "Receivers check each delivery's signature with this secret (Standard Webhooks)." }),
      h("p", {}, value, " ", reveal),
      h(
        "div",
        { class: "actions" },
        !mayRotate ? null : h("button", {
          type: "button",
          class: "danger",
          text: "Rotate",
          onclick: async () => {
            await call("POST", `${base}/secret/rotate`, {});
            value.textContent = (await call("GET", `${base}/secret`)).key;
            reveal.hidden = true;
            notice("Secret rotated; the previous one keeps signing for 24 hours.");
          },
        }),
        h("button", { type: "button", onclick: () => close(), text: "Close" }),
      ),
    );
  });
}

/**
 * Sends an event type's example to this webhook alone (send-example): the catalogue's
 * types that have an example, and Svix's ping.
 */
async function testDialog(ctx, base) {
  const page = await call("GET", `/api/v1/event-type${query({ limit: 250 })}`);
  const types = page.data.filter((t) => !t.archived && t.schemas?.["1"]?.examples?.length).map((t) => t.name);
  await formDialog("Send a test event", "Send", () => {
    const type = h(
      "select",
      { name: "eventType" },
      types.map((t) => h("option", { value: t, text: t })),
      h("option", { value: "svix.ping", text: "svix.ping (a ping: {\"success\": true})" }),
    );
    return {
      fields: [field("Event type", type, "Its example payload goes to this webhook only, signed like any event, whatever the webhook subscribes to.")],
      focus: type,
      send: async () => {
        const msg = await call("POST", `${base}/send-example`, { eventType: type.value });
        notice(h("span", {}, `Sent a test ${msg.eventType} event: `, h("a", { href: `${ctx.base}/msg/${enc(msg.id)}`, text: msg.id })));
        return msg;
      },
    };
  });
}

async function recoverDialog(base) {
  await formDialog("Recover failed deliveries", "Recover", () => {
    const since = h("input", { type: "datetime-local", name: "since", required: true });
    return {
      fields: [field("Failed since", since, "Every delivery to this webhook that failed since then is attempted again.")],
      focus: since,
      send: async () => {
        await call("POST", `${base}/recover`, { since: new Date(since.value).toISOString() });
        notice("Failed deliveries since then are being sent again.");
        return true;
      },
    };
  });
}
