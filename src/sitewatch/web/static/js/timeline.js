// A part's timeline (GET /api/sites/{site}/timeline?part=P) as a hand-drawn SVG chart.
//
// One panel per measure (grids sharing a measure share a panel, one line each), all panels on
// one time axis so dates line up.  Each panel: the normal band shaded, the observed values as
// a line with points, dates not observed as grey ticks on the axis, alerts as triangles
// coloured by tier.  Clicking a point, a tick or an alert calls `onDate(sceneId)`.

import { el, svg, day, num, pct, TIERS } from './dom.js';

const SERIES_COLORS = ['#dfe5ec', '#a99bff', '#5fd3a6', '#f09ad8', '#c7b36b'];
const MARGIN = { left: 58, right: 18, top: 30, bottom: 24 };
const PANEL_H = 150;  // one panel; two or more get PANEL_H_MANY each
const PANEL_H_MANY = 118;
const GAP = 14;
const DAY_MS = 86400000;

const t = (iso) => Date.parse(iso);

function niceTicks(lo, hi, count = 4) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count + 0.5) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

function timeTicks(t0, t1, width) {
  const months = (t1 - t0) / (30.4 * DAY_MS);
  const maxLabels = Math.max(2, Math.floor(width / 70));
  const every = [1, 2, 3, 6, 12, 24, 60].find((m) => months / m <= maxLabels) || 120;
  const d = new Date(t0);
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth() + 1;
  const out = [];
  for (let guard = 0; guard < 2000; guard += 1) {
    if (m > 11) { y += Math.floor(m / 12); m %= 12; }
    const ms = Date.UTC(y, m, 1);
    if (ms > t1) break;
    if (m % every === 0 || every === 1) out.push(ms);
    m += 1;
  }
  return { ticks: out, every };
}

function monthLabel(ms, every) {
  const d = new Date(ms);
  const mm = String(d.getUTCMonth() + 1).padStart(2, '0');
  return every >= 12 ? String(d.getUTCFullYear()) : `${d.getUTCFullYear()}-${mm}`;
}

function tierOf(a) { return TIERS.includes(a.tier) ? a.tier : 'info'; }

/** Group series by measure, keeping the API's order. */
function panelsOf(series) {
  const groups = new Map();
  for (const s of series) {
    if (!groups.has(s.measure)) groups.set(s.measure, []);
    groups.get(s.measure).push(s);
  }
  return [...groups.values()];
}

