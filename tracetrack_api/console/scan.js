// The scan station: a keyboard-wedge scanner types a QR and presses Enter.
// The first scan opens a parent; each next one is a child linked into it, until
// the parent is complete (then the next scan opens a new parent). Every answer
// is the large banner and a tone; the scan input keeps the focus throughout.
// Without network the scans go into the offline queue (queue.js) and the
// parent's progress counts them as queued, not confirmed.

import { ApiError, Offline, get, newKey, path, post } from "./api.js";
import { normalize } from "./qr.js";
import * as queue from "./queue.js";
import { MESSAGES, banner, beep, el, fill, showError, useStyle, when } from "./ui.js";

const FORMATS = "tracetrack.parentFormats"; // localStorage: known offline too
const AREAS = "tracetrack.areas";
const AREA = "tracetrack.scanArea"; // an admin's area for new parents
const OPEN = "tracetrack.scanParent"; // sessionStorage: the open parent survives a reload
const MORE = {
  scan_parent_first: "Scan a parent first",
  needs_network: "This needs the network",
  queued_refused: "Queued scans refused",
};

/** A list the server gives, remembered for a start without network. */
async function remembered(key, relative, pick) {
  try {
    const fresh = pick(await get(relative));
    localStorage.setItem(key, JSON.stringify(fresh));
    return fresh;
  } catch (err) {
    if (!(err instanceof Offline)) console.warn(`${relative}:`, err.message);
    return JSON.parse(localStorage.getItem(key) || "[]");
  }
}

const write = (relative, body) => post(relative, body, { headers: { "Idempotency-Key": newKey() } });

const describe = ({ op, args }) =>
  ({
    open_parent: `open parent ${args.qr_id}`,
    link_child: `${args.child_qr} → ${args.parent_qr}`,
    unlink_child: `take ${args.child_qr} out`,
    move_child: `move ${args.child_qr} → ${args.to_parent_qr}`,
  })[op];

function detailOf(bag, children) {
  return {
    qr: bag.qr_id,
    count: bag.child_count,
    capacity: bag.capacity,
    status: bag.status,
    reason: bag.closed_short_reason,
    children: children
      .map((c) => ({ qr: c.qr_id, at: c.updated_at, id: c.id }))
      .sort((a, b) => b.at.localeCompare(a.at) || b.id - a.id), // newest first
    known: true,
  };
}

