// The dashboard: one tenant's queue, backends, dead letters, policy and
// usage, live from GET /v1/admin/overview/events (no reloads).
'use strict';
(() => {
  const { api, stream, el, blobURL } = easel;
  const thumbs = new Map(); // image URL → object URL of its thumbnail, fetched once
  const $ = (id) => document.getElementById(id);
  let live = null;
  const rows = (id, items, render, empty) => $(id).replaceChildren(...(items.length ? items.map(render) :
    [el('tr', {}, el('td', { colspan: '9', class: 'muted' }, empty))]));
  const td = (...k) => el('td', {}, ...k);
  const fmt = (v) => v === undefined || v === null ? '—' : (typeof v === 'object' ? JSON.stringify(v) : String(v));

  function render(o) {
    $('tenant').textContent = o.tenant;
    const total = Object.values(o.served || {}).reduce((a, b) => a + b, 0);
    const mine = total ? (o.served[o.tenant] || 0) / total : 0;
    const pct = (x) => `${(x * 100).toFixed(0)}%`;
    const entitled = (o.entitled || {})[o.tenant];
    $('share').replaceChildren(`Served share (last 15 min): ${pct(mine)} of all tenants · `,
      el('span', { id: 'entitled' }, entitled === undefined ? 'entitled now: — (nothing queued)' : `entitled now: ${pct(entitled)}`),
      ` · weight ${o.weight}`);
    rows('users', o.users, u => el('tr', { 'data-user': u.user, 'data-running': u.running }, td(u.user), td(String(u.pending)), td(String(u.running)),
      el('td', { class: 'entitled' }, u.entitled ? pct(u.entitled) : '—')), 'No active jobs.');
    $('recent').replaceChildren(...(o.recent || []).flatMap(j => j.images.map((im, i) => {
      const prompt = (j.request && j.request.prompt) || j.id;
      const img = el('img', { alt: `${prompt} (image ${i + 1}, seed ${im.seed})`, title: prompt });
      const cached = thumbs.get(im.url);
      if (cached) img.src = cached;
      else blobURL(im.thumb_url).then(u => { thumbs.set(im.url, u); img.src = u; }).catch(() => { img.alt = 'image expired'; });
      return img;
    })));
    if (!(o.recent || []).length) $('recent').replaceChildren(el('p', { class: 'muted' }, 'No images yet.'));
    rows('jobs', o.jobs, j => el('tr', { 'data-job': j.id, 'data-status': j.status, 'data-backend': j.backend || '' }, td(el('code', {}, j.id)), td(j.user), td(j.status + (j.position ? ` #${j.position}` : '')),
      td(j.backend || '—'), td(el('progress', { max: '1', value: String(j.progress || 0), 'aria-label': `progress of ${j.id}` }), ` ${j.step}/${j.steps}`)), 'Nothing queued or running.');
    const cat = o.catalog || {};
    rows('backends', cat.backends || [], b => el('tr', {}, td(b), td(el('span', { class: 'pill ok' }, 'advertising')),
      td(...(cat.models || []).filter(m => m.backends.includes(b)).map(m => (m.loaded_on || []).includes(b) ? el('b', {}, m.name + ' ') : m.name + ' '))),
      'No backend is advertising (workers down?).');
    rows('dead', o.dead, d => el('tr', { 'data-entry': d.entry }, td(el('code', {}, d.job.id)), td(d.code), td(d.message),
      td(el('button', { type: 'button', onclick: () => act('POST', `/v1/admin/dead/${d.entry}/retry`) }, 'Retry'), ' ',
        el('button', { type: 'button', onclick: () => act('DELETE', `/v1/admin/dead/${d.entry}`) }, 'Delete'))), 'No dead letters.');
    rows('failures', o.failures, j => el('tr', {}, td(el('code', {}, j.id)), td(j.user), td(j.error ? `${j.error.code}: ${j.error.message}` : '')), 'No recent failures.');
    const eff = (o.policy && o.policy.effective) || {};
    const settable = (o.policy && o.policy.settable) || [];
    rows('policy', settable, f => el('tr', {}, td(f), td(fmt(eff[f]))), 'No policy.');
    if ($('pfield').options.length !== settable.length) $('pfield').replaceChildren(...settable.map(f => el('option', { value: f }, f)));
    rows('refusals', Object.entries(o.refusals || {}), ([r, n]) => el('tr', { 'data-reason': r }, td(r), td(String(n))), 'None.');
    rows('usage', o.usage || [], u => el('tr', {}, td(u.user), td(`${u.images} images today`)), 'No usage today.');
  }

  async function act(method, path) {
    const r = await api(method, path);
    $('err').textContent = r.ok ? '' : r.body.error.message;
  }

  function connect() {
    if (live) live.stop();
    $('live').textContent = 'connecting…';
    live = stream('/v1/admin/overview/events', (type, d) => {
      if (type === 'overview') { $('err').textContent = ''; $('live').textContent = 'live'; $('live').className = 'pill ok'; render(d); }
      else if (type === 'error') { $('err').textContent = d.message; $('live').textContent = 'offline'; $('live').className = 'pill bad'; }
    });
  }

  $('pf').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('pvalue-err').textContent = ''; $('pvalue').removeAttribute('aria-invalid');
    $('pf').removeAttribute('data-state'); $('pstatus').textContent = 'Saving…';
    const body = { field: $('pfield').value, value: $('pvalue').value };
    if ($('puser').value) body.user = $('puser').value;
    const r = await api('PATCH', '/v1/admin/policy', body);
    if (!r.ok) { $('pvalue-err').textContent = r.body.error.message; $('pvalue').setAttribute('aria-invalid', 'true'); $('pstatus').textContent = ''; $('pf').dataset.state = 'error'; return; }
    $('pstatus').textContent = 'Saved.'; $('pf').dataset.state = 'saved';
  });
  $('apikey').value = easel.key();
  $('apikey').addEventListener('change', () => { easel.setKey($('apikey').value.trim()); connect(); });
  connect();
})();
