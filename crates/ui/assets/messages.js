// The delivery log of an application: messages filtered and paged on the server, and one
// message with its payload and, per webhook, its delivery and attempts (resend from there).

import { call, query, enc } from "./api.js";
import { h, fill, field, when, pretty, notice } from "./dom.js";
import { reason } from "./endpoints.js";

const STATUS = { 0: "Delivered", 1: "Pending", 2: "Failed", 3: "Sending" };
const BADGE = { 0: "on", 1: "wait", 2: "off", 3: "wait" };

function statusBadge(code, text) {
  return h("span", { class: `badge ${BADGE[code] || ""}`, text: STATUS[code] || text || String(code) });
}

/** Local `datetime-local` value → ISO 8601, or undefined. */
function iso(local) {
  return local ? new Date(local).toISOString() : undefined;
}

/** ISO 8601 → a `datetime-local` value in the reader's time zone. */
function local(isoValue) {
  if (!isoValue) return "";
  const d = new Date(isoValue);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function messagesView(main, ctx, params) {
  const appPath = `/api/v1/app/${enc(ctx.app)}`;
  const [endpoints, types] = await Promise.all([
    call("GET", `${appPath}/endpoint${query({ limit: 250 })}`),
    call("GET", `/api/v1/event-type${query({ limit: 250 })}`),
  ]);
  // Typed, with the catalogue offered: messages may use types not in the catalogue.
  const eventType = h("input", { name: "event-type", list: "event-type-names", placeholder: "Any", autocomplete: "off", value: params.get("eventType") || "" });
  const typeNames = h("datalist", { id: "event-type-names" }, types.data.map((t) => h("option", { value: t.name })));
  const channel = h("input", { name: "channel", value: params.get("channel") || "" });
  const endpoint = h(
    "select",
    { name: "endpoint" },
    h("option", { value: "", text: "Any" }),
    endpoints.data.map((e) => h("option", { value: e.id, text: e.name || e.description || e.url })),
  );
  // The lists hold the first 250; a webhook or type asked for beyond them is added.
  const wanted = params.get("endpoint");
  if (wanted && !endpoints.data.some((e) => e.id === wanted)) {
    const e = await call("GET", `${appPath}/endpoint/${enc(wanted)}`).catch(() => null);
    if (e) endpoint.append(h("option", { value: e.id, text: e.name || e.description || e.url }));
  }
  endpoint.value = wanted || "";
  const status = h(
    "select",
    { name: "status" },
    h("option", { value: "", text: "Any" }),
    [0, 1, 2, 3].map((s) => h("option", { value: String(s), text: STATUS[s] })),
  );
  status.value = params.get("status") || "";
  const after = h("input", { type: "datetime-local", name: "after", value: local(params.get("after")) });
  const before = h("input", { type: "datetime-local", name: "before", value: local(params.get("before")) });
  const note = h("p", { class: "hint" });
  const syncStatus = () => {
    status.disabled = !endpoint.value;
    note.textContent = endpoint.value ? "" : "Choose a webhook to filter by delivery status.";
  };
  endpoint.addEventListener("change", syncStatus);
  syncStatus();

  const here = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    const qs = next.toString();
    return `${ctx.base}/messages${qs ? `?${qs}` : ""}`;
  };
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = here({
          eventType: eventType.value.trim(),
          channel: channel.value.trim(),
          endpoint: endpoint.value,
          status: endpoint.value ? status.value : "",
          after: iso(after.value),
          before: iso(before.value),
          iterator: "",
        });
      },
    },
    field("Event type", eventType),
    typeNames,
    field("Channel", channel),
    field("Webhook", endpoint),
    field("Status", status),
    field("After", after),
    field("Before", before),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary", text: "Filter" })),
    note,
  );

  const ep = params.get("endpoint");
  const filters = {
    limit: 50,
    iterator: params.get("iterator"),
    before: params.get("before"),
    after: params.get("after"),
  };
  const page = ep
    ? await call("GET", `${appPath}/endpoint/${enc(ep)}/msg${query({ ...filters, status: params.get("status") })}`)
    : await call("GET", `${appPath}/msg${query({ ...filters, event_types: params.get("eventType"), channel: params.get("channel") })}`);
  const rows = page.data.filter((m) => !ep || !params.get("eventType") || m.eventType === params.get("eventType"));
  const table = h(
    "table",
    {},
    h("caption", { class: "sr-only", text: "Messages" }),
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col", text: "Message" }), h("th", { scope: "col", text: "Event type" }), ep ? h("th", { scope: "col", text: "Status" }) : null, h("th", { scope: "col", text: "Published" })),
    ),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((m) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { class: "mono", href: `${ctx.base}/msg/${enc(m.id)}`, text: m.id })),
              h("td", { text: m.eventType }),
              ep ? h("td", {}, statusBadge(m.status, m.statusText)) : null,
              h("td", { text: when(m.timestamp) }),
            ),
          )
        : h("tr", {}, h("td", { colspan: ep ? 4 : 3, class: "empty", text: "No message matches." })),
    ),
  );
  // Pages run newest first; `iterator` goes on to older ones, `prevIterator` back.
  const pager = h(
    "div",
    { class: "actions" },
    params.get("iterator") && page.prevIterator
      ? h("a", { class: "button", href: here({ iterator: page.prevIterator }), text: "Newer" })
      : null,
    !page.done && page.iterator ? h("a", { class: "button", href: here({ iterator: page.iterator }), text: "Older" }) : null,
  );
  fill(main, h("h2", { text: "Delivery log" }), form, h("div", { class: "scroll" }, table), pager);
}

