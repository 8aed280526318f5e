// The server's QR rule (tracetrack_db/qr.py, normalize_qr) in the browser, so
// the scan station can tell a parent from a child and refuse a bad scan while
// offline: one QR the server would refuse makes it refuse a whole sync list.
// tests/test_qr_unicode.py runs this file in node against normalize_qr.

// qr.IGNORABLE: dropped wherever they appear (controls, spaces, zero-width, marks)
const IGNORABLE = /[\x01-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]+/g;
const ONE = /^[A-Za-z0-9_/-]$/;
const GRAMMAR = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

/** The QR as the server keeps it, or null when the server would refuse it. */
export function normalize(raw) {
  if (typeof raw !== "string" || [...raw].length > 200) return null;
  let qr = "";
  for (const char of raw.replace(IGNORABLE, "")) {
    // NFKC one code point at a time, into exactly one character of the alphabet;
    // astral characters are refused whatever NFKC makes of them (as the server does)
    const mapped = char.length > 1 ? "" : char.normalize("NFKC");
    if (!ONE.test(mapped)) return null;
    qr += mapped;
  }
  if (qr.length < 4 || qr.length > 100 || !GRAMMAR.test(qr)) return null;
  qr = qr.toUpperCase();
  return qr.endsWith("/HISTORY") ? null : qr;
}