export function mount(root, { user }) {
  useStyle("scan.css");
  queue.start();
  let formats = JSON.parse(localStorage.getItem(FORMATS) || "[]");
  let parent = JSON.parse(sessionStorage.getItem(OPEN) || "null");
  let chain = Promise.resolve(); // scans run one after the other, in the order they were typed
  let seenSync = queue.state().lastSync;

  const qrInput = (name, attrs) => el("input", { name, autocomplete: "off", autocapitalize: "characters", ...attrs });
  const input = qrInput("qr", { class: "scan", id: "scan-input", spellcheck: "false", enterkeyhint: "send" });
  input.placeholder = "SB00001 …";
  const area = user.role === "admin" ? el("select", { id: "scan-area", "aria-label": "Area of a new parent" }) : null;
  area?.addEventListener("change", () => {
    localStorage.setItem(AREA, area.value);
    input.focus();
  });
  const form = el(
    "form",
    { class: "card scan-form", onsubmit: submitted },
    el("label", { for: "scan-input" }, "Scan a parent, then its children"),
    input,
    area,
  );
  const undoButton = el("button", { type: "button", onclick: () => act(undo) }, "Undo last scan");
  const label = (text, node) => el("label", { class: "field" }, el("span", {}, text), node);
  const tool = (title, fn, ...fields) =>
    el("details", { class: "card tool" }, el("summary", {}, title), el("form", { class: "row", onsubmit: submit(fn) }, fields));
  const reason = el("input", { name: "reason", autocomplete: "off", maxlength: 500 });
  const closeForm = tool("Close this parent short", closeShort, label("Why (the last parent of a lot …)", reason),
    el("button", { class: "danger", type: "submit" }, "Close short"));
  const moveChild = qrInput("child");
  const moveTo = qrInput("to");
  const moveForm = tool("Move a child to another parent", move, label("Child QR", moveChild),
    label("Into parent QR", moveTo), el("button", { class: "primary", type: "submit" }, "Move"));
  const parentCard = el("section", { class: "card parent", id: "scan-parent", "aria-live": "polite" });
  const queueCard = el("section", { class: "card queue", id: "scan-queue", hidden: true });
  fill(root, form, parentCard, el("div", { class: "row tools" }, undoButton), closeForm, moveForm, queueCard);
  // a click anywhere but on a control gives the focus back to the scanner's input
  const refocus = (e) => e.target.closest("input, select, button, summary, a, label") || input.focus();
  root.addEventListener("click", refocus); // root outlives this view: removed by the cleanup below
  input.focus();

  // ---- state ----------------------------------------------------------------------------
  const offline = () => !navigator.onLine || queue.pending().length > 0; // queued first: the order is kept
  const isParent = (qr) => formats.some((f) => new RegExp(f.pattern).test(qr));
  const capacityOf = (qr) => formats.find((f) => new RegExp(f.pattern).test(qr))?.capacity || 30;
  const queuedHere = () => {
    // the children queued into the open parent, less those a queued unlink takes out again
    const kids = [];
    for (const r of parent ? queue.pending() : []) {
      if (r.op === "link_child" && r.args.parent_qr === parent.qr) kids.push(r.args.child_qr);
      else if (r.op === "unlink_child" && kids.includes(r.args.child_qr)) kids.splice(kids.indexOf(r.args.child_qr), 1);
    }
    return kids.reverse();
  };
  const shown = () => (parent ? parent.count + queuedHere().length : 0);
  const complete = () => parent && (parent.status === "completed" || shown() >= parent.capacity);

  function setParent(next) {
    parent = next;
    if (parent) sessionStorage.setItem(OPEN, JSON.stringify(parent));
    else sessionStorage.removeItem(OPEN);
    render();
  }

  async function refresh(qr = parent?.qr) {
    if (!qr) return;
    try {
      const d = await get(path`api/bags/${qr}`);
      if (d.bag.type === "parent") setParent(detailOf(d.bag, d.children));
    } catch (err) {
      if (err instanceof Offline) return;
      // not this caller's to see (another area's, or gone): nothing of it stays on screen
      if (parent?.qr === qr && (err.status === 404 || err.status === 403) && !queuedHere().length) setParent(null);
      throw err;
    }
  }

  // ---- scanning -------------------------------------------------------------------------
  function submitted(event) {
    event.preventDefault();
    const raw = input.value;
    input.value = ""; // at once: the scanner may already be typing the next code
    if (raw.trim()) chain = chain.then(() => scan(raw)).catch(report);
    input.focus();
  }

  async function scan(raw) {
    const qr = normalize(raw);
    if (!qr) return fail("invalid_qr", `"${raw.trim()}" is not a QR code`);
    // Which scan opens a parent: the parent formats (GET api/parent-formats, remembered
    // for offline) say so locally, which works without network; a format added since
    // is caught by the server's not_a_child (see linkChild). A complete parent takes no
    // more children: the next scan must be a parent.
    if (!parent || complete() || isParent(qr)) return openParent(qr);
    return linkChild(qr);
  }

  async function openParent(qr) {
    const args = { qr_id: qr };
    if (area?.value) args.dispatch_area = area.value;
    if (offline()) return queueOpen(qr, args);
    let answer;
    try {
      answer = await write("api/scans/parent", args);
    } catch (err) {
      if (err instanceof Offline) return queueOpen(qr, args);
      if (err.code === "not_a_parent" && parent && complete())
        return fail("scan_parent_first", `${parent.qr} is complete: scan the next parent (${err.message})`);
      if (err.code === "not_a_parent" && !parent) return fail("scan_parent_first", err.message);
      throw err;
    }
    setParent(detailOf(answer.bag, []));
    const full = answer.child_count >= answer.capacity || answer.bag.status === "completed";
    banner(
      full ? "warn" : "ok",
      `${answer.created ? "New parent" : "Parent"} ${qr}${full ? " is complete" : ""}`,
      `${answer.child_count} / ${answer.capacity} children${full ? ": scan the next parent" : ": scan its children"}`,
    );
    beep(true);
    await refresh(qr);
  }

  async function linkChild(qr) {
    const p = parent.qr;
    if (offline()) return queueLink(qr);
    let answer;
    try {
      answer = await write("api/scans/child", { parent_qr: p, child_qr: qr });
    } catch (err) {
      // sent, no answer: it may have landed (queued again, a replay is safe; see undo)
      if (err instanceof Offline) return queueLink(qr, true);
      // a parent of a format this page does not know yet: open it
      if (err.code === "not_a_child") return openParent(qr);
      if (err.code === "parent_full" || err.code === "parent_closed") refresh().catch(() => {});
      throw err;
    }
    const linked = answer.result === "linked";
    const children = linked ? [{ qr, at: new Date().toISOString(), id: 0 }, ...parent.children] : parent.children;
    setParent({ ...parent, count: answer.child_count, capacity: answer.capacity, status: answer.parent_status, children });
    const progress = `${p}: ${answer.child_count} / ${answer.capacity}`;
    if (complete()) banner("ok", "Parent complete", `${progress}: ${qr} was the last. Scan the next parent.`);
    else banner(linked ? "ok" : "info", linked ? `${qr} linked` : `${qr} is already in this parent`, progress);
    beep(true);
  }

  // ---- offline: queued, counted, not confirmed ----------------------------------------------
  async function queueOpen(qr, args) {
    if (formats.length && !isParent(qr)) {
      return fail("scan_parent_first", `${qr} is not a parent QR${parent ? `; ${parent.qr} is complete` : ""}`);
    }
    await queue.add("open_parent", args);
    if (parent?.qr !== qr) {
      setParent({ qr, count: 0, capacity: capacityOf(qr), status: "queued", children: [], known: false });
    } else render();
    banner("warn", `Parent ${qr} queued (offline)`, "Scan its children: they are sent when the network is back.");
    beep(true);
  }

  async function queueLink(qr, uncertain = false) {
    if (queuedHere().includes(qr) || parent.children.some((c) => c.qr === qr)) {
      banner("info", `${qr} is already in this parent`, parent.children.some((c) => c.qr === qr) ? null : "(queued)");
      return beep(true);
    }
    await queue.add("link_child", { parent_qr: parent.qr, child_qr: qr }, uncertain);
    render();
    const progress = `${parent.qr}: ${shown()} / ${parent.capacity}, queued (offline), not confirmed yet`;
    banner("warn", complete() ? "Parent complete (queued)" : `${qr} queued`, progress);
    beep(true);
  }

  // ---- corrections ------------------------------------------------------------------------
  function submit(fn) {
    return (event) => {
      event.preventDefault();
      act(fn);
    };
  }

  async function act(fn) {
    chain = chain.then(fn).catch(report);
    await chain;
    input.focus();
  }

  async function undo() {
    const last = queue.pending().at(-1);
    if (last) {
      // not sent yet: undoing it is taking it out of the queue
      if (queue.busy()) return banner("warn", "Sending the queue", "Try again in a moment.");
      if (last.uncertain) {
        // sent once and its answer lost: the server may have it, so it is taken out by an unlink
        // queued after it (right whether the link landed or not), not by forgetting it
        await queue.add("unlink_child", { child_qr: last.args.child_qr });
        render();
        banner("info", "Undo queued", `${last.args.child_qr} is taken out when the network is back`);
        return beep(true);
      }
      await queue.remove(last.client_op_id);
      if (last.op === "open_parent" && parent && !parent.known && parent.qr === last.args.qr_id) setParent(null);
      else render();
      banner("info", "Queued scan removed", describe(last));
      return beep(true);
    }
    if (!navigator.onLine) return fail("needs_network", "Undo of a scan the server has needs the network.");
    const answer = await write("api/scans/undo", {});
    banner("ok", `Undone: ${answer.child_qr} is out`, `${answer.parent_qr}: ${answer.child_count} / ${answer.capacity}`);
    beep(true);
    await refresh(answer.parent_qr);
  }

  async function move() {
    const child = normalize(moveChild.value);
    const to = normalize(moveTo.value || parent?.qr || "");
    if (!child || !to) return fail("invalid_qr", "Give the child's QR and the parent's QR.");
    if (offline()) {
      await queue.add("move_child", { child_qr: child, to_parent_qr: to });
      render();
      banner("warn", `Move of ${child} queued (offline)`, `into ${to}: sent when the network is back`);
      return beep(true);
    }
    const a = await write("api/scans/move", { child_qr: child, to_parent_qr: to });
    const moved = a.result === "moved";
    banner(
      moved ? "ok" : "info",
      moved ? `${child} moved into ${to}` : `${child} is already in ${to}`,
      `${a.from_parent_qr}: ${a.from_child_count} · ${to}: ${a.child_count} / ${a.capacity}`,
    );
    beep(true);
    moveChild.value = "";
    if (parent && (parent.qr === a.from_parent_qr || parent.qr === to)) await refresh();
  }

  async function closeShort() {
    if (!parent) return fail("scan_parent_first", "Scan the parent to close first.");
    if (!reason.value.trim()) return fail("validation_error", "Say why it is closed short.");
    if (offline()) return fail("needs_network", "Closing a parent short is not queued offline: wait for the network.");
    const a = await write("api/scans/close", { parent_qr: parent.qr, reason: reason.value.trim() });
    banner(
      "ok",
      a.result === "closed" ? `${a.bag.qr_id} closed short` : `${a.bag.qr_id} was already closed`,
      `${a.bag.child_count} / ${a.bag.capacity} · ${a.bag.closed_short_reason}`,
    );
    beep(true);
    reason.value = "";
    closeForm.open = false;
    await refresh();
  }

  function fail(code, detail) {
    banner("error", MORE[code] || MESSAGES[code] || code, detail);
    beep(false);
  }

  function report(err) {
    if (err instanceof Offline) return banner("warn", "Offline", "No answer from the server: try again.");
    if (err instanceof ApiError && MORE[err.code]) return fail(err.code, err.message);
    showError(err);
    if (!(err instanceof ApiError)) console.error(err);
  }

  // ---- drawing ------------------------------------------------------------------------------
  function render() {
    if (!parent) {
      const names = formats.map((f) => f.name).join(", ");
      return fill(parentCard, el("p", { class: "muted" }, `No parent open: scan a parent QR${names ? ` (${names} …)` : ""}.`));
    }
    const queued = queuedHere();
    const n = shown();
    const bar = el("span");
    bar.style.width = `${Math.min(100, (100 * n) / (parent.capacity || 30))}%`; // CSSOM: allowed by the CSP
    const mono = (qr) => el("span", { class: "mono" }, qr);
    fill(
      parentCard,
      el("div", { class: "parent-head" }, el("h2", {}, "Parent ", el("span", { class: "mono", id: "parent-qr" }, parent.qr)),
        el("span", { class: `badge ${parent.status}` }, parent.status.replace("_", " "))),
      el("p", { class: "big-number", id: "parent-count" }, `${n} / ${parent.capacity}`),
      el("div", { class: "progress", role: "progressbar", "aria-valuenow": n, "aria-valuemax": parent.capacity }, bar),
      queued.length ? el("p", { class: "queued-note" }, `${queued.length} queued offline, not confirmed yet`) : null,
      parent.known ? null : el("p", { class: "muted" }, "Opened offline: children it had before are not counted here."),
      complete() ? el("p", { class: "complete", id: "parent-complete" },
        parent.reason ? `Closed short: ${parent.reason}. ` : "Parent complete. ", "Scan the next parent.") : null,
      el("ol", { class: "list children", reversed: true },
        queued.map((qr) => el("li", { class: "queued" }, mono(qr), el("span", { class: "badge" }, "queued"))),
        parent.children.map((c) => el("li", {}, mono(c.qr), el("span", { class: "muted" }, when(c.at))))),
    );
    if (!moveTo.value) moveTo.placeholder = parent.qr;
  }

  function renderQueue({ pending, failed, syncing, lastSync, online }) {
    queueCard.hidden = !pending.length && !failed.length && !lastSync;
    const line = (r, ...more) => el("li", {}, el("span", { class: "mono" }, describe(r)), ...more);
    const verdicts = lastSync?.items || [];
    const bad = verdicts.filter((v) => v.verdict.verdict !== "ok").length;
    const status = !online ? `Offline: ${pending.length} queued, sent when the network is back`
      : syncing ? `Sending ${pending.length}…` : `${pending.length || "Nothing"} waiting to be sent`;
    const said = (v) => (v.verdict === "ok" ? v.result?.result || "ok" : MESSAGES[v.code] || v.code);
    fill(
      queueCard,
      el("h2", {}, "Queued scans"),
      el("p", { id: "queue-status" }, status),
      pending.length ? el("button", { type: "button", disabled: !online || syncing, onclick: () => act(queue.sync) }, "Send now") : null,
      el("ol", { class: "list", id: "queue-pending" }, pending.map((r) => line(r, el("span", { class: "badge" }, "queued")))),
      failed.length ? el("h3", {}, "Not accepted: check each, then acknowledge") : null,
      el("ul", { class: "list", id: "queue-failed" }, failed.map((r) => line(r,
        el("strong", { class: "verdict error" }, MESSAGES[r.code] || r.code),
        el("span", { class: "muted" }, r.message),
        el("button", { type: "button", onclick: () => act(() => queue.remove(r.client_op_id)) }, "Acknowledge")))),
      lastSync ? el("details", { class: "last-sync", open: bad > 0 || verdicts.length <= 12 },
        el("summary", {}, lastSync.error ? `Last sync refused: ${lastSync.error.message}`
          : `Last sync ${when(lastSync.at)}: ${verdicts.length - bad} accepted, ${bad} not`),
        el("ul", { class: "list", id: "sync-verdicts" }, verdicts.map(({ record, verdict }) => line(record,
          el("span", { class: `verdict ${verdict.verdict}` }, said(verdict)),
          verdict.replayed ? el("span", { class: "muted" }, "(sent before)") : null)))) : null,
    );
  }

  const unsubscribe = queue.subscribe((now) => {
    renderQueue(now);
    render();
    if (now.lastSync && now.lastSync !== seenSync) {
      seenSync = now.lastSync;
      const bad = now.lastSync.items.filter((v) => v.verdict.verdict !== "ok").length;
      if (now.lastSync.error) showError(now.lastSync.error);
      else if (bad) fail("queued_refused", `${bad} of ${now.lastSync.items.length} queued scans were not accepted: see below.`);
      else banner("ok", `${now.lastSync.items.length} queued scans sent`, "All accepted.");
      if (!now.lastSync.error && !bad) beep(true);
      if (parent && !offline()) refresh().catch(report);
    }
  });

  // ---- start ---------------------------------------------------------------------------------
  remembered(FORMATS, "api/parent-formats", (list) => list).then((list) => {
    formats = list;
    render();
  });
  if (area) {
    remembered(AREAS, "api/areas", (page) => page.items).then((list) => {
      const chosen = localStorage.getItem(AREA) || "";
      fill(
        area,
        el("option", { value: "" }, "Area of a new parent…"),
        list.map((a) => el("option", { value: a.name, selected: a.name === chosen }, a.label || a.name)),
      );
    });
  }
  if (parent && !offline()) refresh().catch(report);
  render();
  const stayFocused = () => document.activeElement === document.body && input.focus();
  window.addEventListener("focus", stayFocused);
  return () => {
    unsubscribe();
    root.removeEventListener("click", refocus);
    window.removeEventListener("focus", stayFocused);
  };
}