export async function messageView(main, ctx, msgId) {
  const appPath = `/api/v1/app/${enc(ctx.app)}`;
  const msg = await call("GET", `${appPath}/msg/${enc(msgId)}`);
  const payload = pretty(msg.payload);
  const deliveries = h("div");
  fill(
    main,
    h("p", { class: "crumbs" }, h("a", { href: `${ctx.base}/messages`, text: "Delivery log" }), " / "),
    h("h2", { class: "mono", text: msg.id }),
    h(
      "dl",
      { class: "facts" },
      h("dt", { text: "Event type" }),
      h("dd", { text: msg.eventType }),
      h("dt", { text: "Published" }),
      h("dd", { text: when(msg.timestamp) }),
      msg.eventId ? [h("dt", { text: "Event id" }), h("dd", { class: "mono", text: msg.eventId })] : null,
      msg.channels?.length ? [h("dt", { text: "Channels" }), h("dd", { text: msg.channels.join(", ") })] : null,
    ),
    h(
      "div",
      { class: "heading" },
      h("h3", { text: "Payload" }),
      h("button", {
        type: "button",
        text: "Copy",
        onclick: async () => {
          await navigator.clipboard.writeText(payload);
          notice("Payload copied.");
        },
      }),
    ),
    h("pre", { class: "payload", tabindex: "0", "aria-label": "Payload", text: payload }),
    h("h3", { text: "Deliveries" }),
    deliveries,
  );
  await drawDeliveries(deliveries, appPath, msg.id, ctx.can);
}

async function drawDeliveries(el, appPath, msgId, can) {
  const [destinations, attempts] = await Promise.all([
    call("GET", `${appPath}/msg/${enc(msgId)}/endpoint${query({ limit: 250 })}`),
    call("GET", `${appPath}/attempt/msg/${enc(msgId)}${query({ limit: 250 })}`),
  ]);
  if (!destinations.data.length) {
    fill(el, h("p", { class: "empty", text: "No webhook was to receive this message." }));
    return;
  }
  fill(
    el,
    destinations.data.map((d) => {
      const mine = attempts.data.filter((a) => a.endpointId === d.id);
      return h(
        "section",
        { class: "card delivery", "aria-label": `Delivery to ${d.description || d.url}`, "data-endpoint": d.id },
        h("div", { class: "heading" }, h("h4", { class: "mono", text: d.url }), statusBadge(d.status, d.statusText)),
        d.nextAttempt ? h("p", { class: "muted", text: `Next attempt ${when(d.nextAttempt)}` }) : null,
        h("div", { class: "scroll" }, h(
          "table",
          {},
          h("caption", { class: "sr-only", text: "Attempts" }),
          h(
            "thead",
            {},
            h("tr", {}, ["Attempted", "Result", "Status code", "Duration", "Trigger", ""].map((t) => h("th", { scope: "col", text: t }))),
          ),
          h(
            "tbody",
            {},
            mine.length
              ? mine.map((a) => attemptRow(a))
              : h("tr", {}, h("td", { colspan: 6, class: "empty", text: "Not attempted yet." })),
          ),
        )),
        !can.replay ? null : h(
          "div",
          { class: "actions" },
          h("button", {
            type: "button",
            text: "Resend",
            onclick: async () => {
              await call("POST", `${appPath}/msg/${enc(msgId)}/endpoint/${enc(d.id)}/resend`);
              notice("Resent.");
              await waitForAttempt(el, appPath, msgId, d.id, mine.length, can);
            },
          }),
        ),
      );
    }),
  );
}

function attemptRow(a) {
  const body = h("pre", { class: "response", hidden: true, text: a.response || "(empty)" });
  const toggle = h("button", {
    type: "button",
    class: "quiet",
    "aria-expanded": "false",
    text: "Response",
    onclick: () => {
      body.hidden = !body.hidden;
      toggle.setAttribute("aria-expanded", String(!body.hidden));
    },
  });
  return [
    h(
      "tr",
      { class: "attempt" },
      h("td", { text: when(a.timestamp) }),
      h("td", {}, a.status === 0 ? h("span", { class: "badge on", text: "Succeeded" }) : h("span", { class: "badge off", text: `Failed: ${reason(a)}` })),
      h("td", { text: a.responseStatusCode > 0 ? String(a.responseStatusCode) : "–" }),
      h("td", { text: `${a.responseDurationMs} ms` }),
      h("td", { text: a.triggerType === 1 ? "Manual" : "Scheduled" }),
      h("td", {}, toggle),
    ),
    h("tr", { class: "response-row" }, h("td", { colspan: 6 }, body)),
  ];
}

/** After a resend: redraws once the endpoint has more attempts than `had` (up to 15 s). */
async function waitForAttempt(el, appPath, msgId, endpointId, had, can) {
  for (let i = 0; i < 30; i++) {
    const attempts = await call("GET", `${appPath}/attempt/msg/${enc(msgId)}${query({ limit: 250, endpoint_id: endpointId })}`);
    if (attempts.data.length > had) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await drawDeliveries(el, appPath, msgId, can);
}
