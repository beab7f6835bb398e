// The site map (Leaflet, vendored; no basemap: the page works offline): the imagery of one
// date as tiles, the site's parts with permanent labels, alert markers, the change objects
// of the shown date, a layers control, a scale bar and a legend.  Used by the site page and
// the compare page.  Every label is a DOM node built with textContent: Leaflet would parse a
// string tooltip as HTML.

import { el, area, day, pct } from './dom.js';

const L = window.L;

export const TIER_COLORS = { warning: '#ff453a', watch: '#ffb020', info: '#4ea1ff' };
export const PART_COLOR = '#38d6e0';
export const CHANGE_COLOR = '#ff6a1a';

/** Leaflet bounds of a [west, south, east, north] box. */
export function boundsOf(bbox) {
  return L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]);
}

/** A Leaflet map without basemap, with a metric scale bar. */
export function createMap(container, options = {}) {
  const map = L.map(container, {
    // Whole zooms: tiles are drawn at 256 px (fractional zooms scale them and show seams).
    zoomSnap: 1, zoomDelta: 1, maxZoom: 21, minZoom: 3,
    attributionControl: false, preferCanvas: false, ...options,
  });
  L.control.scale({ metric: true, imperial: false, position: 'bottomleft' }).addTo(map);
  return map;
}

/** A part's label (the analyst's words, else its name). */
export function partLabel(props) {
  return (props && (props.label || props.name)) || '';
}

/** The site's parts: outlines with permanent labels; `onClick(name)` on a click. */
export function partsLayer(site, { onClick, labels = true } = {}) {
  const features = ((site.parts && site.parts.features) || []).filter((f) => f.geometry);
  return L.geoJSON({ type: 'FeatureCollection', features }, {
    style: () => ({ color: PART_COLOR, weight: 1.5, opacity: 0.95, fillColor: PART_COLOR,
      fillOpacity: 0.04, className: 'part-outline' }),
    pointToLayer: (_f, latlng) => L.circleMarker(latlng, { radius: 5 }),
    onEachFeature: (f, layer) => {
      const name = f.properties.name;
      layer.partName = name;
      if (labels) {
        const text = el('span', { class: 'part-label-text', title: name }, partLabel(f.properties));
        layer.bindTooltip(text, { permanent: true, direction: 'center', className: 'part-label',
          opacity: 1, interactive: false });
      }
      if (onClick) layer.on('click', (ev) => { L.DomEvent.stopPropagation(ev); onClick(name); });
    },
  });
}

/** The site's outline (dashed, not clickable). */
export function outlineLayer(site) {
  return L.geoJSON(site.outline || { type: 'FeatureCollection', features: [] }, {
    style: { color: '#c8d0da', weight: 1, dashArray: '4 4', fill: false, interactive: false },
  });
}

function boxArea(layer) {
  if (!layer.getBounds) return 0;
  const b = layer.getBounds();
  return (b.getNorth() - b.getSouth()) * (b.getEast() - b.getWest());
}

function overlaps(a, b) {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

/** Hide part labels that would overlap a label already shown (the selected part's first,
 * then larger parts); zooming in shows them again.  Hidden labels keep their outline, and
 * the outline's hover shows the name. */
export function declutterLabels(layer) {
  const items = [];
  layer.eachLayer((l) => {
    const tip = l.getTooltip && l.getTooltip();
    const node = tip && tip.getElement();
    if (node) { node.classList.remove('label-hidden'); items.push({ l, node }); }
  });
  const sel = (it) => (it.node.classList.contains('selected') ? 1 : 0);
  items.sort((a, b) => sel(b) - sel(a) || boxArea(b.l) - boxArea(a.l));
  const shown = [];
  for (const it of items) {
    const r = it.node.getBoundingClientRect();
    if (!r.width) continue;
    if (shown.some((o) => overlaps(o, r))) it.node.classList.add('label-hidden');
    else shown.push(r);
  }
}

/** Keep a parts layer's labels decluttered as the map zooms. */
export function autoDeclutter(map, layer) {
  const run = () => window.setTimeout(() => declutterLabels(layer), 0);
  map.on('zoomend moveend resize', run);
  layer.on('add', run);
  run();
  return run;
}

/** Highlight one part's outline (by name) in a parts layer; null clears. */
export function highlightPart(layer, name) {
  layer.eachLayer((l) => {
    if (!l.setStyle) return;
    const on = l.partName === name;
    l.setStyle({ weight: on ? 3 : 1.5, fillOpacity: on ? 0.14 : 0.04 });
    const tip = l.getTooltip && l.getTooltip();
    if (tip && tip.getElement()) tip.getElement().classList.toggle('selected', on);
  });
  declutterLabels(layer);
}

/** One marker per alert at `alert.position`, coloured by tier; alerts at the same place are
 * set side by side.  `onClick(alert)`.  Returns the group; `group.markers` maps id -> marker. */
export function alertsLayer(alerts, { onClick, show = (a) => a.status !== 'dismissed' } = {}) {
  const group = L.layerGroup();
  group.markers = new Map();
  const seen = new Map();
  const order = { warning: 0, watch: 1, info: 2 };
  const sorted = alerts.filter((a) => a.position && show(a))
    .sort((a, b) => (order[a.tier] ?? 3) - (order[b.tier] ?? 3));
  for (const a of sorted) {
    const key = a.position.map((x) => x.toFixed(6)).join(',');
    const n = seen.get(key) || 0;
    seen.set(key, n + 1);
    const node = el('div', {
      class: ['alert-marker', `tier-${a.tier}`, `status-${a.status}`],
      dataset: { alert: a.id }, role: 'button', tabindex: '0',
      'aria-label': `${a.tier} alert: ${a.label || a.part}`,
    });
    const icon = L.divIcon({ className: 'alert-icon', html: node, iconSize: [18, 18],
      iconAnchor: [9 - 16 * n, 26] });
    const marker = L.marker([a.position[1], a.position[0]], {
      icon, keyboard: false, riseOnHover: true, zIndexOffset: 1000 - 100 * (order[a.tier] ?? 3),
    });
    marker.bindTooltip(el('div', { class: 'alert-tip' },
      el('strong', null, `${a.tier} · ${a.status}`), el('br'),
      el('span', null, a.label || a.part || ''), el('br'),
      el('span', { class: 'muted' }, `${day(a.start)} → ${day(a.end || a.time)}`)),
    { direction: 'top', offset: [8 - 16 * n, -26], className: 'sw-tip' });
    if (onClick) {
      marker.on('click', () => onClick(a));
      node.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onClick(a); });
    }
    marker.alert = a;
    group.markers.set(a.id, marker);
    group.addLayer(marker);
  }
  return group;
}

