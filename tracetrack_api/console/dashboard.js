// The Dashboard view (to be built).
import { el, fill } from "./ui.js";

export function mount(root) {
  fill(root, el("h1", {}, "Dashboard"));
}
