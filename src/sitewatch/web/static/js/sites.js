// The sites page: one row per watched site from GET /api/sites.

import { getJSON } from './api.js';
import { el, replace, day, words, pct, TIERS } from './dom.js';

function tierChips(byTier, open) {
  const chips = TIERS.filter((t) => byTier && byTier[t])
    .map((t) => el('span', { class: `chip tier-${t}`, title: `${byTier[t]} open ${t}` },
      `${byTier[t]} ${t}`));
  if (!chips.length) return el('span', { class: 'muted' }, open ? `${open} open` : 'none');
  return el('span', { class: 'chips' }, chips);
}

function level(part, name) {
  if (!part) return el('div', { class: 'muted' }, `${name}: —`);
  const lvl = part.level || 'unknown';
  return el('div', { class: 'assess-line' },
    el('span', { class: 'muted' }, `${name} `),
    el('span', { class: `level level-${lvl}` }, words(lvl)),
    part.likelihood !== undefined && part.likelihood !== null
      ? el('span', { class: 'num' }, ` ${pct(part.likelihood)}`) : null);
}

function row(s) {
  const href = `/sites/${encodeURIComponent(s.id)}`;
  const last = s.last_image;
  const a = s.assessment;
  return el('tr', { dataset: { site: s.id } },
    el('td', null,
      el('a', { href, class: 'site-link' }, s.name || s.id),
      s.simulated ? el('span', { class: 'badge badge-sim' }, 'SIMULATED') : null,
      el('div', { class: 'muted small' }, s.id)),
    el('td', null, words(s.site_type)),
    el('td', { class: 'num' }, String(s.scenes ?? 0)),
    el('td', null, last
      ? [el('div', null, day(last.time)), el('div', { class: 'muted small' }, last.sensor || '')]
      : el('span', { class: 'muted' }, 'no image')),
    el('td', null, tierChips(s.alerts_by_tier, s.open_alerts)),
    el('td', null, a
      ? [level(a.launch, 'launch'), level(a.engine_test, 'engine test'),
        el('div', { class: 'muted small' }, `at ${day(a.at)}`)]
      : el('span', { class: 'muted' }, 'no assessment')),
    el('td', null, el('a', { href, class: 'button' }, 'Open')));
}

async function main() {
  const status = document.getElementById('status');
  const box = document.getElementById('sites');
  let sites;
  try {
    sites = await getJSON('/api/sites');
  } catch (e) {
    status.classList.add('error');
    status.textContent = `Cannot load the sites: ${e.message}`;
    return;
  }
  if (!sites.length) {
    status.textContent = 'No sites yet: define one with `sitewatch site add`, or try '
      + '`sitewatch demo`.';
    return;
  }
  status.hidden = true;
  replace(box, el('table', { class: 'sites-table' },
    el('thead', null, el('tr', null,
      ['Site', 'Type', 'Scenes', 'Last image', 'Open alerts', 'Current assessment', '']
        .map((h) => el('th', null, h)))),
    el('tbody', null, sites.map(row))));
}

main();
