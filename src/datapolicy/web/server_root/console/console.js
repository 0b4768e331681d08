// The web console: a plain ES module over the /v1.0 API (api.js). Everything shown is built
// with textContent, never parsed as HTML, so no value from the server can become markup.

import * as api from "./api.js";

const ACTIVE = new Set(["notStarted", "running"]);
const TYPES = { exportPersonalData: "Export", erasePersonalData: "Erasure" }; // operationType
const FAST_POLL_MS = 1500; // while something moves
const IDLE_POLL_MS = 15000; // to notice operations other clients start
const $ = (id) => document.getElementById(id);

const state = {
  orderBy: "submittedDateTime desc",
  operations: new Map(), // id -> the operation as last listed
  rows: new Map(), // id -> its <tr>
  users: new Map(), // id -> directory user
  detail: null, // the operation shown in the detail dialog
  timer: null,
  generation: 0, // of the latest refresh: an answer to an older one is stale
  pollFailed: false, // the problem shown is the polling's own (cleared when it recovers)
};

const dates = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

function time(value) {
  if (!value) return element("span", { className: "muted", textContent: "—" });
  return element("time", { dateTime: value, textContent: dates.format(new Date(value)) });
}

// What the operation is, as a word ("Export"); an operation without the property is an export.
function typeName(operation) {
  const type = operation.operationType ?? "exportPersonalData";
  return TYPES[type] ?? type;
}

function userName(userId) {
  const user = state.users.get(userId);
  return user?.displayName || userId;
}

function announce(text) {
  $("announcer").textContent = text;
}

function showProblem(error) {
  const problem = $("problem");
  problem.hidden = !error;
  problem.textContent = error ? `${error.message}${error.code ? ` (${error.code})` : ""}` : "";
}

// --- signing in -------------------------------------------------------------------------

