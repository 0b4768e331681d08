// The web console: a plain ES module over the /v1.0 API (api.js). Everything shown is built
// with textContent, never parsed as HTML, so no value from the server can become markup.

import * as api from "./api.js";
import { readEntry } from "./zip.js";

const ACTIVE = new Set(["notStarted", "running"]);
const TYPES = { exportPersonalData: "Export", erasePersonalData: "Erasure" }; // operationType
const FAST_POLL_MS = 1500; // while something moves
const IDLE_POLL_MS = 15000; // to notice operations other clients start
const USERS_PER_PAGE = 50;
const SUMMARY = "records/erasure/summary.jsonl";
const RECEIPT = "receipt.html";
const $ = (id) => document.getElementById(id);

const state = {
  sort: { key: "submittedDateTime", direction: "desc" },
  listed: { operations: [], count: undefined }, // the last page listed, in the server's order
  operations: new Map(), // id -> the operation as last listed
  rows: new Map(), // id -> its <tr>
  users: new Map(), // id -> directory user, from searches and name look-ups
  unknownUsers: new Set(), // ids the directory was asked for and does not hold
  userSearch: { generation: 0, next: null, count: undefined, shown: 0 },
  // The erasure panel's: the user and location, the ids of its dry run and real erasure, the
  // id whose result is shown, and that one's package (blob, blobId) for its downloads.
  erasure: null,
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

// An erasure that waits, notStarted, for another principal's approval (the operation's
// `approval`, docs/erasure.md); only then is "Approve erasure" offered.
function awaitsApproval(operation) {
  return operation.approval?.status === "pending";
}

// The status as the list shows it: an erasure waiting for approval says so.
function statusLabel(operation) {
  return awaitsApproval(operation) ? "Waiting for approval" : operation.status;
}

// A principal of an approval (`requestedBy`, `approvedBy`): its subject and application.
function principalText(principal) {
  return `${principal?.subject ?? "?"} (application ${principal?.application ?? "?"})`;
}

// Who approved an erasure, and when, as the detail view shows it.
function approvalText(approval) {
  if (approval.status === "pending") {
    return "Waiting for approval by another person holding PersonalData.Erase.All (not its requester)";
  }
  return element(
    "span",
    {},
    `Approved by ${principalText(approval.approvedBy)}, `,
    time(approval.approvedDateTime),
  );
}

// Whether an erasure is a dry run (its `dryRun`), as the detail view says it; null for an
// export (and for an erasure of a service older than the property, which does not say).
function dryRunText(operation) {
  if (operation.dryRun === true) {
    return "Yes: it changes nothing; its package holds the rows it would change";
  }
  if (operation.dryRun === false) return "No: the erasure itself, which cannot be undone";
  return null;
}

// What approving the erasure shown lets run, said beside "Approve erasure" so that the
// irreversible erasure is never taken for a dry run: which it is, whose data, who asked.
function approvalNote(operation) {
  const name = userName(operation.userId);
  const what =
    operation.dryRun === true
      ? `Approving lets a dry run of the erasure of ${name} run: it changes nothing.`
      : operation.dryRun === false
        ? `Approving lets the erasure of ${name}'s personal data run: once it runs, it cannot be undone.`
        : `Approving lets this erasure of ${name} run; the service does not say whether it is a dry run.`;
  const by = operation.approval?.requestedBy;
  return by ? `${what} Requested by ${principalText(by)}.` : what;
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

// `/console#token=...`, on load or when a link changes the fragment of an open tab (after
// signing out, say): the fragment never reaches the server; it is dropped from the address
// bar (and history) at once. True when it held a token.
function takeTokenFromFragment() {
  const match = location.hash.match(/^#token=(.+)$/);
  if (!match) return false;
  api.signIn(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
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
  state.userSearch.generation++;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  state.listed = { operations: [], count: undefined };
  state.operations.clear();
  state.rows.clear();
  state.users.clear();
  state.unknownUsers.clear();
  state.erasure = null;
  $("erasure").hidden = true;
  $("operations").tBodies[0].replaceChildren();
  $("user").replaceChildren();
  $("user-filter").value = "";
  showSignedIn(false);
  showProblem(reason ?? null);
  $("token").focus();
}

// A new token: the problem shown was the last one's (a malformed token, say), not this one's.
async function start() {
  showProblem(null);
  state.pollFailed = false;
  showSignedIn(true);
  await Promise.all([refresh(), searchUsers()]);
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
      orderBy: serverOrder(),
    });
    // A newer refresh started meanwhile (a sort, a filter, a start): it renders and schedules.
    if (generation !== state.generation) return;
    state.listed = { operations: body.value, count: body["@odata.count"] };
    showList();
    lookUpNames(body.value.map((operation) => operation.userId));
    if (state.detail) await refreshDetail();
    if (state.erasure) await followErasure();
    const moving = body.value.some((o) => ACTIVE.has(o.status));
    const watching =
      (state.detail && ACTIVE.has(state.detail.status)) || erasureActive();
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

// The server orders by every column but the user's name, which the directory holds, not the
// operations' store: sorted by "User", the newest page is listed and sorted here.
function serverOrder() {
  const { key, direction } = state.sort;
  return key === "user" ? "submittedDateTime desc" : `${key} ${direction}`;
}

function showList() {
  const { operations, count } = state.listed;
  const { key, direction } = state.sort;
  let shown = operations;
  if (key === "user") {
    const names = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });
    const sign = direction === "asc" ? 1 : -1;
    // Array.prototype.sort is stable: equal names keep the server's newest-first order.
    shown = [...operations].sort(
      (a, b) => sign * names.compare(userName(a.userId), userName(b.userId)),
    );
  }
  render(shown, count);
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
    element("td", { className: "actions-cell" }, details),
  );
  // The column's name, which a phone-width layout shows beside each value (console.css).
  const headers = $("operations").tHead.rows[0].cells;
  for (const [index, cell] of [...row.cells].entries()) {
    cell.dataset.label = headers[index].textContent.trim();
  }
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
  badge.textContent = statusLabel(operation);
  badge.dataset.status = operation.status;
  badge.dataset.approval = operation.approval?.status ?? "";
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
  const { key: current, direction } = state.sort;
  const next = current === key && direction === "asc" ? "desc" : "asc";
  state.sort = { key, direction: next };
  for (const header of $("operations").tHead.rows[0].cells) {
    const button = header.querySelector("button[data-sort]");
    if (button) {
      const sorted = button.dataset.sort === key;
      header.setAttribute("aria-sort", sorted ? `${next}ending` : "none");
    }
  }
  refresh();
}

