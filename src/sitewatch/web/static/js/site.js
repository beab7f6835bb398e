// The site page: the map of one date, the dates list, a part's timeline, and the panels and
// parts editor that plug in through `ctx` (panels.js, editor.js; see initPlugins).
//
// Three requests load the page (the site, its scenes, its alerts); a date's tile info and
// change objects are fetched when it is shown, a part's timeline when it is chosen.

import { api, getJSON, sitePath } from './api.js';
import { el, replace, day, dayTime, pct, showError, words, TIERS } from './dom.js';
import * as M from './map.js';
import { drawTimeline } from './timeline.js';

const L = window.L;
const siteId = document.body.dataset.site;
const params = new URLSearchParams(window.location.search);

const state = {
  shown: null,          // the scene on the map
  selectedAlert: null,  // an alert id
  part: null,           // the part whose timeline is drawn
  timeline: null,       // its data
  tileinfo: new Map(),  // scene id -> tileinfo (or null when it failed)
  filter: '',           // '', 'optical' or 'sar'
  showSeq: 0,           // guards against a slower earlier showScene finishing last
  timelineSeq: 0,
};

// -- events between the page and its plug-ins ------------------------------------------------

const listeners = new Map();

function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, []);
  listeners.get(event).push(fn);
}

function emit(event, data) {
  for (const fn of listeners.get(event) || []) {
    try {
      fn(data);
    } catch (e) {
      console.error(`sitewatch: a listener of "${event}" failed`, e);
    }
  }
}

// -- helpers ----------------------------------------------------------------------------------

const sceneById = (id) => ctx.scenes.find((s) => s.id === id) || null;

function setQuery(key, value) {
  const q = new URLSearchParams(window.location.search);
  if (value) q.set(key, value); else q.delete(key);
  const s = q.toString();
  window.history.replaceState(null, '', `${window.location.pathname}${s ? `?${s}` : ''}`);
}

/** The date shown first: the newest usable optical scene, else the newest usable one. */
function defaultScene(scenes) {
  const usable = scenes.filter((s) => s.usable);
  const optical = usable.filter((s) => s.kind === 'optical');
  return (optical.length ? optical : usable.length ? usable : scenes).at(-1) || null;
}

function compareUrl(before, after, alertId) {
  const q = new URLSearchParams();
  if (before) q.set('before', before);
  if (after) q.set('after', after);
  if (alertId) q.set('alert', alertId);
  return `/sites/${encodeURIComponent(siteId)}/compare?${q}`;
}

/** The usable scene before `scene` on its grid (what its change objects are measured from). */
function previousOf(scene) {
  if (!scene) return null;
  if (scene.previous) return scene.previous;
  const i = ctx.scenes.indexOf(scene);
  for (let j = i - 1; j >= 0; j -= 1) {
    const s = ctx.scenes[j];
    if (s.usable && s.grid === scene.grid) return s.id;
  }
  return null;
}

// -- header -----------------------------------------------------------------------------------

function drawHeader(site) {
  document.title = `${site.name || site.id} · sitewatch`;
  document.getElementById('site-name').textContent = site.name || site.id;
  document.getElementById('sim-badge').hidden = !site.simulated;
  document.getElementById('site-meta').textContent = `${site.id} · ${words(site.site_type)}`;
}

// -- the map ----------------------------------------------------------------------------------

let map;
let imagery = null;            // the current tile layer
const imageryGroup = L.layerGroup();
const outlineGroup = L.layerGroup();
const alertsGroup = L.layerGroup();
const changesGroup = L.layerGroup();
let alertsLayer = null;
let partsLayer = null;
let legend;
let declutter = () => {};

function buildMap(site) {
  map = M.createMap('map');
  map.fitBounds(M.boundsOf(site.bbox), { padding: [12, 12] });
  partsLayer = M.partsLayer(site, { onClick: (name) => showTimeline(name) });
  imageryGroup.addTo(map);
  outlineGroup.addLayer(M.outlineLayer(site)).addTo(map);
  partsLayer.addTo(map);
  declutter = M.autoDeclutter(map, partsLayer);
  changesGroup.addTo(map);
  alertsGroup.addTo(map);
  L.control.layers(null, {
    Imagery: imageryGroup, 'Site outline': outlineGroup, Parts: partsLayer,
    'Change objects': changesGroup, Alerts: alertsGroup,
  }, { collapsed: false, position: 'topright' }).addTo(map);
  legend = M.legendControl();
  legend.addTo(map);
  drawAlerts();
}

