// The hub's HTTP API, with the signed-in key as a bearer token (a JWT would travel the same way).

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }

  // A sentence for the page: "The hub refused (404 Not Found): ...".
  describe() {
    const head = `The hub refused (${this.status}${this.title ? " " + this.title : ""})`;
    return this.detail && this.detail !== this.title ? `${head}: ${this.detail}` : head;
  }
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
    let problem = {};
    try {
      problem = await resp.json();
    } catch (err) {
      problem = {};
    }
    const error = new ApiError(resp.status, problem.title || resp.statusText, problem.detail || "");
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