// --- the user directory ------------------------------------------------------------------

// The names of the operations' users that no search has brought yet, in one request; the
// table is shown again (and re-sorted by name) when they come.
async function lookUpNames(ids) {
  const wanted = [...new Set(ids)].filter((id) => !state.users.has(id) && !state.unknownUsers.has(id));
  if (!wanted.length) return;
  try {
    const found = await api.usersById(wanted);
    for (const user of found) state.users.set(user.id, user);
    for (const id of wanted) if (!state.users.has(id)) state.unknownUsers.add(id);
  } catch (error) {
    if (error.status === 401) return signOut(error);
    return; // the ids stay shown in place of names; the next refresh asks again
  }
  if (api.token()) showList();
}

function userLabel(user) {
  return `${user.displayName ?? user.id} <${user.mail ?? user.userPrincipalName ?? user.id}>`;
}

// The first page of the users the search text finds, searched by the server in the whole
// directory (a list cut at a page says so, and "Show more" fetches the next); a user whose id
// is the text comes first.
async function searchUsers() {
  const search = state.userSearch;
  const generation = ++search.generation;
  const text = $("user-filter").value.trim();
  $("user-count").textContent = "Searching…";
  try {
    const [{ body }, byId] = await Promise.all([
      api.searchUsers(text, USERS_PER_PAGE),
      text ? api.usersById([text]) : [],
    ]);
    if (generation !== search.generation) return;
    $("user").replaceChildren();
    search.shown = 0;
    search.count = undefined;
    const found = new Set(body.value.map((user) => user.id));
    const extra = byId.filter((user) => !found.has(user.id));
    showUsers({ ...body, value: [...extra, ...body.value] });
    if (search.count !== undefined) search.count += extra.length;
    $("user-count").textContent = foundText(search);
  } catch (error) {
    if (generation !== search.generation) return;
    if (error.status === 401) return signOut(error);
    $("user-count").textContent = "";
    showProblem(error);
  }
}