function takeTokenFromFragment() {
  // `/console#token=...`: the fragment never reaches the server; it is dropped from the
  // address bar (and history) at once.
  const match = location.hash.match(/^#token=(.+)$/);
  if (match) {
    api.signIn(decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
}

function showSignedIn(signedIn) {
  $("sign-in").hidden = signedIn;
  $("workspace").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

function signOut(reason) {
  api.signOut();
  clearTimeout(state.timer);
  state.generation++; // answers still in flight are dropped
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  state.operations.clear();
  state.rows.clear();
  $("operations").tBodies[0].replaceChildren();
  showSignedIn(false);
  showProblem(reason ?? null);
  $("token").focus();
}

async function start() {
  showSignedIn(true);
  await Promise.all([refresh(), loadUsers()]);
}

// --- the operations table ---------------------------------------------------------------

async function refresh() {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  let delay = IDLE_POLL_MS;
  try {
    const { body, retryAfter } = await api.listOperations({
      status: $("filter-status").value,
      userIdPrefix: $("filter-user").value.trim(),
      orderBy: state.orderBy,
    });
    // A newer refresh started meanwhile (a sort, a filter, a start): it renders and schedules.
    if (generation !== state.generation) return;
    render(body.value, body["@odata.count"]);
    if (state.detail) await refreshDetail();
    const moving = body.value.some((o) => ACTIVE.has(o.status));
    const watching = state.detail && ACTIVE.has(state.detail.status);
    if (moving || watching) delay = FAST_POLL_MS;
    if (retryAfter !== null) delay = Math.max(delay, retryAfter * 1000);
    if (state.pollFailed) showProblem(null); // an action's message stays until the next action
    state.pollFailed = false;
  } catch (error) {
    if (generation !== state.generation) return;
    if (error.status === 401) return signOut(error);
    showProblem(error);
    state.pollFailed = true;
    delay = Math.max(5000, (error.retryAfter ?? 0) * 1000);
  }
  if (generation === state.generation) state.timer = setTimeout(refresh, delay);
}

function render(operations, count) {
  const body = $("operations").tBodies[0];
  const seen = new Set();
  operations.forEach((operation, index) => {
    seen.add(operation.id);
    const before = state.operations.get(operation.id);
    if (before && before.status !== operation.status) {
      announce(`${typeName(operation)} for ${userName(operation.userId)}: ${operation.status}.`);
    }
    state.operations.set(operation.id, operation);
    let row = state.rows.get(operation.id);
    if (!row) {
      row = newRow(operation);
      state.rows.set(operation.id, row);
    }
    updateRow(row, operation);
    // Move a row only when it is out of place: moving the focused row would lose focus.
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
  });
  for (const [id, row] of state.rows) {
    if (!seen.has(id)) {
      row.remove();
      state.rows.delete(id);
      state.operations.delete(id);
    }
  }
  $("empty").hidden = operations.length > 0;
  $("count").textContent = count === undefined ? "" : `(${count})`;
}

function newRow(operation) {
  const details = element("button", { type: "button", textContent: "Details" });
  details.addEventListener("click", () => openDetail(operation.id));
  const bar = element("progress", { max: 100 });
  const row = element(
    "tr",
    {},
    element("td", { className: "user" }),
    element("td", { className: "type" }),
    element("td", {}, element("span", { className: "status" })),
    element("td", { className: "progress" }, bar, element("span", { className: "percent" })),
    element("td", { className: "submitted" }),
    element("td", { className: "completed" }),
    element("td", {}, details),
  );
  row.dataset.id = operation.id;
  return row;
}

function updateRow(row, operation) {
  const [user, type, status, progress, submitted, completed, actions] = row.cells;
  const name = userName(operation.userId);
  const what = typeName(operation);
  if (user.textContent !== name) user.textContent = name;
  user.title = operation.userId;
  if (type.textContent !== what) type.textContent = what;
  const badge = status.firstChild;
  badge.textContent = operation.status;
  badge.dataset.status = operation.status;
  const percent = Math.round(operation.progress ?? 0);
  const bar = progress.querySelector("progress");
  bar.value = percent;
  bar.setAttribute("aria-label", `Progress of the ${what.toLowerCase()} for ${name}`);
  progress.querySelector(".percent").textContent = `${percent}%`;
  submitted.replaceChildren(time(operation.submittedDateTime));
  completed.replaceChildren(time(operation.completedDateTime));
  actions.firstChild.setAttribute("aria-label", `Details of the ${what.toLowerCase()} for ${name}`);
}

function sortBy(key) {
  const [current, direction] = state.orderBy.split(" ");
  const next = current === key && direction === "asc" ? "desc" : "asc";
  state.orderBy = `${key} ${next}`;
  for (const header of $("operations").tHead.rows[0].cells) {
    const button = header.querySelector("button[data-sort]");
    if (button) {
      const sorted = button.dataset.sort === key;
      header.setAttribute("aria-sort", sorted ? `${next}ending` : "none");
    }
  }
  refresh();
}

// --- the user directory and starting exports ---------------------------------------------

async function loadUsers() {
  try {
    for (const user of await api.listUsers()) state.users.set(user.id, user);
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  }
  showUsers();
  for (const [id, row] of state.rows) updateRow(row, state.operations.get(id));
}

function showUsers() {
  const text = $("user-filter").value.trim().toLowerCase();
  const select = $("user");
  const chosen = select.value;
  const options = [];
  for (const user of state.users.values()) {
    const label = `${user.displayName ?? user.id} <${user.mail ?? user.userPrincipalName ?? user.id}>`;
    if (text && !`${label} ${user.id}`.toLowerCase().includes(text)) continue;
    options.push(element("option", { value: user.id, textContent: label }));
    if (options.length >= 200) break;
  }
  select.replaceChildren(...options);
  if (chosen) select.value = chosen;
}

async function startExport(event) {
  event.preventDefault();
  const userId = $("user").value;
  if (!userId) return;
  const button = event.submitter;
  button.disabled = true;
  try {
    await api.startExport(userId, $("location").value.trim());
    announce(`Export for ${userName(userId)} started.`);
    showProblem(null);
    await refresh();
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  } finally {
    button.disabled = false;
  }
}

// --- the detail dialog -------------------------------------------------------------------

function isLocal(location) {
  return typeof location === "string" && (location.startsWith("/") || location.startsWith("file:"));
}

function openDetail(id) {
  state.detail = state.operations.get(id);
  showDetail();
  $("detail").showModal();
  refresh(); // polls fast while the operation shown is moving
}

async function refreshDetail() {
  try {
    state.detail = (await api.getOperation(state.detail.id)).body;
    showDetail();
  } catch (error) {
    if (error.status !== 404) throw error;
    $("detail").close();
  }
}

function showDetail() {
  const operation = state.detail;
  const fields = [
    ["Operation id", operation.id],
    ["User", `${userName(operation.userId)} (${operation.userId})`],
    ["Type", operation.operationType ?? "exportPersonalData"],
    ["Status", operation.status],
    ["Progress", `${Math.round(operation.progress ?? 0)}%`],
    ["Storage location", operation.storageLocation ?? "—"],
    ["Submitted", time(operation.submittedDateTime)],
    ["Completed", time(operation.completedDateTime)],
  ];
  if (operation.error) {
    fields.push(["Error", `${operation.error.message} (${operation.error.code})`]);
  }
  $("detail-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [
      element("dt", { textContent: name }),
      element("dd", {}, value),
    ]),
  );
  $("download").hidden = !(operation.status === "complete" && isLocal(operation.storageLocation));
  $("remove").textContent = ACTIVE.has(operation.status) ? "Cancel export" : "Delete";
}

async function download() {
  const { id } = state.detail;
  try {
    const blob = await api.downloadPackage(id);
    // A plain link cannot carry the bearer token: hand the browser the bytes instead.
    const url = URL.createObjectURL(blob);
    const link = element("a", { href: url, download: `${id}.zip`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    announce(`Package ${id}.zip downloaded.`);
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  }
}

function confirm(text, action) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), {
      once: true,
    });
  });
}

async function remove() {
  const operation = state.detail;
  const name = userName(operation.userId);
  const cancelling = ACTIVE.has(operation.status);
  const question = cancelling
    ? `Cancel the export for ${name}? It stops, and what it wrote so far is removed.`
    : `Delete the operation for ${name}? Its package is removed too.`;
  if (!(await confirm(question, cancelling ? "Cancel export" : "Delete"))) return;
  try {
    await api.deleteOperation(operation);
    $("detail").close();
    announce(`Export for ${name} ${cancelling ? "cancelled" : "deleted"}.`);
    await refresh();
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  }
}

// --- wiring ------------------------------------------------------------------------------

function debounce(action, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(action, ms);
  };
}

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    api.signIn($("token").value);
    $("token").value = "";
    start();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("start-form").addEventListener("submit", startExport);
  $("user-filter").addEventListener("input", showUsers);
  $("filter-form").addEventListener("submit", (event) => event.preventDefault());
  $("filter-status").addEventListener("change", refresh);
  $("filter-user").addEventListener("input", debounce(refresh, 300));
  for (const button of document.querySelectorAll("button[data-sort]")) {
    button.addEventListener("click", () => sortBy(button.dataset.sort));
  }
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("close", () => {
    state.detail = null;
  });
  $("download").addEventListener("click", download);
  $("remove").addEventListener("click", remove);
}

wire();
takeTokenFromFragment();
if (api.token()) start();
else showSignedIn(false);