function drawAlerts() {
  alertsGroup.clearLayers();
  alertsLayer = M.alertsLayer(ctx.alerts, {
    onClick: (a) => selectAlert(a.id),
    show: (a) => a.status !== 'dismissed' || a.id === state.selectedAlert,
  });
  alertsGroup.addLayer(alertsLayer);
  if (state.selectedAlert) M.selectMarker(alertsLayer, state.selectedAlert);
}

function redrawParts(site) {
  const features = ((site.parts && site.parts.features) || []).filter((f) => f.geometry);
  partsLayer.clearLayers();
  partsLayer.addData({ type: 'FeatureCollection', features });
  outlineGroup.clearLayers();
  outlineGroup.addLayer(M.outlineLayer(site));
  if (state.part) M.highlightPart(partsLayer, state.part);
  declutter();
}

async function tileinfoOf(scene) {
  if (state.tileinfo.has(scene.id)) return state.tileinfo.get(scene.id);
  let info = null;
  try {
    info = await getJSON(sitePath(siteId, 'scenes', scene.id, 'tileinfo'));
  } catch (e) {
    console.warn(`sitewatch: no tile info for ${scene.id}: ${e.message}`);
  }
  state.tileinfo.set(scene.id, info);
  return info;
}

/** Put a scene's imagery and change objects on the map. */
async function showScene(sceneId) {
  const scene = sceneById(sceneId);
  if (!scene) {
    showError(`No date ${sceneId} at ${siteId}.`);
    return;
  }
  const seq = ++state.showSeq;
  state.shown = scene;
  markShownDate();
  setQuery('scene', scene.id);
  describeShown(scene, 'loading…');
  const [info, changes] = await Promise.all([
    tileinfoOf(scene),
    getJSON(sitePath(siteId, 'scenes', scene.id, 'changes')).catch((e) => ({ error: e })),
  ]);
  if (seq !== state.showSeq) return;  // a later click won
  const old = imagery;
  imagery = M.imageryLayer(scene, info);
  const swap = () => { if (old) imageryGroup.removeLayer(old); };
  imagery.once('load', swap);
  window.setTimeout(swap, 1500);  // never keep two dates for long
  imageryGroup.addLayer(imagery);
  legend.update(info);
  changesGroup.clearLayers();
  let note;
  if (changes.error) {
    note = `change objects: ${changes.error.message}`;
  } else {
    changesGroup.addLayer(M.changesLayer(changes));
    const n = (changes.features || []).length;
    note = scene.usable ? `${n} change object${n === 1 ? '' : 's'}` : 'not usable: no change objects';
  }
  describeShown(scene, info ? note : `${note}; no tile info (imagery may be missing)`);
  if (state.timeline) redrawTimeline();
  emit('scene-shown', scene);
}

function describeShown(scene, note) {
  const prev = previousOf(scene);
  replace(document.getElementById('shown-scene'),
    el('strong', null, dayTime(scene.time)), ' ',
    el('span', { class: 'muted' }, `${scene.sensor} · ${scene.resolution_m} m · ${pct(scene.observed)} observed`
      + ` · ${scene.status}`), ' ',
    el('span', { class: 'muted small' }, note ? `· ${note}` : ''),
    prev ? el('a', { class: 'small toolbar-link', href: compareUrl(prev, scene.id) },
      'compare with previous') : null);
  document.getElementById('compare-link').setAttribute('href', compareUrl(prev, scene.id));
}

// -- the dates list ---------------------------------------------------------------------------

function alertsByScene() {
  const by = new Map();
  for (const a of ctx.alerts) {
    if (a.status === 'dismissed' || !a.after_scene) continue;
    if (!by.has(a.after_scene)) by.set(a.after_scene, []);
    by.get(a.after_scene).push(a.tier);
  }
  return by;
}

