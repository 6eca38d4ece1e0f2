// Building the page. Every value is set as text (textContent, attributes): nothing from
// the API or the user is ever parsed as HTML.

/** An element: `h("button", {class: "primary", onclick: f}, "Save")`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked" || key === "disabled" || key === "open") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled field: the label names the control for assistive technology. */
let fieldCount = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCount}`;
  control.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hintEl);
}

/** A time as the reader's local date and time. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** JSON, pretty, for a `<pre>`. */
export function pretty(value) {
  try {
    return JSON.stringify(typeof value === "string" ? JSON.parse(value) : value, null, 2);
  } catch {
    return String(value);
  }
}

/**
 * A modal dialog (`<dialog>`, so focus stays inside and Escape closes it). `build`
 * gets a `close` function and returns the dialog's content. Resolves with what `close`
 * was given, or undefined when dismissed.
 */
export function dialog(title, build) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { "aria-labelledby": "dialog-title" });
    let result;
    const close = (value) => {
      result = value;
      dlg.close();
    };
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    fill(dlg, h("h2", { id: "dialog-title", text: title }), build(close));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/**
 * A dialog holding a form: `build()` returns its `fields`, the `send` run on submit, and
 * what to `focus` first. What `send` resolves with closes the dialog and is its result;
 * what it throws is shown in the form, which stays open.
 */
export function formDialog(title, submit, build) {
  return dialog(title, (close) => {
    const { fields, send, focus } = build();
    const error = h("p", { class: "error", role: "alert" });
    if (focus) queueMicrotask(() => focus.focus());
    return h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            close(await send());
          } catch (err) {
            error.textContent = err.message;
          }
        },
      },
      fields,
      error,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => close(), text: "Cancel" }),
        h("button", { type: "submit", class: "primary", text: submit }),
      ),
    );
  });
}

/** Asks before something that cannot be undone. */
export function confirmAction(title, message, action) {
  return dialog(title, (close) =>
    h(
      "div",
      {},
      h("p", { text: message }),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => close(false), text: "Cancel" }),
        h("button", { type: "button", class: "danger", onclick: () => close(true), text: action }),
      ),
    ),
  );
}

/** A short message at the top of the page, read out by screen readers. */
export function notice(text, kind = "info") {
  const area = document.getElementById("notices");
  if (!area) return;
  const el = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  area.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 10000 : 4000);
}
