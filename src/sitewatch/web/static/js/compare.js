// The compare page: two dates of a site side by side with linked pan and zoom, or one map
// with a swipe (the after date over the before date, clipped at a draggable divider).
// Query: before=ID, after=ID, alert=ID (the alert's before/after pair when no dates given).

import { getJSON, sitePath } from './api.js';
import { el, replace, day, showError, words } from './dom.js';
import * as M from './map.js';

const L = window.L;
const siteId = document.body.dataset.site;
const params = new URLSearchParams(window.location.search);

const state = {
  site: null,
  scenes: [],
  alert: null,
  before: null,
  after: null,
  swipe: false,
  swipeX: 0.5,     // the divider's place, a share of the map's width
  tileinfo: new Map(),
};

const $id = (id) => document.getElementById(id);
const sceneById = (id) => state.scenes.find((s) => s.id === id) || null;

let mapB;            // the before map (also the swipe map)
let mapA;            // the after map
const layers = {
  before: null, after: null, swipe: null,
  changesB: L.layerGroup(), changesA: L.layerGroup(),
};
let swipePane;

// -- scenes -----------------------------------------------------------------------------------

async function tileinfoOf(scene) {
  if (!state.tileinfo.has(scene.id)) {
    const info = await getJSON(sitePath(siteId, 'scenes', scene.id, 'tileinfo')).catch((e) => {
      console.warn(`sitewatch: no tile info for ${scene.id}: ${e.message}`);
      return null;
    });
    state.tileinfo.set(scene.id, info);
  }
  return state.tileinfo.get(scene.id);
}

function defaultPair() {
  const usable = state.scenes.filter((s) => s.usable);
  const optical = usable.filter((s) => s.kind === 'optical');
  const after = (optical.length ? optical : usable).at(-1) || state.scenes.at(-1) || null;
  return [after ? previousOf(after) : null, after];
}

function previousOf(scene) {
  if (scene.previous && sceneById(scene.previous)) return sceneById(scene.previous);
  const i = state.scenes.indexOf(scene);
  for (let j = i - 1; j >= 0; j -= 1) {
    const s = state.scenes[j];
    if (s.usable && s.grid === scene.grid) return s;
  }
  return i > 0 ? state.scenes[i - 1] : null;
}

function fillSelect(select, current) {
  replace(select, state.scenes.slice().reverse().map((s) => el('option', {
    value: s.id, class: s.usable ? null : 'unusable', selected: current && s.id === current.id,
  }, M.sceneLine(s))));
  if (current) select.value = current.id;
}

function setQuery() {
  const q = new URLSearchParams();
  if (state.before) q.set('before', state.before.id);
  if (state.after) q.set('after', state.after.id);
  if (state.alert) q.set('alert', state.alert.id);
  window.history.replaceState(null, '', `${window.location.pathname}?${q}`);
}

// -- layers -----------------------------------------------------------------------------------

async function showSide(side) {
  const scene = state[side];
  const title = $id(`title-${side}`);
  const map = side === 'before' ? mapB : mapA;
  if (layers[side]) { map.removeLayer(layers[side]); layers[side] = null; }
  if (!scene) { title.textContent = `${side}: no date`; return; }
  title.textContent = `${side === 'before' ? 'Before' : 'After'}: ${M.sceneLine(scene)}`;
  const info = await tileinfoOf(scene);
  if (state[side] !== scene) return;  // changed meanwhile
  layers[side] = M.imageryLayer(scene, info).addTo(map);
  if (side === 'after') {
    replace($id('legend'), M.legendContent(info, { alerts: Boolean(state.alert) }));
    await showChanges(scene);
    if (state.swipe) showSwipeLayer(info);
  }
  describePair();
}

async function showChanges(scene) {
  layers.changesA.clearLayers();
  layers.changesB.clearLayers();
  try {
    const fc = await getJSON(sitePath(siteId, 'scenes', scene.id, 'changes'));
    if (state.after !== scene) return;
    layers.changesA.addLayer(M.changesLayer(fc));
    layers.changesB.addLayer(M.changesLayer(fc));
  } catch (e) {
    $id('compare-note').textContent = `change objects: ${e.message}`;
  }
}

function describePair() {
  const { before, after } = state;
  const note = $id('compare-note');
  if (!before || !after) { note.textContent = ''; return; }
  const bits = [];
  const days = Math.round((Date.parse(after.time) - Date.parse(before.time)) / 86400000);
  bits.push(`${days} days apart`);
  if (before.grid !== after.grid) bits.push(`different grids (${before.grid} / ${after.grid})`);
  if (before.orbit && after.orbit && before.orbit !== after.orbit) bits.push('different orbits');
  const prev = after.previous;
  bits.push(prev && prev !== before.id
    ? `change objects are the after date's, measured from ${prev}` : 'change objects: after vs. before');
  note.textContent = bits.join(' · ');
}

