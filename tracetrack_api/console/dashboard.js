// The Dashboard view (#/dashboard, any role): the totals as big numbers and the
// charts of GET api/dashboard/analytics, read again every 15 s and whenever the
// tab is shown again. A dispatcher's answer holds their area only (the API
// decides, not this page). Hours and times are the site's (the answer's
// time_zone), whatever the zone of the browser.

import { get } from "./api.js";
import { columns, rows } from "./charts.js";
import { el, fill, headline, useStyle, when } from "./ui.js";

const EVERY = 15_000; // the server's views refresh on their own schedule; reading faster shows nothing new

const WHAT = {
  parent_scan: (s) => `parent ${s.qr_id || s.parent_qr}`,
  link: (s) => `${s.qr_id} → ${s.parent_qr}`,
  unlink: (s) => `${s.qr_id} out of ${s.parent_qr || "its parent"}`,
};

const PLURAL = { parent: "parents", child: "children" };
const words = (status) => status.replaceAll("_", " ");

/** "21" for a bucket starting at 21:00 in the site's zone. */
function hourOf(iso, zone) {
  const parts = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: zone });
  return parts.format(new Date(iso));
}

export function mount(root) {
  useStyle("dashboard.css");
  const title = el("h1", {}, "Dashboard");
  const status = el("p", { class: "muted asof", role: "status" }, "Loading…");
  const body = el("div", { class: "dash" });
  const again = el("button", { type: "button", class: "quiet", onclick: () => load() }, "Refresh now");
  fill(root, el("div", { class: "dash-head" }, el("div", {}, title, status), again), body);

  let live = true;
  let busy = false;
  let shown = null; // the last answer drawn: kept on screen when a refresh fails

  async function load() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const data = await get("api/dashboard/analytics");
      if (!live) return;
      shown = data;
      draw(title, status, body, data);
    } catch (err) {
      if (live) {
        const since = shown?.as_of ? `: still showing the figures as of ${when(shown.as_of, shown.time_zone)}` : "";
        status.textContent = `Could not refresh (${headline(err)})${since}. Trying again in 15 s.`;
      }
    } finally {
      busy = false;
    }
  }
  const onVisible = () => document.hidden || load();
  const timer = setInterval(load, EVERY);
  document.addEventListener("visibilitychange", onVisible);
  load();
  return () => {
    live = false;
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

function draw(title, status, body, data) {
  const zone = data.time_zone;
  const { bags, bills, scans } = data;
  // each chart is drawn at its card's width (a card has 34 px of padding and border; two columns from 760 px)
  const full = Math.max(280, body.clientWidth - 34);
  const half = matchMedia("(min-width: 760px)").matches ? Math.max(280, (body.clientWidth - 12) / 2 - 34) : full;
  fill(title, "Dashboard · ", data.dispatch_area || "all areas");
  status.textContent = data.as_of
    ? `Figures as of ${when(data.as_of, zone)} (${zone}). They come from summary views the server refreshes on a schedule; this page reads them again every 15 s.`
    : "No figures yet: the server has not refreshed its summary views.";
  const tile = (key, label, value) =>
    el("div", { class: "tile card" }, el("span", { class: "big-number", dataset: { total: key } }, value), el("span", {}, label));
  fill(
    body,
    el(
      "section",
      { class: "tiles", "aria-label": "Totals" },
      tile("bags", "bags", bags.total),
      tile("parents", "parents", bags.by_type.parent),
      tile("children", "children", bags.by_type.child),
      tile("unlinked", "children in no parent", bags.unlinked_children),
      tile("today", "scans today", scans.today),
      tile("hour", "scans this hour", scans.last_hour),
      tile("billed", "parents on bills", bills.parents_billed),
    ),
    card("wide", "Scans per hour, last 24 hours", hourly(scans.hourly, zone, full), `Hours in ${zone}.`),
    card("", "Bags by area", byArea(bags.by_area, half)),
    card("", "Bags by status", byStatus(bags.by_status, half)),
    card("", "Bills by status", billChart(bills.by_status, half)),
    card("", "Most active users", users(data.users, half), "Everything each did (scans, links, bills) in the last 24 hours."),
    card("wide", "Recent scans", recent(data.recent_scans, zone)),
  );
}

function card(cls, heading, content, note) {
  return el("section", { class: `card ${cls}` }, el("h2", {}, heading), content, note ? el("p", { class: "muted note" }, note) : null);
}

function hourly(buckets, zone, width) {
  const total = buckets.reduce((sum, b) => sum + b.scans, 0);
  const peak = buckets.reduce((a, b) => (b.scans > a.scans ? b : a), buckets[0]);
  const items = buckets.map((b, n) => {
    const from = hourOf(b.hour, zone);
    const to = n + 1 < buckets.length ? hourOf(buckets[n + 1].hour, zone) : hourOf(Date.parse(b.hour) + 3_600_000, zone);
    return {
      label: from,
      value: b.scans,
      title: `${from}:00–${to}:00: ${b.scans} scan${b.scans === 1 ? "" : "s"}`,
      data: { hour: b.hour, scans: b.scans },
    };
  });
  const most = peak && peak.scans ? `, most (${peak.scans}) from ${hourOf(peak.hour, zone)}:00` : "";
  return columns("hourly", `Scans per hour over the last 24 hours: ${total} in all${most}.`, items, width);
}

function byArea(areas, width) {
  const list = Object.entries(areas)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([area, n]) => ({
      label: area || "no area",
      parts: [
        { name: "parents", value: n.parent, cls: "parent" },
        { name: "children", value: n.child, cls: "child" },
      ],
    }));
  const summary = list.map((r) => `${r.label}: ${r.parts[0].value} parents, ${r.parts[1].value} children`).join("; ");
  return el(
    "div",
    {},
    rows("areas", `Bags by area. ${summary || "No bags."}`, list, width),
    el("p", { class: "legend" }, el("span", { class: "key parent" }), "parents ", el("span", { class: "key child" }), "children"),
  );
}