async function moreUsers() {
  const search = state.userSearch;
  const generation = search.generation;
  const button = $("more-users");
  button.disabled = true;
  try {
    const { body } = await api.moreUsers(search.next);
    if (generation === search.generation) showUsers(body);
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  } finally {
    button.disabled = false;
  }
}

// A page of users appended to the picker, and what share of the matches it now shows.
function showUsers(page) {
  const search = state.userSearch;
  const select = $("user");
  for (const user of page.value) {
    state.users.set(user.id, user);
    select.append(element("option", { value: user.id, textContent: userLabel(user) }));
  }
  if (select.selectedIndex < 0 && select.options.length === 1) select.selectedIndex = 0;
  search.shown += page.value.length;
  search.next = page["@odata.nextLink"] ?? null;
  search.count = page["@odata.count"] ?? search.count;
  $("more-users").hidden = !search.next;
  $("user-count").textContent = foundText(search);
}

function foundText({ shown, count, next }) {
  const numbers = new Intl.NumberFormat();
  if (!next) {
    if (shown === 0) return "No user matches.";
    return shown === 1 ? "1 user." : `All ${numbers.format(shown)} users shown.`;
  }
  const total = count === undefined ? "more" : numbers.format(count);
  return `Showing ${numbers.format(shown)} of ${total}: refine the search, or show more.`;
}

// --- starting exports and erasures -------------------------------------------------------

async function startOperation(event) {
  event.preventDefault();
  const userId = $("user").value;
  const button = event.submitter;
  if (!userId) {
    showProblem({ message: "Choose a user first." });
    return;
  }
  const location = $("location").value.trim();
  button.disabled = true;
  try {
    if (button.value === "dry-run") {
      const dryRun = await api.startErasure(userId, { dryRun: true, location });
      state.erasure = { userId, location, dryRun, real: null, shown: null, blob: null };
      showErasure();
      announce(`Dry run of the erasure for ${userName(userId)} started.`);
    } else {
      await api.startExport(userId, location);
      announce(`Export for ${userName(userId)} started.`);
    }
    showProblem(null);
    await refresh();
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(erasureError(error));
  } finally {
    button.disabled = false;
  }
}

// A 403 on starting an erasure: the token lacks the permission; what to do about it.
function erasureError(error) {
  if (error.status !== 403) return error;
  return {
    message:
      `${error.message} Erasing needs a token with PersonalData.Erase.All, and its dry run ` +
      "User.Export.All too: sign out, and sign in with one.",
    code: error.code,
  };
}

// --- the erasure panel: dry run, then the erasure, then its receipt -----------------------

function erasureActive() {
  const erasure = state.erasure;
  if (!erasure) return false;
  const operation = state.operations.get(erasure.real ?? erasure.dryRun);
  return !operation || ACTIVE.has(operation.status);
}

function showErasure() {
  const erasure = state.erasure;
  $("erasure").hidden = !erasure;
  if (!erasure) return;
  $("erasure-user").textContent = userName(erasure.userId);
  $("erasure-summary").hidden = true;
  $("erasure-package").hidden = true;
  $("erasure-receipt").hidden = true;
  $("erase").hidden = true;
  $("erase").textContent = `Erase ${userName(erasure.userId)}`;
  $("erasure-step").textContent = "Dry run: starting…";
}

// The panel's operation, fetched; its result (the summary, and a complete erasure's receipt)
// read from its package once.
async function followErasure() {
  const erasure = state.erasure;
  const id = erasure.real ?? erasure.dryRun;
  if (!id) return;
  let operation;
  try {
    operation = (await api.getOperation(id)).body;
  } catch (error) {
    if (error.status !== 404) throw error;
    $("erasure-step").textContent = "The operation was deleted.";
    return;
  }
  if (state.erasure !== erasure) return;
  state.operations.set(operation.id, { ...state.operations.get(operation.id), ...operation });
  const what = erasure.real ? "Erasure" : "Dry run";
  const percent = Math.round(operation.progress ?? 0);
  const step = $("erasure-step");
  if (awaitsApproval(operation)) {
    step.textContent =
      `${what}: waiting for approval. Another person holding PersonalData.Erase.All (not ` +
      "its requester), signed in in their own tab, approves it: Details, then Approve erasure.";
  } else if (operation.status === "notStarted") {
    step.textContent = `${what}: not started; it waits for a worker.`;
  } else if (operation.status === "running") {
    step.textContent = `${what}: running, ${percent}%.`;
  } else if (operation.status === "failed") {
    step.textContent = `${what} failed: ${operation.error?.message ?? "no reason given"}.`;
  } else if (operation.status === "complete" && erasure.shown !== operation.id) {
    await showErasureResult(operation);
    erasure.shown = operation.id; // a failed read is tried again at the next refresh
  }
}

