// Lookup (any role): a bag by its QR (#/lookup/<qr>): what it is now (type, status, area,
// parent, children, bill) and its history as a timeline, newest first.

import { get, path } from "./api.js";
import { el, fill, headline, showError, useStyle, when } from "./ui.js";

const lookupHref = (qr) => `#/lookup/${encodeURIComponent(qr)}`;

export function mount(root, { user, params, go }) {
  useStyle("lookup.css");
  const qr = params.join("/"); // a QR may hold "/": the shell splits the hash there
  const input = el("input", {
    class: "scan",
    name: "qr",
    value: qr,
    "aria-label": "Scan or type any QR",
    placeholder: "Scan any QR",
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
  });
  const form = el("form", { class: "card", role: "search" }, input);
  const found = el("div", { class: "found" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = input.value.trim().toUpperCase();
    // same QR: look again (the hash would not change); another: the hash, so Back works
    input.select(); // the next scan replaces it
    if (wanted === qr) show(found, wanted, user);
    else if (wanted) go("lookup", wanted);
  });
  fill(root, el("h1", {}, "Lookup"), form, found);
  if (qr) show(found, qr, user);
  input.focus();
  input.select();
}

async function show(found, qr, user) {
  fill(found, el("p", { class: "loading" }, "Loading…"));
  let detail, history;
  try {
    detail = await get(path`api/bags/${qr}`);
    history = await get(path`api/bags/${qr}/history`);
  } catch (err) {
    showError(err);
    // another area's bag is, for a dispatcher, an unknown one (404): both read "No such bag"
    fill(found, el("p", { class: "card not-found" }, headline(err)));
    return;
  }
  fill(found, current(detail, user), timeline(history));
}

function current({ bag, parent, children, bill }, user) {
  const billLink =
    bill && (user.role === "biller" || user.role === "admin")
      ? el("a", { href: `#/bills/${encodeURIComponent(bill.bill_no)}` }, bill.bill_no)
      : bill?.bill_no;
  return el(
    "section",
    { class: "card bag", dataset: { qr: bag.qr_id } },
    el("h2", {}, el("span", { class: "mono" }, bag.qr_id), " ", el("span", { class: `badge ${bag.status}` }, bag.status)),
    el(
      "dl",
      { class: "facts" },
      fact("Type", bag.type),
      fact("Area", bag.dispatch_area),
      bag.type === "child" ? fact("Parent", parent ? el("a", { class: "mono", href: lookupHref(parent.qr_id) }, parent.qr_id) : "none") : null,
      bag.type === "parent" ? fact("Children", `${bag.child_count} / ${bag.capacity}`) : null,
      bag.closed_short_reason ? fact("Closed short", bag.closed_short_reason) : null,
      fact("Bill", billLink ? [billLink, ` (${bill.status})`] : "none"),
    ),
    children.length
      ? el("ol", { class: "children" }, children.map((c) => el("li", {}, el("a", { class: "mono", href: lookupHref(c.qr_id) }, c.qr_id))))
      : null,
  );
}

function timeline({ items, retained_from }) {
  return el(
    "section",
    { class: "card history" },
    el("h2", {}, `History (${items.length}), newest first`),
    retained_from
      ? el("p", { class: "muted retained" }, `Events before ${when(retained_from)} are archived: this history starts there.`)
      : null,
    el(
      "ol",
      { class: "timeline" },
      items.length ? null : el("li", { class: "muted" }, "No events"),
      [...items].reverse().map((e) =>
        el(
          "li",
          { dataset: { kind: e.kind } },
          el("time", { datetime: e.occurred_at, title: new Date(e.occurred_at).toString() }, when(e.occurred_at)),
          el("span", {}, e.summary),
          el(
            "small",
            { class: "muted" },
            `${e.kind} · ${e.username || "system"}`,
            e.device_time ? ` · device time ${when(e.device_time)}` : null,
          ),
        ),
      ),
    ),
  );
}

const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
