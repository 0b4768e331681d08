// The console's only door to the server: the /v1.0 API, with the signed-in bearer token.
// The token lives in sessionStorage: this tab only, gone when it closes.

const ROOT = "/v1.0";
const TOKEN_KEY = "datapolicy.token";

export class ApiError extends Error {
  // A Graph error body ({"error": {"code", "message"}}) or a network failure, as one type.
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  // A pasted "Bearer <token>" (as copied from a header) counts as the token alone.
  sessionStorage.setItem(TOKEN_KEY, value.trim().replace(/^Bearer\s+/i, ""));
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Seconds a Retry-After header asks for (its delay-seconds form), or null.
function retryAfter(response) {
  const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

// fetch() under the API root with the bearer token; resolves to the Response when it is 2xx,
// rejects with an ApiError otherwise.
export async function request(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}`, ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path.startsWith("http") ? path : ROOT + path, init);
  } catch (failure) {
    throw new ApiError(0, "networkError", `The server did not answer (${failure.message}).`, null);
  }
  if (response.ok) return response;
  let code = `http${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const error = (await response.json()).error;
    code = error.code ?? code;
    message = error.message ?? message;
  } catch {
    // not a Graph error body: keep the status line
  }
  throw new ApiError(response.status, code, message, retryAfter(response));
}

export async function getJson(path, headers = {}) {
  const response = await request(path, { headers });
  return { body: await response.json(), retryAfter: retryAfter(response) };
}

// OData string literal: single quotes doubled.
export function literal(value) {
  return `'${value.replaceAll("'", "''")}'`;
}

// One page of operations, filtered and sorted on the server.
export function listOperations({ status, userIdPrefix, orderBy, top = 100 }) {
  const conditions = [];
  if (status) conditions.push(`status eq ${literal(status)}`);
  if (userIdPrefix) conditions.push(`startswith(userId, ${literal(userIdPrefix)})`);
  const query = new URLSearchParams({ $top: String(top), $count: "true", $orderby: orderBy });
  if (conditions.length) query.set("$filter", conditions.join(" and "));
  return getJson(`/dataPolicyOperations?${query}`);
}

// Graph answers $search, and $count on a filtered list, only to clients that ask for eventual
// consistency (a service under `--profile graph` too); it changes nothing otherwise.
const EVENTUAL = { ConsistencyLevel: "eventual" };
const USER_FIELDS = "id,displayName,mail,userPrincipalName";

// What the user typed as Graph's $search on the directory: a word of the name or the start of
// the mail (as `datapolicy users list --search`); text with a double quote is Graph's own
// syntax, passed as it is.
export function searchExpression(text) {
  if (text.includes('"')) return text;
  const escaped = text.replaceAll("\\", "\\\\");
  return `"displayName:${escaped}" OR "mail:${escaped}"`;
}

// The first page of the users whose name or mail `text` starts (all users without it), in
// name order, searched on the server, with the total in @odata.count; the next page is
// @odata.nextLink's, for `moreUsers`.
export function searchUsers(text, top = 50) {
  const query = new URLSearchParams({
    $select: USER_FIELDS,
    $top: String(top),
    $count: "true",
    $orderby: "displayName",
  });
  if (text) query.set("$search", searchExpression(text));
  return getJson(`/users?${query}`, EVENTUAL);
}

export function moreUsers(nextLink) {
  return getJson(nextLink, EVENTUAL);
}

// The server refuses a $filter longer than 4,096 characters (odata/filter.py).
const MAX_FILTER_LENGTH = 4000;

// The directory entries of `ids` (for the names the operations table shows): one request per
// `id in (...)` list that fits in a $filter, one for a page of 100 uuids.
export async function usersById(ids) {
  const batches = [[]];
  let length = 0;
  for (const value of ids.map(literal)) {
    if (length + value.length + 1 > MAX_FILTER_LENGTH - 10 && batches.at(-1).length) {
      batches.push([]);
      length = 0;
    }
    batches.at(-1).push(value);
    length += value.length + 1;
  }
  const users = [];
  for (const values of batches) {
    const filter = values.length === 1 ? `id eq ${values[0]}` : `id in (${values.join(",")})`;
    const query = new URLSearchParams({ $select: USER_FIELDS, $top: "999", $filter: filter });
    users.push(...(await getJson(`/users?${query}`, EVENTUAL)).body.value);
  }
  return users;
}

// Graph's action when a location is given; without one, datapolicy's POST, which takes the
// server's default location (the action requires storageLocation).
export async function startExport(userId, location) {
  if (location) {
    await request(`/users/${encodeURIComponent(userId)}/exportPersonalData`, {
      method: "POST",
      body: { storageLocation: location },
    });
  } else {
    await request("/dataPolicyOperations", { method: "POST", body: { userId } });
  }
}

// datapolicy's action: a dry run publishes what the erasure would change and changes nothing.
// Without a location the package (and a real erasure's receipt) goes to the server's default.
// Resolves to the new operation's id, the last segment of the 202's Location.
export async function startErasure(userId, { dryRun, location }) {
  const body = { dryRun };
  if (location) body.storageLocation = location;
  const response = await request(`/users/${encodeURIComponent(userId)}/erasePersonalData`, {
    method: "POST",
    body,
  });
  return decodeURIComponent(new URL(response.headers.get("Location")).pathname.split("/").pop());
}

// An erasure waiting for approval, approved by this token's principal (not its requester's):
// the version the approver was shown (its ETag), or a 412 if it changed since.
export async function approve(operation) {
  await request(`/dataPolicyOperations/${encodeURIComponent(operation.id)}/approve`, {
    method: "POST",
    headers: { "If-Match": operation["@odata.etag"] ?? "*" },
  });
}

export function getOperation(id) {
  return getJson(`/dataPolicyOperations/${encodeURIComponent(id)}`);
}

export function deleteOperation(operation) {
  return request(`/dataPolicyOperations/${encodeURIComponent(operation.id)}`, {
    method: "DELETE",
    headers: { "If-Match": operation["@odata.etag"] ?? "*" },
  });
}

export async function downloadPackage(id) {
  const response = await request(`/dataPolicyOperations/${encodeURIComponent(id)}/package`);
  return response.blob();
}
