// Failing endpoints across every application: the operator's morning check. Those failing
// now (the longest-failing first, with the last failure and its reason) and those disabled,
// each linking to its application's webhooks.

import { call, query, enc } from "./api.js";
import { h, fill, when } from "./dom.js";
import { reason, title } from "./endpoints.js";

export async function failingView(main) {
  const seen = await call("GET", `/api/v1/endpoint-health${query({ limit: 250 })}`);
  fill(
    main,
    h("h1", { text: "Failing endpoints" }),
    h("p", { class: "hint", text: "Webhooks whose latest attempts failed, across all applications, and those disabled (by hand or after failing for days)." }),
    section("Failing now", seen.failing, "No endpoint is failing.", true),
    section("Disabled", seen.disabled, "No endpoint is disabled.", false),
  );
}

function section(title, items, empty, failing) {
  const head = ["Application", "Webhook", "URL"];
  if (failing) head.push("Failing since", "Last failure");
  else head.push("Changed");
  return h(
    "section",
    { "aria-label": title },
    h("h2", { text: `${title} (${items.length})` }),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h("caption", { class: "sr-only", text: title }),
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col", text: t })))),
        h(
          "tbody",
          {},
          items.length
            ? items.map((item) => row(item, failing))
            : h("tr", {}, h("td", { colspan: head.length, class: "empty", text: empty })),
        ),
      ),
    ),
  );
}

function row(item, failing) {
  const ep = item.endpoint;
  const app = `#/apps/${enc(item.appId)}`;
  const cells = [
    h("td", {}, h("a", { href: app, text: item.appName })),
    h("td", { text: title(ep) }),
    h("td", { class: "mono url", text: ep.url }),
  ];
  if (failing) {
    const last = item.lastFailure;
    cells.push(
      h("td", { text: when(item.failingSince) }),
      h(
        "td",
        { class: "failure" },
        last
          ? h("a", { href: `${app}/msg/${enc(last.msgId)}`, text: `${when(last.timestamp)}: ${reason(last)}` })
          : "",
      ),
    );
  } else {
    cells.push(h("td", { text: when(ep.updatedAt) }));
  }
  return h("tr", {}, cells);
}
