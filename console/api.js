// The console's only way to the service: the role-checked /v1 API with the
// session cookie (same origin). Errors carry the HTTP status.

export class ApiError extends Error {
  // `data`: the answer's JSON body, when it had one (a 409 names what conflicts).
  constructor(status, message, data = null) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("application/json") ? await r.json() : await r.text();
  if (!r.ok) {
    const message = (data && data.error) || (typeof data === "string" ? data : r.statusText);
    throw new ApiError(r.status, message, typeof data === "object" ? data : null);
  }
  return data;
}

export const query = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