// -- linked maps and the swipe ----------------------------------------------------------------

function link(a, b) {
  let busy = false;
  const follow = (src, dst) => () => {
    if (busy || state.swipe) return;
    busy = true;
    try {
      dst.setView(src.getCenter(), src.getZoom(), { animate: false });
    } finally {
      busy = false;
    }
  };
  a.on('move zoomend', follow(a, b));
  b.on('move zoomend', follow(b, a));
}

function updateClip() {
  if (!state.swipe || !swipePane) return;
  const size = mapB.getSize();
  const x = Math.round(size.x * state.swipeX);
  const nw = mapB.containerPointToLayerPoint([0, 0]);
  const se = mapB.containerPointToLayerPoint(size);
  const left = nw.x + x;
  swipePane.style.clipPath = `polygon(${left}px ${nw.y}px, ${se.x}px ${nw.y}px, `
    + `${se.x}px ${se.y}px, ${left}px ${se.y}px)`;
  const handle = $id('swipe-handle');
  handle.style.left = `${x}px`;
  handle.setAttribute('aria-valuenow', String(Math.round(state.swipeX * 100)));
  $id('swipe-label-after').style.left = `${x + 10}px`;
  $id('swipe-label-before').style.right = `${size.x - x + 10}px`;
}

function showSwipeLayer(info) {
  if (layers.swipe) { mapB.removeLayer(layers.swipe); layers.swipe = null; }
  if (!state.swipe || !state.after) return;
  layers.swipe = M.imageryLayer(state.after, info, { pane: 'swipe' }).addTo(mapB);
  updateClip();
}

async function setSwipe(on) {
  state.swipe = on;
  const main = $id('compare-main');
  const toggle = $id('swipe-toggle');
  main.classList.toggle('swipe', on);
  toggle.setAttribute('aria-pressed', on ? 'true' : 'false');
  toggle.textContent = on ? 'Side by side' : 'Swipe';
  $id('swipe-handle').hidden = !on;
  $id('swipe-label-before').hidden = !on;
  $id('swipe-label-after').hidden = !on;
  const center = mapB.getCenter();
  mapB.invalidateSize({ pan: false });
  mapB.setView(center, mapB.getZoom(), { animate: false });
  if (on) {
    showSwipeLayer(state.after ? await tileinfoOf(state.after) : null);
  } else {
    if (layers.swipe) { mapB.removeLayer(layers.swipe); layers.swipe = null; }
    swipePane.style.clipPath = '';
    mapA.invalidateSize({ pan: false });
    mapA.setView(mapB.getCenter(), mapB.getZoom(), { animate: false });
  }
  updateClip();
}

function dragHandle() {
  const handle = $id('swipe-handle');
  const moveTo = (clientX) => {
    const r = mapB.getContainer().getBoundingClientRect();
    state.swipeX = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    updateClip();
  };
  handle.addEventListener('pointerdown', (ev) => {
    ev.preventDefault();
    handle.setPointerCapture(ev.pointerId);
    handle.classList.add('dragging');
  });
  handle.addEventListener('pointermove', (ev) => {
    if (handle.hasPointerCapture(ev.pointerId)) moveTo(ev.clientX);
  });
  const end = (ev) => {
    if (handle.hasPointerCapture(ev.pointerId)) handle.releasePointerCapture(ev.pointerId);
    handle.classList.remove('dragging');
  };
  handle.addEventListener('pointerup', end);
  handle.addEventListener('pointercancel', end);
  handle.addEventListener('keydown', (ev) => {
    const step = ev.shiftKey ? 0.01 : 0.05;
    if (ev.key === 'ArrowLeft') state.swipeX = Math.max(0, state.swipeX - step);
    else if (ev.key === 'ArrowRight') state.swipeX = Math.min(1, state.swipeX + step);
    else return;
    ev.preventDefault();
    updateClip();
  });
}

// -- the alert --------------------------------------------------------------------------------

async function findAlert(id) {
  const alerts = await getJSON(sitePath(siteId, 'alerts'));
  const exact = alerts.find((a) => a.id === id);
  if (exact) return exact;
  const prefixed = alerts.filter((a) => id.length >= 4 && a.id.startsWith(id));
  if (prefixed.length === 1) return prefixed[0];
  throw new Error(`no alert ${id} at ${siteId}`);
}

