// Small DOM helpers: elements are built, never parsed from strings, so no device-supplied text
// (ids, reasons) can turn into markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function kmh(mps) {
  return mps === null || mps === undefined ? "–" : `${Math.round(mps * 3.6)} km/h`;
}

const COMPASS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];

export function compass(deg) {
  if (deg === null || deg === undefined) return "–";
  return `${Math.round(deg)}° ${COMPASS[Math.round(deg / 45) % 8]}`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A stop as people read it: the hub names a home stop after its parcel ("parcel-<uuid>", see
// cloud/services/day_plans.py), shown short; any other stop id as it is.
export function stopName(id) {
  return /^parcel-[0-9a-f-]{36}$/.test(id) ? `home ${id.slice(7, 15)}` : id;
}
