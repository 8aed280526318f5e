// The offline queue: scans made without network, kept in IndexedDB (a reload
// or a closed tab keeps them) and sent in order with POST api/scans/sync when
// the network is back. Each keeps its client_op_id and the device's time, so a
// resend is a replay the server answers from its kept verdict, never a second scan.
//
// The sending loop lives in this module, not in the scan view: once loaded it
// keeps sending (the 'online' event and a retry every 10 s) whatever view is shown.

import { ApiError, Offline, newKey, post, session } from "./api.js";

const DB = "tracetrack-console";
const STORE = "queue"; // records keyed by client_op_id: {op, args, device_time, device_id, user, seq, state, code, message}
const DEVICE = "tracetrack.device";
const RETRY_MS = 10000;
const MAX_SYNC = 1000; // the server's bound on one list

let opened = null;
let records = []; // the store's records, oldest first (a copy kept after every change)
let syncing = false;
let added = 0; // orders records queued within one millisecond
let lastSync = null; // {at, items: [{record, verdict}]}: the verdicts of the last answer, shown until the next
const listeners = new Set();

/** This browser's scanner id (sync's device_id): one per browser, kept across sign-ins. */
export function deviceId() {
  let id = localStorage.getItem(DEVICE);
  if (!id) localStorage.setItem(DEVICE, (id = `console-${newKey()}`));
  return id;
}

function db() {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "client_op_id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

/** One transaction on the store; resolves when it is committed, to the request's result. */
async function store(mode, work) {
  const tx = (await db()).transaction(STORE, mode);
  const req = work(tx.objectStore(STORE));
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

async function reload() {
  records = ((await store("readonly", (s) => s.getAll())) || []).sort((a, b) => a.seq - b.seq);
  notify();
}

// Only the signed-in user's records are shown and sent: the server checks the
// operations with the caller's role and area, so another user's scans wait for them.
const mine = () => records.filter((r) => r.user === session.user()?.username);
export const pending = () => mine().filter((r) => r.state === "pending");
export const failed = () => mine().filter((r) => r.state === "error");
export const state = () => ({ pending: pending(), failed: failed(), syncing, lastSync, online: navigator.onLine });

/** Call fn(state) now and after every change; returns the unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  fn(state());
  return () => listeners.delete(fn);
}

function notify() {
  const now = state();
  badge(now);
  for (const fn of listeners) fn(now);
}

/** The header's network badge: "Offline · 3 queued", "3 queued", "1 to check". */
function badge({ pending: waiting, failed: bad, online }) {
  const node = document.getElementById("net");
  if (!node) return;
  const parts = [online ? null : "Offline", waiting.length ? `${waiting.length} queued` : null];
  if (bad.length) parts.push(`${bad.length} to check`);
  node.textContent = parts.filter(Boolean).join(" · ");
  node.classList.toggle("off", !online);
}

/** Queue one operation (op and args as POST api/scans/sync takes them); `uncertain`: it was
 * sent once and its answer lost, so the server may have it already. */
export async function add(op, args, uncertain = false) {
  const record = {
    uncertain,
    client_op_id: newKey(),
    seq: Date.now() * 1000 + (added++ % 1000),
    op,
    args,
    device_time: new Date().toISOString(),
    device_id: deviceId(),
    user: session.user()?.username,
    state: "pending",
  };
  await store("readwrite", (s) => s.put(record));
  await reload();
  if (navigator.onLine) trySync(); // queued while online (the server did not answer, or others wait): try now
  return record;
}

/** Drop a record: an error the user has read, or a queued scan undone before it was sent. */
export async function remove(clientOpId) {
  await store("readwrite", (s) => s.delete(clientOpId));
  await reload();
}

export const busy = () => syncing;

/**
 * Send the pending operations, oldest first; one sync at a time (this tab's
 * flag, and a Web Lock across tabs where the browser has them: plain-http
 * pages do not). Resolves to the answer's verdicts, or null when nothing was sent.
 */
export async function sync() {
  if (syncing || !pending().length) return null;
  syncing = true;
  notify();
  let items = null;
  try {
    items = navigator.locks
      ? await navigator.locks.request("tracetrack-scan-sync", { ifAvailable: true }, (lock) => lock && send())
      : await send();
    return items;
  } finally {
    syncing = false;
    notify();
    // scans queued while this list was on its way go next, not at the next retry
    const sent = new Set((items || []).map((i) => i.record.client_op_id));
    if (items && pending().some((r) => !sent.has(r.client_op_id))) setTimeout(trySync);
  }
}

// the loop's tries: an unexpected failure is logged, and the next try comes anyway
const trySync = () => sync().catch((err) => console.warn("offline queue not sent:", err));

async function send() {
  await reload(); // another tab may have sent some meanwhile
  const batch = pending().slice(0, MAX_SYNC);
  if (!batch.length) return null;
  let answer;
  try {
    answer = await post("api/scans/sync", {
      device_id: deviceId(),
      operations: batch.map((r) => ({ op: r.op, client_op_id: r.client_op_id, device_time: r.device_time, ...r.args })),
    });
  } catch (err) {
    if (err instanceof Offline) return null; // still no network: the next try sends them
    if (err instanceof ApiError) {
      lastSync = { at: new Date().toISOString(), error: err, items: [] };
      // one operation the server cannot read refuses the whole list (400 naming operations[i]):
      // that one is set aside for the user, so the others are not held back for ever
      const bad = err.code !== "duplicate_client_op_id" && /operations\[(\d+)\]/.exec(err.message || "");
      if (bad && batch[Number(bad[1])]) {
        const record = batch[Number(bad[1])];
        await store("readwrite", (s) => s.put({ ...record, state: "error", code: err.code, message: err.message }));
        await reload();
        setTimeout(trySync);
      }
      return null;
    }
    throw err;
  }
  const byId = new Map(batch.map((r) => [r.client_op_id, r]));
  const items = answer.results.map((verdict) => ({ record: byId.get(verdict.client_op_id), verdict }));
  await store("readwrite", (s) => {
    for (const { record, verdict } of items) {
      if (verdict.verdict === "ok") s.delete(record.client_op_id);
      // conflict (a concurrent change got in the way) is not kept by the server: resent next time
      else if (verdict.code !== "conflict") s.put({ ...record, state: "error", code: verdict.code, message: verdict.message });
    }
  });
  lastSync = { at: new Date().toISOString(), items };
  await reload();
  return items;
}

let started = false;

/** Load the queue and start sending: on 'online', and every 10 s while anything waits. */
export function start() {
  if (started) return;
  started = true;
  deviceId();
  window.addEventListener("online", () => {
    notify();
    trySync();
  });
  window.addEventListener("offline", notify);
  window.addEventListener("tt:signed-out", notify);
  setInterval(() => navigator.onLine && pending().length && trySync(), RETRY_MS);
  reload().then(() => navigator.onLine && trySync());
}