async function showErasureResult(operation) {
  const erasure = state.erasure;
  const name = userName(erasure.userId);
  const step = $("erasure-step");
  if (!isLocal(operation.storageLocation)) {
    step.textContent =
      `${erasure.real ? "Erasure" : "Dry run"} complete; its package is at ` +
      `${operation.storageLocation}, which the console cannot read.`;
    $("erase").hidden = Boolean(erasure.real);
    return;
  }
  const blob = await api.downloadPackage(operation.id);
  const lines = (await readEntry(blob, SUMMARY)) ?? "";
  if (state.erasure !== erasure) return; // closed meanwhile
  const summary = lines.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  erasure.blob = blob;
  erasure.blobId = operation.id;
  if (erasure.real) {
    step.textContent = `Erasure of ${name} complete: below, what was done; the receipt records it.`;
    $("erasure-receipt").hidden = false;
  } else {
    step.textContent =
      `Dry run complete: nothing has changed. Below, what erasing ${name} would do, per ` +
      "table and file source; the dry-run package shows each row and cell.";
    $("erasure-package").hidden = false;
    $("erase").hidden = false;
  }
  const body = $("erasure-summary").tBodies[0];
  body.replaceChildren(
    ...summary.map((line) =>
      element(
        "tr",
        {},
        element("td", { textContent: line.source }),
        element("td", { textContent: line.table ?? "files" }),
        element("td", { textContent: line.rule }),
        element("td", { textContent: String(line.rows ?? line.files ?? 0) }),
        element("td", { textContent: String(line.cells ?? 0) }),
        element("td", { textContent: line.reason ?? "" }),
      ),
    ),
  );
  const headers = $("erasure-summary").tHead.rows[0].cells;
  for (const row of body.rows) {
    for (const [index, cell] of [...row.cells].entries()) {
      cell.dataset.label = headers[index].textContent;
    }
  }
  $("erasure-summary").hidden = summary.length === 0;
}

async function erase() {
  const erasure = state.erasure;
  const name = userName(erasure.userId);
  const question =
    `Erase ${name}? The rows the dry run listed are deleted or masked in the databases, ` +
    "and the files deleted. This cannot be undone.";
  if (!(await confirm(question, `Erase ${name}`))) return;
  const button = $("erase");
  button.disabled = true;
  try {
    erasure.real = await api.startErasure(erasure.userId, {
      dryRun: false,
      location: erasure.location,
    });
    button.hidden = true;
    $("erasure-package").hidden = true;
    $("erasure-summary").hidden = true;
    $("erasure-step").textContent = "Erasure: starting…";
    announce(`Erasure of ${name} started.`);
    showProblem(null);
    await refresh();
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(erasureError(error));
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
    ...(dryRunText(operation) ? [["Dry run", dryRunText(operation)]] : []),
    ["Status", operation.status],
    ["Progress", `${Math.round(operation.progress ?? 0)}%`],
    ["Storage location", operation.storageLocation ?? "—"],
    ["Submitted", time(operation.submittedDateTime)],
    ["Completed", time(operation.completedDateTime)],
  ];
  const written = operation.progressDetail;
  if (written) {
    const amount = `${written.records.toLocaleString("en")} rows, ${written.bytes.toLocaleString("en")} bytes of files`;
    fields.push(["Written", operation.status === "running" ? `${amount}; now ${written.part}` : amount]);
  }
  if (operation.approval?.requestedBy) {
    fields.push(["Requested by", principalText(operation.approval.requestedBy)]);
  }
  if (operation.approval) {
    fields.push(["Approval", approvalText(operation.approval)]);
  }
  if (operation.error) {
    fields.push(["Error", `${operation.error.message} (${operation.error.code})`]);
  }
  $("detail-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [
      element("dt", { textContent: name }),
      element("dd", {}, value),
    ]),
  );
  const erasure = operation.operationType === "erasePersonalData";
  const readable = operation.status === "complete" && isLocal(operation.storageLocation);
  $("download").hidden = !readable;
  $("receipt").hidden = !(readable && erasure);
  const waiting = awaitsApproval(operation);
  $("approve").hidden = !waiting;
  $("approve").textContent = operation.dryRun === true ? "Approve erasure (dry run)" : "Approve erasure";
  const note = $("approve-note");
  note.hidden = !waiting;
  note.textContent = waiting ? approvalNote(operation) : "";
  note.dataset.dryRun = String(operation.dryRun ?? "");
  const word = erasure ? "erasure" : "export";
  $("remove").textContent = ACTIVE.has(operation.status) ? `Cancel ${word}` : "Delete";
}