function yDomain(group) {
  const vals = [0];
  for (const s of group) {
    for (const p of s.points) if (p.value !== null && p.value !== undefined) vals.push(p.value);
    if (s.band) vals.push(...s.band);
    for (const a of s.alerts || []) if (a.value !== null && a.value !== undefined) vals.push(a.value);
  }
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (hi - lo < 1e-12) { hi = lo + 1; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

/**
 * Draw `data` into `container` (replacing its content).
 * opts: onDate(sceneId), onAlert(alertId), current (the shown scene id), colors (grid -> colour).
 */
export function drawTimeline(container, data, opts = {}) {
  const series = (data && data.series) || [];
  const withPoints = series.filter((s) => (s.points || []).length);
  if (!withPoints.length) {
    container.replaceChildren(el('p', { class: 'empty' }, (data && data.note) ||
      `No observations of ${data ? (data.label || data.part) : 'this part'} yet: `
      + 'the watch measures a part once it has two usable dates on a grid (sitewatch run).'));
    return null;
  }
  const width = Math.max(360, container.clientWidth || 800);
  const panels = panelsOf(withPoints);
  const panelH = panels.length > 1 ? PANEL_H_MANY : PANEL_H;
  const height = panels.length * (panelH + GAP) + MARGIN.bottom - GAP;
  const times = [];
  for (const s of withPoints) {
    for (const p of s.points) times.push(t(p.time));
    for (const a of s.alerts || []) times.push(t(a.time));
  }
  let t0 = Math.min(...times);
  let t1 = Math.max(...times);
  const tpad = Math.max((t1 - t0) * 0.02, 3 * DAY_MS);
  t0 -= tpad; t1 += tpad;
  const plotW = width - MARGIN.left - MARGIN.right;
  const x = (ms) => MARGIN.left + ((ms - t0) / (t1 - t0)) * plotW;
  const colorOf = new Map();
  withPoints.forEach((s, i) => colorOf.set(s.grid, SERIES_COLORS[i % SERIES_COLORS.length]));

  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'timeline-svg',
    role: 'img', 'aria-label': `Timeline of ${data.label || data.part}` });
  const { ticks, every } = timeTicks(t0, t1, plotW);
  const clickable = (node, scene) => {
    if (!scene || !opts.onDate) return node;
    node.classList.add('clickable');
    node.dataset.scene = scene;
    node.addEventListener('click', (ev) => { ev.stopPropagation(); opts.onDate(scene); });
    return node;
  };

  panels.forEach((group, pi) => {
    const top = pi * (panelH + GAP) + MARGIN.top;
    const bottom = top + panelH - MARGIN.top;
    const [ylo, yhi] = yDomain(group);
    const y = (v) => bottom - ((v - ylo) / (yhi - ylo)) * (bottom - top);
    const g = svg('g', { class: 'tl-panel', dataset: { measure: group[0].measure } });
    root.appendChild(g);
    // Frame, grid lines and the y axis.
    g.appendChild(svg('rect', { class: 'tl-frame', x: MARGIN.left, y: top, width: plotW,
      height: bottom - top }));
    for (const v of niceTicks(ylo, yhi)) {
      g.appendChild(svg('line', { class: v === 0 ? 'tl-zero' : 'tl-grid', x1: MARGIN.left,
        x2: MARGIN.left + plotW, y1: y(v), y2: y(v) }));
      g.appendChild(svg('text', { class: 'tl-ylabel', x: MARGIN.left - 6, y: y(v) + 3.5,
        'text-anchor': 'end' }, num(v)));
    }
    for (const ms of ticks) {
      g.appendChild(svg('line', { class: 'tl-grid tl-vgrid', x1: x(ms), x2: x(ms), y1: top, y2: bottom }));
      g.appendChild(svg('text', { class: 'tl-xlabel', x: x(ms), y: bottom + 14, 'text-anchor': 'middle' },
        monthLabel(ms, every)));
    }
    // The legend: one entry per grid, then the measure's label.
    let lx = MARGIN.left;
    const legend = svg('g', { class: 'tl-legend' });
    for (const s of group) {
      const c = colorOf.get(s.grid);
      legend.appendChild(svg('line', { x1: lx, x2: lx + 16, y1: top - 10, y2: top - 10,
        stroke: c, 'stroke-width': 2 }));
      const label = svg('text', { x: lx + 20, y: top - 6, class: 'tl-legend-text' }, s.grid);
      legend.appendChild(label);
      lx += 28 + 7 * String(s.grid).length;
    }
    const measure = String(group[0].measure_label || group[0].measure).replace(/[\s,;]+$/, '');
    legend.appendChild(svg('text', { x: lx + 6, y: top - 6, class: 'tl-measure' },
      svg('title', null, measure), measure.length > 110 ? `${measure.slice(0, 108)}…` : measure));
    g.appendChild(legend);
    // The current date.
    if (opts.currentTime) {
      const cx = x(t(opts.currentTime));
      g.appendChild(svg('line', { class: 'tl-current', x1: cx, x2: cx, y1: top, y2: bottom }));
    }
    for (const s of group) {
      const c = colorOf.get(s.grid);
      if (s.band) {
        const [lo, hi] = s.band;
        g.appendChild(svg('rect', { class: 'tl-band', x: MARGIN.left, width: plotW,
          y: y(Math.min(hi, yhi)), height: Math.max(0, y(Math.max(lo, ylo)) - y(Math.min(hi, yhi))),
          fill: c }, svg('title', null, `${s.grid}: normal band ${num(lo)} to ${num(hi)}`)));
      }
      const obs = s.points.filter((p) => p.value !== null && p.value !== undefined);
      if (obs.length > 1) {
        const d = obs.map((p, i) => `${i ? 'L' : 'M'}${x(t(p.time)).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
        g.appendChild(svg('path', { class: 'tl-line', d, stroke: c }));
      }
      for (const p of s.points) {
        const px = x(t(p.time));
        const observed = p.value !== null && p.value !== undefined;
        const current = p.scene === opts.current;
        const tip = svg('title', null, `${day(p.time)} · ${s.grid} · ${observed ? num(p.value)
          : 'not observed'}${p.observed !== undefined && typeof p.observed === 'number'
          ? ` · ${pct(p.observed)} observed` : ''}${p.status ? ` · ${p.status}` : ''} · ${p.scene}`);
        if (observed) {
          g.appendChild(clickable(svg('circle', { class: ['tl-point', current && 'current'],
            cx: px, cy: y(p.value), r: current ? 5 : 3.5, fill: c }, tip), p.scene));
        } else {
          const tick = svg('g', { class: ['tl-unobserved', current && 'current'] },
            svg('rect', { class: 'tl-hit', x: px - 4, y: bottom - 12, width: 8, height: 14 }),
            svg('line', { x1: px, x2: px, y1: bottom, y2: bottom - 9 }), tip);
          g.appendChild(clickable(tick, p.scene));
        }
      }
      for (const a of s.alerts || []) {
        if (a.value === null || a.value === undefined) continue;
        const ax = x(t(a.time));
        const ay = y(a.value);
        const tri = svg('path', { class: ['tl-alert', `tier-${tierOf(a)}`, `status-${a.status}`],
          d: `M${ax},${ay - 11}l6.5,10h-13z`, dataset: { alert: a.id } },
        svg('title', null, `${a.tier} alert (${a.status}) · ${day(a.time)} · ${num(a.value)}`));
        if (opts.onAlert) {
          tri.classList.add('clickable');
          tri.addEventListener('click', (ev) => { ev.stopPropagation(); opts.onAlert(a.id); });
        } else {
          clickable(tri, a.scene);
        }
        g.appendChild(tri);
      }
    }
  });
  container.replaceChildren(root);
  return root;
}
