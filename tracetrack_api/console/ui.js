// What every view shares: building DOM from text nodes, never from HTML (text is always text,
// whatever a QR or a bill's description holds), the banner, the sounds, the
// human wording of the API's error codes, and times in the site's zone.

/**
 * el("button", {class: "big", onclick: f}, "Undo"): an element with attributes,
 * event handlers (on…) and children (strings become text nodes; null is skipped).
 */
export function el(tag, attrs, ...children) {
  const node = tag.includes(":")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(tag.indexOf(":") + 1))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** An SVG element: svg("rect", {x: 1, …}). */
export const svg = (tag, attrs, ...children) => el(`svg:${tag}`, attrs, ...children);

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// The API's codes in the words a person at a scanner understands; the server's
// own message (which names the bag) is shown under it.
export const MESSAGES = {
  parent_full: "This parent is full",
  child_in_other_parent: "This child is already in another parent",
  wrong_area: "This bag belongs to another dispatch area",
  not_a_parent: "That is not a parent bag",
  not_a_child: "That is a parent bag, not a child",
  bag_not_found: "No such bag",
  parent_closed: "This parent was closed short",
  parent_on_bill: "This parent is on a bill: it cannot change",
  bill_full: "This bill is full",
  bill_completed: "This bill is completed: reopen it first",
  bill_not_full: "The bill is not full yet",
  bill_exists: "A bill with this number exists",
  bill_not_found: "No such bill",
  parent_on_other_bill: "This parent is on another bill",
  parent_not_on_bill: "This parent is not on this bill",
  nothing_to_undo: "Nothing to undo",
  child_not_linked: "This child is not in a parent",
  parent_empty: "This parent has no children yet",
  bill_not_completed: "This bill is not completed",
  client_op_id_reused: "This offline scan was already sent differently",
  device_time_out_of_range: "This device's clock is wrong: fix the time and scan again",
  password_change_required: "Choose a new password first (click your name at the top)",
  wrong_password: "That is not your current password",
  weak_password: "Choose a stronger password",
  validation_error: "Not a valid entry",
  invalid_qr: "Not a valid QR code",
  qr_taken: "This QR is already used",
  unknown_area: "Unknown dispatch area",
  dispatch_area_required: "Choose the dispatch area for this new parent",
  forbidden: "Your role may not do this",
  rate_limited: "Too many attempts: wait a moment",
  invalid_credentials: "Wrong username or password",
  database_unavailable: "The server's database is unavailable: try again shortly",
  conflict: "Someone else changed this at the same moment: scan again",
};

/** The headline for an error: the known wording, or the server's message. */
export const headline = (err) => MESSAGES[err.code] || err.message || "Something went wrong";

let hideTimer = null;

/**
 * The large coloured answer to a scan: kind is ok, error, warn or info.
 * Errors stay until the next answer; the others fade after a few seconds.
 */
export function banner(kind, title, detail) {
  const node = document.getElementById("banner");
  node.className = `banner ${kind}`;
  fill(node, el("strong", {}, title), detail ? el("span", {}, detail) : null);
  node.hidden = false;
  clearTimeout(hideTimer);
  if (kind !== "error") hideTimer = setTimeout(() => (node.hidden = true), 6000);
}

export function clearBanner() {
  document.getElementById("banner").hidden = true;
}

/** Show an API error (or an Offline) as a banner, with its sound. */
export function showError(err) {
  banner("error", headline(err), err.code && MESSAGES[err.code] ? err.message : null);
  beep(false);
}

let audio = null;

/** A short tone: high for success, two low ones for an error. Silent where audio is not allowed. */
export function beep(ok) {
  try {
    audio = audio || new AudioContext();
    const tones = ok ? [[880, 0, 0.09]] : [[220, 0, 0.14], [180, 0.18, 0.2]];
    for (const [freq, start, length] of tones) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = ok ? "sine" : "square";
      osc.frequency.value = freq;
      gain.gain.value = 0.12;
      osc.connect(gain).connect(audio.destination);
      const t = audio.currentTime + start;
      osc.start(t);
      osc.stop(t + length);
    }
  } catch {
    // no audio device: the banner says it all
  }
}

/** A time as "14:05" (today) or "28 Nov 14:05", in the site's zone when known. */
export function when(iso, zone) {
  if (!iso) return "";
  const d = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone || undefined };
  const day = (x) => x.toLocaleDateString("en-GB", { timeZone: zone || undefined });
  if (day(d) !== day(new Date())) Object.assign(opts, { day: "numeric", month: "short" });
  try {
    return d.toLocaleString("en-GB", opts);
  } catch {
    return d.toISOString().slice(0, 16).replace("T", " ");
  }
}

/** A form's named inputs as an object of trimmed strings. */
export function values(form) {
  return Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
}

/** A labelled input: field("Parent QR", {name: "parent", autocomplete: "off"}). */
export function field(label, attrs) {
  const id = `f-${attrs.name}-${Math.random().toString(36).slice(2, 7)}`;
  return el("label", { class: "field", for: id }, el("span", {}, label), el("input", { id, ...attrs }));
}

/** A view's own stylesheet (scan.css next to scan.js), loaded once, when the view is first shown. */
export function useStyle(name) {
  const href = new URL(name, import.meta.url).href;
  if (![...document.styleSheets].some((s) => s.href === href) && !document.querySelector(`link[href="${href}"]`)) {
    document.head.append(el("link", { rel: "stylesheet", href }));
  }
}