function drawDates() {
  const box = document.getElementById('dates');
  const kinds = new Set(ctx.scenes.map((s) => s.kind));
  const filter = document.getElementById('sensor-filter');
  filter.hidden = kinds.size < 2;
  const alerts = alertsByScene();
  const shown = ctx.scenes.filter((s) => !state.filter || s.kind === state.filter).slice().reverse();
  document.getElementById('dates-count').textContent = `${shown.length}`
    + (shown.length !== ctx.scenes.length ? ` of ${ctx.scenes.length}` : '');
  if (!ctx.scenes.length) {
    replace(box, el('p', { class: 'empty' }, 'No images catalogued yet (sitewatch ingest or sync).'));
    return;
  }
  replace(box, shown.map((s) => {
    const tiers = alerts.get(s.id) || [];
    const unusable = !s.usable || s.observed === 0 || s.observed === null;
    return el('button', {
      type: 'button', class: ['date', unusable && 'unusable', `kind-${s.kind}`],
      dataset: { scene: s.id }, role: 'option', title: s.id,
      onclick: () => showScene(s.id),
    },
    el('span', { class: 'date-day' }, day(s.time)),
    el('span', { class: 'date-sensor' }, s.sensor),
    el('span', { class: 'date-res num' }, `${s.resolution_m} m`),
    el('span', { class: 'date-obs num' }, s.observed === null || s.observed === undefined
      ? 'n/o' : pct(s.observed)),
    el('span', { class: 'date-status' }, s.status),
    el('span', { class: 'date-alerts' }, TIERS.filter((t) => tiers.includes(t))
      .map((t) => el('span', { class: `dot tier-${t}`, title: `${t} alert from this date` }))));
  }));
  markShownDate();
}