/** Mark one alert's marker selected (null clears). */
export function selectMarker(group, alertId) {
  for (const [id, m] of group.markers) {
    const node = m.getElement() && m.getElement().querySelector('.alert-marker');
    if (node) node.classList.toggle('selected', id === alertId);
    if (id === alertId) m.setZIndexOffset(5000);
  }
}

/** Change objects (GeoJSON) outlined red/orange, with their area on hover. */
export function changesLayer(fc) {
  return L.geoJSON(fc || { type: 'FeatureCollection', features: [] }, {
    style: { color: CHANGE_COLOR, weight: 2, opacity: 1, fillColor: '#ff3b30', fillOpacity: 0.18,
      className: 'change-object' },
    onEachFeature: (f, layer) => {
      const p = f.properties || {};
      layer.bindTooltip(el('div', null, el('strong', null, 'change object'), el('br'),
        area(p.area_m2), p.previous ? el('div', { class: 'muted' }, `since ${p.previous}`) : null),
      { sticky: true, className: 'sw-tip' });
    },
  });
}

/** The imagery tile layer of a scene, limited to its tile box and native zoom levels. */
export function imageryLayer(scene, info, options = {}) {
  const opts = { tileSize: 256, maxZoom: 21, className: 'imagery', keepBuffer: 1,
    updateWhenZooming: false, ...options };
  if (info) {
    if (info.bbox) opts.bounds = boundsOf(info.bbox);
    if (Number.isFinite(info.maxzoom)) opts.maxNativeZoom = info.maxzoom;
    if (Number.isFinite(info.minzoom)) opts.minNativeZoom = info.minzoom;
  }
  return L.tileLayer(scene.tiles, opts);
}


/** The legend control's content: the imagery's entries (tileinfo.legend: `{label, swatch}`,
 * swatch a colour or "hatch"), then the fixed ones. */
export function legendContent(info, { alerts = true } = {}) {
  const item = (swatchClass, label, color) => {
    const sw = el('span', { class: ['swatch', swatchClass] });
    if (color) sw.style.background = color;
    return el('li', null, sw, el('span', null, label));
  };
  const imagery = ((info && info.legend) || []).map((e) => (e.swatch === 'hatch'
    ? item('swatch-hatch', e.label)
    : item('swatch-fill', e.label, /^#[0-9a-f]{3,8}$/i.test(e.swatch || '') ? e.swatch : null)));
  return el('div', { class: 'legend-inner' },
    el('div', { class: 'legend-title' }, 'Imagery'),
    info && info.stretch ? el('div', { class: 'legend-note' }, info.stretch) : null,
    imagery.length ? el('ul', null, imagery)
      : el('div', { class: 'legend-note' }, info ? '' : 'no imagery information'),
    el('div', { class: 'legend-title' }, 'Overlays'),
    el('ul', null,
      item('swatch-part', 'part outline'),
      item('swatch-change', 'change object (shown date vs. previous)'),
      alerts ? ['warning', 'watch', 'info'].map((t) => item(`swatch-tier tier-${t}`, `alert: ${t}`))
        : null));
}

/** A legend control at the bottom right: `control.update(info)`.  Its element is `#legend`. */
export function legendControl(options = {}) {
  const Legend = L.Control.extend({
    options: { position: 'bottomright' },
    onAdd() {
      this._div = el('div', { id: 'legend', class: 'legend leaflet-bar' });
      const toggle = el('button', { type: 'button', class: 'legend-toggle', title: 'Legend' },
        'Legend');
      this._body = el('div', { class: 'legend-body' }, legendContent(null, options));
      toggle.addEventListener('click', () => this._div.classList.toggle('collapsed'));
      this._div.append(toggle, this._body);
      L.DomEvent.disableClickPropagation(this._div);
      L.DomEvent.disableScrollPropagation(this._div);
      return this._div;
    },
    update(info) {
      if (this._body) this._body.replaceChildren(legendContent(info, options));
    },
  });
  return new Legend();
}

/** A scene's one-line description for lists: date, sensor, resolution, observed share. */
export function sceneLine(s) {
  const bits = [day(s.time), s.sensor, s.resolution_m ? `${s.resolution_m} m` : null,
    s.observed === null || s.observed === undefined ? 'not observed' : `${pct(s.observed)} obs.`];
  if (!s.usable) bits.push(s.status || 'unusable');
  return bits.filter(Boolean).join(' · ');
}

export { L };
