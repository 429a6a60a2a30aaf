// The hub's HTTP API, with the signed-in API key or JWT as a bearer token.

export class ApiError extends Error {
  constructor(status, title, detail, errors = []) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors; // a 422's field errors: [{loc, msg}]
  }

  // A sentence for the page: "The hub refused (404 Not Found): ...".
  describe() {
    const head = `The hub refused (${this.status}${this.title ? " " + this.title : ""})`;
    const text = this.detail && this.detail !== this.title ? `${head}: ${this.detail}` : head;
    const fields = this.errors.map((e) => {
      const where = (e.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${e.msg}` : e.msg;
    });
    return fields.length ? `${text} (${fields.join("; ")})` : text;
  }
}

async function problemOf(resp) {
  let problem = {};
  try {
    problem = await resp.json();
  } catch (err) {
    problem = {};
  }
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  return new ApiError(resp.status, problem.title || resp.statusText, problem.detail || "", errors);
}

// The OAuth2 password flow: a user's name and password for a JWT ({access_token, expires_in}).
export async function signInAsUser(username, password) {
  let resp;
  try {
    resp = await fetch("/api/v1/auth/token", {
      method: "POST",
      headers: { Accept: "application/json" },
      body: new URLSearchParams({ grant_type: "password", username, password }),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "no answer", "the hub cannot be reached; check the connection");
  }
  if (!resp.ok) throw await problemOf(resp);
  return resp.json();
}

export class Api {
  constructor(token, { onUnauthorized } = {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, Accept: "application/json", ...extra };
  }

  async request(method, path, body) {
    let resp;
    try {
      resp = await fetch(`/api/v1${path}`, {
        method,
        headers: this.headers(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "no answer", "the hub cannot be reached; check the connection");
    }
    if (resp.ok) return resp.status === 204 ? null : resp.json();
    const error = await problemOf(resp);
    if (resp.status === 401 && this.onUnauthorized) this.onUnauthorized(error);
    throw error;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body ?? {});
  }
}
