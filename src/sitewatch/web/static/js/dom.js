// Building DOM from data without ever parsing it as HTML.
//
// Report texts, part names and alert texts are hostile input: `el` puts strings in the page
// as text nodes only (never parsed as markup), refuses string event handlers, and sets styles through
// the CSSOM (inline style attributes are blocked by the Content Security Policy).

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, attrs) {
  if (!attrs) return node;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class' || key === 'className') {
      const names = Array.isArray(value) ? value.filter(Boolean).join(' ') : String(value);
      node.setAttribute('class', names);
    } else if (key === 'style') {
      for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) node.dataset[k] = String(v);
    } else if (key === 'text') {
      node.textContent = String(value);
    } else if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`el: ${key} must be a function`);
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'disabled') {
      node[key] = value;
      if (key !== 'value' && value === true) node.setAttribute(key, '');
    } else if (key === 'href' || key === 'src') {
      node.setAttribute(key, safeUrl(value));
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

/** An element: `el('a', {href, class}, 'text', otherNode, [more])`.  Strings become text. */
export function el(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** An SVG element, same rules as `el`. */
export function svg(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Only same-origin paths and http(s) links; anything else (javascript:, data:) becomes '#'. */
export function safeUrl(value) {
  const s = String(value);
  if (s.startsWith('/') && !s.startsWith('//')) return s;
  if (s.startsWith('#') || s.startsWith('?')) return s;
  try {
    const u = new URL(s, window.location.href);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
  } catch (_e) { /* fall through */ }
  return '#';
}

/** Replace a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** 'YYYY-MM-DD' of an ISO time (UTC, as the catalogue stores it). */
export function day(time) {
  return time ? String(time).slice(0, 10) : '—';
}

/** 'YYYY-MM-DD HH:MM' UTC of an ISO time. */
export function dayTime(time) {
  if (!time) return '—';
  const s = String(time);
  return s.length >= 16 ? `${s.slice(0, 10)} ${s.slice(11, 16)}Z` : s;
}

/** A share 0..1 as '87 %', or '—'. */
export function pct(x, digits = 0) {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : `${(x * 100).toFixed(digits)} %`;
}

/** A number with sensible digits for its size. */
export function num(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 1000) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 0.1) return x.toFixed(3);
  return x.toPrecision(2);
}

/** An area in m² (or ha). */
export function area(m2) {
  if (m2 === null || m2 === undefined) return '—';
  return m2 >= 10000 ? `${(m2 / 10000).toFixed(2)} ha` : `${Math.round(m2)} m²`;
}

/** The words of a snake_case level: 'no_evidence' -> 'no evidence'. */
export function words(s) {
  return s ? String(s).replace(/_/g, ' ') : '—';
}

/** Show an error message in the page's error strip (text only). */
export function showError(message, where = document.getElementById('page-error')) {
  if (!where) { console.error(message); return; }
  where.hidden = false;
  where.textContent = String(message);
}

export const TIERS = ['warning', 'watch', 'info'];