// A plain link cannot carry the bearer token: the browser is handed the bytes instead.
function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = element("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  announce(`${name} downloaded.`);
}

// receipt.html of a complete erasure's package, saved as receipt-<id>.html; a dry run's
// package holds none, and says so.
async function saveReceipt(blob, id) {
  const receipt = await readEntry(blob, RECEIPT);
  if (receipt === null) {
    showProblem({ message: "This erasure was a dry run: its package holds no receipt." });
    return;
  }
  save(new Blob([receipt], { type: "text/html" }), `receipt-${id}.html`);
}

async function download(receipt) {
  const { id } = state.detail;
  try {
    const blob = await api.downloadPackage(id);
    if (receipt) await saveReceipt(blob, id);
    else save(blob, `${id}.zip`);
  } catch (error) {
    if (error.status === 401) return signOut(error);
    showProblem(error);
  }
}

async function approve() {
  const operation = state.detail;
  const button = $("approve");
  button.disabled = true;
  try {
    await api.approve(operation);
    announce(`Erasure for ${userName(operation.userId)} approved.`);
    showProblem(null);
    await refresh();
  } catch (error) {
    if (error.status === 401) return signOut(error);
    // A 403 says why (the requester's own approval, or no permission); a 412, that the erasure
    // changed since it was shown: the refresh shows it as it is now, to be read again.
    showProblem(error);
    if (error.status === 412) await refresh();
  } finally {
    button.disabled = false;
  }
}

// The erasure panel's downloads: the package the panel read its summary from.
function saveFromPanel(receipt) {
  const { blob, blobId } = state.erasure;
  const saving = receipt ? saveReceipt(blob, blobId) : save(blob, `${blobId}.zip`);
  Promise.resolve(saving).catch(showProblem);
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
  const what = typeName(operation);
  const question = cancelling
    ? `Cancel the ${what.toLowerCase()} for ${name}? It stops, and what it wrote so far is removed.`
    : `Delete the operation for ${name}? Its package is removed too.`;
  if (!(await confirm(question, cancelling ? `Cancel ${what.toLowerCase()}` : "Delete"))) return;
  try {
    await api.deleteOperation(operation);
    $("detail").close();
    announce(`${what} for ${name} ${cancelling ? "cancelled" : "deleted"}.`);
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
  window.addEventListener("hashchange", () => {
    if (takeTokenFromFragment()) start();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("start-form").addEventListener("submit", startOperation);
  $("user-filter").addEventListener("input", debounce(searchUsers, 300));
  $("more-users").addEventListener("click", moreUsers);
  $("erase").addEventListener("click", erase);
  $("erasure-package").addEventListener("click", () => saveFromPanel(false));
  $("erasure-receipt").addEventListener("click", () => saveFromPanel(true));
  $("erasure-close").addEventListener("click", () => {
    state.erasure = null;
    showErasure();
  });
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
  $("download").addEventListener("click", () => download(false));
  $("receipt").addEventListener("click", () => download(true));
  $("approve").addEventListener("click", approve);
  $("remove").addEventListener("click", remove);
}

wire();
takeTokenFromFragment();
if (api.token()) start();
else showSignedIn(false);