function partFeature(name) {
  return ((state.site.parts && state.site.parts.features) || [])
    .find((f) => f.properties.name === name && f.geometry) || null;
}

function describeAlert(a) {
  const box = $id('alert-info');
  const part = partFeature(a.part);
  box.hidden = false;
  box.classList.add(`tier-${a.tier}`);
  replace(box,
    el('div', { class: 'alert-head' },
      el('span', { class: `chip tier-${a.tier}` }, a.tier), ' ',
      el('strong', null, part ? M.partLabel(part.properties) : a.part), ' ',
      el('span', { class: 'muted' }, `${words(a.kind)} · ${a.status} · ${day(a.start)} → ${day(a.end || a.time)}`
        + ` · confidence ${a.confidence || '—'} · alert ${a.id}`)),
    el('div', { class: 'alert-text' }, a.text || ''));
}

// -- start ------------------------------------------------------------------------------------

function drawSiteLayers() {
  const site = state.site;
  for (const map of [mapB, mapA]) {
    M.outlineLayer(site).addTo(map);
    const parts = M.partsLayer(site).addTo(map);
    M.autoDeclutter(map, parts);
    if (state.alert) M.highlightPart(parts, state.alert.part);
  }
  layers.changesB.addTo(mapB);
  layers.changesA.addTo(mapA);
  if (state.alert && state.alert.position) {
    for (const map of [mapB, mapA]) {
      const g = M.alertsLayer([state.alert], { show: () => true }).addTo(map);
      M.selectMarker(g, state.alert.id);
    }
  }
}

function initialView() {
  const part = state.alert && partFeature(state.alert.part);
  if (part) {
    const b = L.geoJSON(part).getBounds();
    mapB.fitBounds(b.pad(2), { maxZoom: 18 });
  } else {
    mapB.fitBounds(M.boundsOf(state.site.bbox), { padding: [10, 10] });
  }
  mapA.setView(mapB.getCenter(), mapB.getZoom(), { animate: false });
}

async function main() {
  if (!L) { showError('Leaflet did not load: the maps cannot be shown.'); return; }
  try {
    [state.site, state.scenes] = await Promise.all([
      getJSON(sitePath(siteId)), getJSON(sitePath(siteId, 'scenes'))]);
  } catch (e) {
    showError(`Cannot load site "${siteId}": ${e.message}`);
    return;
  }
  const site = state.site;
  document.title = `Compare · ${site.name || site.id} · sitewatch`;
  $id('site-name').textContent = site.name || site.id;
  $id('sim-badge').hidden = !site.simulated;

  let before = params.get('before');
  let after = params.get('after');
  if (params.get('alert')) {
    try {
      state.alert = await findAlert(params.get('alert'));
      describeAlert(state.alert);
      if (!before && !after) { before = state.alert.before_scene; after = state.alert.after_scene; }
    } catch (e) {
      showError(`${e.message}`);
    }
  }
  const missing = [before, after].filter((id) => id && !sceneById(id));
  if (missing.length) showError(`No date ${missing.join(', ')} at ${siteId}: showing another.`);
  const [defB, defA] = defaultPair();
  state.after = sceneById(after) || defA;
  state.before = sceneById(before) || (state.after ? previousOf(state.after) : defB);
  if (!state.scenes.length) showError(`No images catalogued for ${siteId} yet.`);

  mapB = M.createMap('map-before');
  mapA = M.createMap('map-after');
  swipePane = mapB.createPane('swipe');
  swipePane.style.zIndex = '250';  // over the tiles (200), under the overlays (400)
  const main = $id('compare-main');
  main.append(
    el('div', { id: 'swipe-label-before', class: 'swipe-label', hidden: true }, 'before'),
    el('div', { id: 'swipe-label-after', class: 'swipe-label', hidden: true }, 'after'));
  initialView();
  drawSiteLayers();
  link(mapB, mapA);
  mapB.on('move zoom zoomend resize viewreset', updateClip);
  dragHandle();

  fillSelect($id('compare-before'), state.before);
  fillSelect($id('compare-after'), state.after);
  for (const side of ['before', 'after']) {
    $id(`compare-${side}`).addEventListener('change', (ev) => {
      state[side] = sceneById(ev.target.value);
      setQuery();
      showSide(side);
    });
  }
  $id('swipe-toggle').addEventListener('click', () => setSwipe(!state.swipe));
  $id('back-link').setAttribute('href', `/sites/${encodeURIComponent(siteId)}`
    + (state.after ? `?scene=${encodeURIComponent(state.after.id)}` : ''));
  setQuery();
  await Promise.all([showSide('before'), showSide('after')]);
  if (params.get('swipe') === '1') setSwipe(true);
}

main();