function byStatus(byType, width) {
  const list = ["parent", "child"].flatMap((type) =>
    Object.entries(byType[type] || {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([status, n]) => ({ label: `${PLURAL[type]}: ${words(status)}`, parts: [{ name: "", value: n, cls: status }] })),
  );
  const summary = list.map((r) => `${r.label} ${r.parts[0].value}`).join("; ");
  return rows("statuses", `Bags by status. ${summary || "No bags."}`, list, width);
}

function billChart(byStatus, width) {
  const list = Object.entries(byStatus).map(([status, n]) => ({
    label: words(status),
    parts: [{ name: n === 1 ? "bill" : "bills", value: n, cls: status }],
  }));
  const summary = list.map((r) => `${r.label} ${r.parts[0].value}`).join("; ");
  return rows("bills", `Bills by status. ${summary || "No bills."}`, list, width);
}

function users(list, width) {
  const items = list.map((u) => ({
    label: `${u.username} (${u.role})`,
    parts: [{ name: "in 24 h", value: u.events_24h, cls: "user" }],
  }));
  const summary = items.map((r) => `${r.label} ${r.parts[0].value}`).join("; ");
  return rows("users", `Most active users, events in the last 24 hours. ${summary || "Nobody yet."}`, items, width);
}

function recent(list, zone) {
  if (!list.length) return el("p", { class: "muted" }, "No scans yet.");
  return el(
    "ol",
    { class: "list recent" },
    list.map((s) =>
      el(
        "li",
        { dataset: { id: s.id } },
        el("time", { datetime: s.occurred_at }, when(s.occurred_at, zone)),
        el("span", { class: "by" }, s.username || "—"),
        el("span", { class: "mono" }, (WHAT[s.kind] || ((x) => x.kind))(s)),
      ),
    ),
  );
}
