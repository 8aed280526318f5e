// The bill desk (billers, admins): the bills with their status and a new bill (#/bills), and one
// bill (#/bills/<bill_no>): parents scanned onto it with the scan station's banners and sounds,
// its count and weights against capacity, complete / reopen and its manifest PDF.

import { call, get, newKey, path, post } from "./api.js";
import { banner, beep, el, field, fill, showError, useStyle, values } from "./ui.js";

const STATUSES = ["new", "processing", "completed"];
const kg = (x) => `${Number(x).toLocaleString("en", { maximumFractionDigits: 3 })} kg`;
const billHref = (no) => `#/bills/${encodeURIComponent(no)}`;

export function mount(root, ctx) {
  useStyle("bills.css");
  // a bill number may hold "/": the shell splits the hash there, so the parts are joined back
  const billNo = ctx.params.join("/");
  return billNo ? bill(root, billNo, ctx) : list(root, ctx);
}

function list(root, { go }) {
  let cursor = null;
  let turn = 0; // a newer filter's answer wins over an older one
  const items = el("ul", { class: "list bills" });
  const more = el("button", { type: "button", class: "big", hidden: true, onclick: () => load(cursor) }, "More bills");
  const filters = el(
    "form",
    { class: "row", role: "search" },
    el(
      "label",
      { class: "field" },
      el("span", {}, "Status"),
      el("select", { name: "status", onchange: () => load() }, ["", ...STATUSES].map((s) => el("option", { value: s }, s || "any"))),
    ),
    field("Bill number starts with", { name: "q", type: "search", autocomplete: "off", autocapitalize: "characters" }),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });

  async function load(after) {
    const mine = ++turn;
    try {
      const page = await get("api/bills", { ...values(filters), limit: 25, cursor: after });
      if (mine !== turn) return;
      if (!after) fill(items, page.items.length ? null : el("li", { class: "muted" }, "No bills"));
      items.append(...page.items.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showError(err);
    }
  }

  fill(root, el("h1", {}, "Bills"), createForm(go), el("section", { class: "card" }, el("h2", {}, "All bills"), filters, items, more));
  load();
}

const row = (b) =>
  el(
    "li",
    {},
    el(
      "a",
      { class: "bill-link", href: billHref(b.bill_no) },
      el("strong", { class: "mono" }, b.bill_no),
      el("span", { class: `badge ${b.status}` }, b.status),
      el("span", {}, `${b.linked_parent_count} / ${b.capacity} parents`),
      b.destination ? el("span", { class: "muted" }, b.destination) : null,
    ),
  );

function createForm(go) {
  let key = newKey(); // kept while no answer came, so a retry cannot create it twice
  const button = el("button", { class: "primary big", type: "submit" }, "Create bill");
  const form = el(
    "form",
    {},
    el(
      "div",
      { class: "row" },
      field("Bill number", { name: "bill_no", required: true, autocomplete: "off", autocapitalize: "characters" }),
      field("Capacity (parents)", { name: "capacity", type: "number", min: 1, max: 500, required: true, inputmode: "numeric" }),
    ),
    el("div", { class: "row" }, field("Destination", { name: "destination" }), field("Vehicle number", { name: "vehicle_number" })),
    field("Description", { name: "description" }),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { capacity, ...rest } = values(form);
    const body = Object.fromEntries(Object.entries(rest).filter(([, v]) => v));
    button.disabled = true;
    try {
      const created = await post("api/bills", { ...body, capacity: Number(capacity) }, { headers: { "Idempotency-Key": key } });
      key = newKey();
      go("bills", created.bill_no);
    } catch (err) {
      if (err.status) key = newKey(); // answered: the next try is a new request
      showError(err);
      form.elements[err.field || "bill_no"]?.focus();
    } finally {
      button.disabled = false;
    }
  });
  return el("details", { class: "card new-bill" }, el("summary", {}, "New bill"), form);
}