function markShownDate() {
  for (const b of document.querySelectorAll('#dates button.date')) {
    const on = state.shown && b.dataset.scene === state.shown.id;
    b.classList.toggle('current', Boolean(on));
    b.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  // Scroll the list only (scrollIntoView would also scroll the fixed-height page).
  const box = document.getElementById('dates');
  const cur = box.querySelector('button.current');
  if (cur && !cur.matches(':hover')) {
    const top = cur.offsetTop - box.offsetTop;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (top + cur.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = top + cur.offsetHeight - box.clientHeight;
    }
  }
}

function stepDate(delta) {
  const buttons = [...document.querySelectorAll('#dates button.date')];
  const i = buttons.findIndex((b) => b.classList.contains('current'));
  const next = buttons[Math.min(buttons.length - 1, Math.max(0, i + delta))];
  if (next) { showScene(next.dataset.scene); next.focus(); }
}

// -- parts and the timeline -------------------------------------------------------------------

function drawPartSelect(site) {
  const select = document.getElementById('part-select');
  const parts = ((site.parts && site.parts.features) || [])
    .map((f) => ({ ...f.properties, placed: Boolean(f.geometry) && f.properties.placed !== false }));
  const known = new Set(parts.map((p) => p.name));
  for (const u of site.unplaced || []) {
    const name = typeof u === 'string' ? u : u.name;
    if (!known.has(name)) parts.push({ ...(typeof u === 'string' ? {} : u), name, placed: false });
  }
  parts.sort((a, b) => M.partLabel(a).localeCompare(M.partLabel(b)));
  replace(select, el('option', { value: '' }, '— choose a part —'),
    parts.map((p) => el('option', { value: p.name },
      `${M.partLabel(p)}${p.label && p.label !== p.name ? ` (${p.name})` : ''}`
      + `${p.placed ? '' : ' — not placed'}`)));
  select.value = state.part || '';
}

function redrawTimeline() {
  const box = document.getElementById('timeline');
  drawTimeline(box, state.timeline, {
    onDate: (sceneId) => showScene(sceneId),
    onAlert: (alertId) => selectAlert(alertId),
    current: state.shown && state.shown.id,
    currentTime: state.shown && state.shown.time,
  });
}

/** Draw a part's timeline under the map (null or '' clears it). */
async function showTimeline(partName) {
  const box = document.getElementById('timeline');
  const note = document.getElementById('timeline-note');
  const select = document.getElementById('part-select');
  state.part = partName || null;
  select.value = state.part || '';
  setQuery('part', state.part);
  M.highlightPart(partsLayer, state.part);
  const seq = ++state.timelineSeq;
  if (!state.part) {
    state.timeline = null;
    note.textContent = '';
    replace(box, el('p', { class: 'empty' }, 'Choose a part (here or on the map) to see its timeline.'));
    return;
  }
  note.textContent = 'loading…';
  try {
    const data = await getJSON(`${sitePath(siteId, 'timeline')}?part=${encodeURIComponent(state.part)}`);
    if (seq !== state.timelineSeq) return;
    state.timeline = data;
    note.textContent = 'click a date to show it on the map; grey ticks: not observed';
    redrawTimeline();
  } catch (e) {
    if (seq !== state.timelineSeq) return;
    state.timeline = null;
    note.textContent = '';
    replace(box, el('p', { class: 'empty error' }, `No timeline for ${state.part}: ${e.message}`));
  }
}

// -- alerts -----------------------------------------------------------------------------------

let selecting = false;

/** Select an alert: its marker, its part's timeline, its date on the map. */
function selectAlert(alertId) {
  const alert = ctx.alerts.find((a) => a.id === alertId);
  if (!alert || selecting) return;
  selecting = true;
  try {
    const wasHidden = alertsLayer && !alertsLayer.markers.has(alert.id);
    state.selectedAlert = alert.id;
    if (wasHidden) drawAlerts();
    M.selectMarker(alertsLayer, alert.id);
    if (alert.part && alert.part !== state.part) showTimeline(alert.part);
    if (alert.after_scene && (!state.shown || state.shown.id !== alert.after_scene)
        && sceneById(alert.after_scene)) {
      showScene(alert.after_scene);
    }
    if (alert.position) {
      const ll = L.latLng(alert.position[1], alert.position[0]);
      if (!map.getBounds().pad(-0.1).contains(ll)) map.panTo(ll);
    }
    emit('alert-selected', alert);
  } finally {
    selecting = false;
  }
}

// -- reload and the plug-ins ------------------------------------------------------------------

async function reload() {
  const [site, alerts] = await Promise.all([
    getJSON(sitePath(siteId)), getJSON(sitePath(siteId, 'alerts'))]);
  ctx.site = site;
  ctx.alerts = alerts;
  drawHeader(site);
  redrawParts(site);
  drawPartSelect(site);
  drawAlerts();
  drawDates();
  if (state.part) await showTimeline(state.part);
}

const ctx = {
  siteId,
  site: null,
  scenes: [],
  alerts: [],
  api,
  map: null,
  partsLayer: null,
  showScene,
  openCompare(beforeId, afterId, alertId) {
    window.location.assign(compareUrl(beforeId, afterId, alertId));
  },
  showTimeline,
  selectAlert,
  reload,
  on,
  emit,
};

function initPlugins() {
  const plug = (path, fn) => import(path)
    .then((m) => m[fn](ctx))
    .catch((e) => console.error(`sitewatch: ${path} did not load; the page works without it`, e));
  plug('./panels.js', 'initPanels');
  plug('./editor.js', 'initEditor');
}

async function main() {
  if (!L) {
    showError('Leaflet did not load (/static/vendor/leaflet/leaflet.js): the map cannot be shown.');
    return;
  }
  let site;
  let scenes;
  let alerts;
  try {
    [site, scenes, alerts] = await Promise.all([
      getJSON(sitePath(siteId)), getJSON(sitePath(siteId, 'scenes')),
      getJSON(sitePath(siteId, 'alerts'))]);
  } catch (e) {
    showError(`Cannot load site "${siteId}": ${e.message}`);
    document.body.classList.add('failed');
    return;
  }
  Object.assign(ctx, { site, scenes, alerts });
  drawHeader(site);
  buildMap(site);
  ctx.map = map;
  ctx.partsLayer = partsLayer;
  drawPartSelect(site);
  drawDates();
  document.getElementById('part-select').addEventListener('change', (ev) => showTimeline(ev.target.value));
  document.getElementById('sensor-filter').addEventListener('change', (ev) => {
    state.filter = ev.target.value;
    drawDates();
  });
  document.getElementById('dates').addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown') { ev.preventDefault(); stepDate(1); }
    if (ev.key === 'ArrowUp') { ev.preventDefault(); stepDate(-1); }
  });
  let lastWidth = 0;
  new ResizeObserver((entries) => {
    const w = Math.round(entries[0].contentRect.width);
    if (w !== lastWidth && state.timeline) { lastWidth = w; redrawTimeline(); }
  }).observe(document.getElementById('timeline'));

  const first = sceneById(params.get('scene')) || defaultScene(scenes);
  if (params.get('scene') && !sceneById(params.get('scene'))) {
    showError(`No date ${params.get('scene')} at ${siteId}: showing the latest usable one.`);
  }
  if (first) showScene(first.id);
  else describeShown0();
  if (params.get('part')) showTimeline(params.get('part'));
  initPlugins();
}

function describeShown0() {
  document.getElementById('shown-scene').textContent = 'No images catalogued for this site yet.';
}

main();
