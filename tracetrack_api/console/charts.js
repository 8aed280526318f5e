// The dashboard's charts: SVG drawn here, element by element (ui.svg, never
// markup from strings). Each chart is one <svg role="img"> with a summary for
// screen readers, a <title> on every bar with its exact value, and its numbers
// written as text too, so nothing depends on telling colours apart. The
// viewBox is a phone's width: the chart scales with its card.

import { svg } from "./ui.js";

// `width` is the chart's width in CSS pixels when drawn (its card's), so that
// one unit is about one pixel and text keeps its size; the viewBox lets the
// chart scale when the card changes width until the next drawing.
function frame(kind, summary, width, height, ...children) {
  return svg(
    "svg",
    { class: `chart ${kind}`, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary },
    svg("title", {}, summary),
    ...children,
  );
}

// a long name is cut short on the chart (its bars' titles carry it whole)
const clip = (label) => (label.length > 28 ? `${label.slice(0, 27)}…` : label);
const text = (x, y, value, attrs) => svg("text", { x, y, ...attrs }, value);

/**
 * Vertical bars, one per item, every one drawn (a zero is a bar of height 0
 * with its label and title): items = [{label, value, title, data}].
 */
export function columns(kind, summary, items, width) {
  const left = 4, top = 18;
  const slot = (width - left * 2) / items.length;
  const stagger = slot < 22; // on a phone, every other label one line lower: all stay readable
  const bottom = stagger ? 32 : 20;
  const height = Math.round(Math.min(220, Math.max(160, width / 3)));
  const max = Math.max(1, ...items.map((i) => i.value));
  const scale = (height - top - bottom) / max;
  const base = height - bottom;
  return frame(
    kind,
    summary,
    width,
    height,
    svg("line", { class: "axis", x1: left, x2: width - left, y1: base + 0.5, y2: base + 0.5 }),
    items.map((item, n) => {
      const x = left + n * slot;
      const h = item.value * scale;
      return svg(
        "g",
        { class: "col" },
        svg(
          "rect",
          { class: "bar", x: x + 1, y: base - h, width: slot - 2, height: h, dataset: item.data },
          svg("title", {}, item.title),
        ),
        item.value && item.value === max
          ? text(x + slot / 2, base - h - 4, item.value, { class: "value", "text-anchor": "middle" })
          : null,
        text(x + slot / 2, height - (stagger && n % 2 ? 4 : 16) + (stagger ? 0 : 10), item.label, {
          class: "tick",
          "text-anchor": "middle",
        }),
      );
    }),
  );
}

/**
 * Horizontal bars, one row each: the label and its figures as text above a bar
 * of stacked parts (the longest row fills the width).
 * list = [{label, parts: [{name, value, cls}]}]; one part: its name is the unit.
 */
export function rows(kind, summary, list, width) {
  const rowHeight = 42;
  const total = (row) => row.parts.reduce((sum, p) => sum + p.value, 0);
  const max = Math.max(1, ...list.map(total));
  const height = Math.max(1, list.length) * rowHeight;
  return frame(
    kind,
    summary,
    width,
    height,
    list.length ? null : text(0, 24, "Nothing yet", { class: "label" }),
    list.map((row, n) => {
      const y = n * rowHeight;
      let x = 0;
      const figures = row.parts.map((p) => `${p.value} ${p.name}`.trim()).join(" · ");
      return svg(
        "g",
        { class: "row", dataset: { label: row.label } },
        text(0, y + 15, clip(row.label), { class: "label" }),
        text(width, y + 15, figures, { class: "value", "text-anchor": "end" }),
        row.parts.map((part) => {
          const length = (part.value / max) * width;
          const rect = svg(
            "rect",
            { class: `bar ${part.cls || ""}`, x, y: y + 21, width: length, height: 14, dataset: { value: part.value } },
            svg("title", {}, `${row.label}: ${part.value} ${part.name}`.trim()),
          );
          x += length;
          return rect;
        }),
      );
    }),
  );
}
