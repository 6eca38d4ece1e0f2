// The API, as the page uses it: the token as a bearer header (never a cookie, so another
// site cannot make the browser send it), Svix's error shapes turned into readable text.

const KEY = "herald.session";

/** The signed-in session: {token, app} (app: the portal's one application). */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function signIn(token, app) {
  sessionStorage.setItem(KEY, JSON.stringify({ token, app: app || null }));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

/** Svix's errors: {code, detail} or, for validation, {detail: [{loc, msg}]}. */
function describe(status, body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail
      .map((d) => `${(d.loc || []).filter((l) => l !== "body").join(".")}: ${d.msg}`)
      .join("; ");
  }
  if (body && typeof body.detail === "string") return body.detail;
  return `the server answered ${status}`;
}

/** Calls the API; resolves with the JSON answer (null for 204), throws ApiError. */
export async function call(method, path, body, extra) {
  return (await exchange(method, path, body, extra)).json;
}

/** As `call`, with the answer's ETag: {json, etag}. `extra`: more request headers. */
export async function exchange(method, path, body, extra = {}) {
  const s = session();
  const headers = { Accept: "application/json", ...extra };
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return { json, etag: response.headers.get("ETag") };
}

/** A query string from the values that are set. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const enc = encodeURIComponent;