function bill(root, billNo) {
  const at = path`api/bills/${billNo}`;
  let pdfUrl = null;
  let queue = Promise.resolve(); // a wedge scanner types faster than the server answers: one at a time, in order
  const scan = el("input", {
    class: "scan",
    name: "parent_qr",
    "aria-label": "Scan a parent onto this bill",
    placeholder: "Scan a parent",
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
  });
  const summary = el("section", { class: "card bill-summary" }, el("p", { class: "loading" }, "Loading…"));
  const parents = el("section", { class: "card" });
  const actions = el("div", { class: "row bill-actions" });
  const manifest = el("p", { class: "manifest" });

  scan.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const qr = scan.value.trim();
    scan.value = "";
    if (qr) queue = queue.then(() => add(qr));
  });

  async function add(qr) {
    try {
      const answer = await post(`${at}/parents`, { parent_qr: qr }, { headers: { "Idempotency-Key": newKey() } });
      const b = answer.bill;
      const count = `${b.linked_parent_count} / ${b.capacity} parents`;
      if (answer.result === "added") banner("ok", `${qr.toUpperCase()} added`, count);
      else banner("info", `${qr.toUpperCase()} is already on this bill`, count);
      beep(true);
    } catch (err) {
      showError(err);
    }
    await refresh();
  }

  // Complete, reopen, remove: the answer, then the bill as it is now, and the scanner's focus back.
  async function act(method, relative, done) {
    try {
      await call(method, relative, { body: method === "POST" ? {} : undefined, headers: { "Idempotency-Key": newKey() } });
      banner("ok", done);
      beep(true);
    } catch (err) {
      showError(err);
    }
    await refresh();
    scan.focus();
  }

  async function openManifest(button) {
    button.disabled = true;
    try {
      // fetched with the Authorization header (the token never goes into a URL), shown from a blob: URL
      const resp = await call("GET", `${at}/manifest.pdf`, { raw: true });
      if (pdfUrl) URL.revokeObjectURL(pdfUrl);
      pdfUrl = URL.createObjectURL(await resp.blob());
      const name = `manifest-${billNo.replaceAll("/", "_")}.pdf`;
      fill(
        manifest,
        "Manifest ready: ",
        el("a", { href: pdfUrl, target: "_blank", rel: "noopener" }, "open it"),
        " or ",
        el("a", { href: pdfUrl, download: name }, "download it"),
      );
      // a new tab shows it with the browser's PDF viewer; a blocked pop-up leaves the links above
      window.open(pdfUrl, "_blank", "noopener"); // noopener: the tab gets no copy of this one's sessionStorage (the token)
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  async function refresh() {
    let detail;
    try {
      detail = await get(at);
    } catch (err) {
      showError(err);
      if (err.code === "bill_not_found") fill(summary, el("p", {}, "No such bill. ", el("a", { href: "#/bills" }, "All bills")));
      return;
    }
    const b = detail.bill;
    const done = b.status === "completed";
    const bar = el("span");
    bar.style.width = `${Math.min(100, (100 * b.linked_parent_count) / b.capacity)}%`; // CSSOM, allowed by the CSP
    fill(
      summary,
      el("h1", {}, el("span", { class: "mono" }, b.bill_no), " ", el("span", { class: `badge ${b.status}` }, b.status)),
      el("p", { class: "big-number", dataset: { count: b.linked_parent_count } }, `${b.linked_parent_count} / ${b.capacity}`, el("small", {}, " parents")),
      el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": b.capacity, "aria-valuenow": b.linked_parent_count }, bar),
      el(
        "dl",
        { class: "facts" },
        fact("Weight", `${kg(b.total_weight_kg)} of ${kg(b.expected_weight_kg)} expected`),
        fact("Children", b.total_child_count),
        fact("Destination", b.destination || "—"),
        fact("Vehicle", b.vehicle_number || "—"),
        b.description ? fact("Description", b.description) : null,
      ),
    );
    const manifestButton = el("button", { type: "button", onclick: (e) => openManifest(e.currentTarget) }, "Manifest PDF");
    fill(
      actions,
      done
        ? el("button", { type: "button", onclick: () => act("POST", `${at}/reopen`, "Bill reopened") }, "Reopen")
        : el("button", { type: "button", class: "primary", onclick: () => act("POST", `${at}/complete`, "Bill completed") }, "Complete bill"),
      manifestButton,
    );
    fill(
      parents,
      el("h2", {}, `Parents (${detail.parents.length})`),
      el(
        "ul",
        { class: "list parents" },
        detail.parents.length ? null : el("li", { class: "muted" }, "No parents yet: scan one above"),
        detail.parents.map((p) =>
          el(
            "li",
            { dataset: { qr: p.qr_id } },
            el("a", { class: "mono", href: `#/lookup/${encodeURIComponent(p.qr_id)}` }, p.qr_id),
            el("span", {}, `${p.child_count} / ${p.capacity} · ${kg(p.weight_kg)}`),
            el(
              "button",
              { type: "button", disabled: done, "aria-label": `Remove ${p.qr_id}`, onclick: () => act("DELETE", `${at}/parents/${encodeURIComponent(p.qr_id)}`, `${p.qr_id} removed`) },
              "Remove",
            ),
          ),
        ),
      ),
    );
  }

  fill(
    root,
    el("a", { class: "back", href: "#/bills" }, "← All bills"),
    summary,
    el("section", { class: "card" }, scan, actions, manifest),
    parents,
  );
  refresh();
  scan.focus();
  // a tab opened a moment ago may still be reading the blob: let it go a little later
  return () => pdfUrl && setTimeout(URL.revokeObjectURL, 30000, pdfUrl);
}

const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, String(value)));
