// The playground: a form over POST /v1/jobs, live progress from the job's
// events, a results grid with reroll, variation and upscale, and a
// history panel. It uses only the public HTTP API.
'use strict';
(() => {
  const { api, blobURL, stream, el } = easel;
  const $ = (id) => document.getElementById(id);
  const fields = ['prompt', 'negative_prompt', 'model', 'sampler', 'scheduler', 'width', 'height', 'steps', 'cfg_scale', 'count', 'seed'];
  const aspects = [['1:1', 512, 512], ['3:2', 768, 512], ['2:3', 512, 768], ['16:9', 912, 512], ['9:16', 512, 912], ['4:3', 680, 512], ['1:1 XL', 1024, 1024]];
  const terminal = new Set(['succeeded', 'failed', 'canceled']);
  let current = null, source = null;

  function status(text, err) { $('status').textContent = text; $('status').className = err ? 'err' : ''; }

  function clearErrors() {
    for (const f of [...fields, 'body', 'apikey']) {
      const e = $(f + '-err'); if (e) e.textContent = '';
      const i = $(f); if (i) i.removeAttribute('aria-invalid');
    }
  }
  // showError puts an API error at its field (or under the form).
  function showError(err) {
    let f = (err && err.field) || 'body';
    f = f.replace(/\[.*$/, '').replace(/\..*$/, '');
    if (!$(f + '-err')) f = 'body';
    $(f + '-err').textContent = err.message;
    if ($(f)) { $(f).setAttribute('aria-invalid', 'true'); $(f).focus(); }
  }

  function fill(select, names) {
    const keep = select.value;
    select.replaceChildren(el('option', { value: '' }, 'default'), ...names.map(n => el('option', { value: n }, n)));
    if (names.includes(keep)) select.value = keep;
  }

  async function loadModels() {
    const r = await api('GET', '/v1/models');
    if (r.status === 401) {
      $('keybox').hidden = false;
      if (easel.key()) { $('apikey-err').textContent = 'This key was not accepted.'; $('apikey').setAttribute('aria-invalid', 'true'); }
      status('This Easel needs an API key.', true);
      return false;
    }
    if (!r.ok) { status(r.body.error.message, true); return false; }
    if (easel.key()) $('keybox').hidden = false;
    fill($('model'), r.body.models.map(m => m.name));
    fill($('sampler'), r.body.samplers || []);
    fill($('scheduler'), r.body.schedulers || []);
    if (!r.body.backends || r.body.backends.length === 0) status('No backend is online yet; jobs will wait in the queue.');
    return true;
  }

  function setAspect(w, h) {
    $('width').value = w; $('height').value = h;
    for (const b of $('aspect').children) b.setAttribute('aria-pressed', String(+b.dataset.w === w && +b.dataset.h === h));
  }
  for (const [name, w, h] of aspects) {
    $('aspect').append(el('button', { type: 'button', 'data-w': w, 'data-h': h, 'aria-pressed': 'false', title: `${w}×${h}`, onclick: () => setAspect(w, h) }, name));
  }
  for (const id of ['width', 'height']) $(id).addEventListener('input', () => setAspect(+$('width').value, +$('height').value));

  // whole reads a whole-number field: undefined when empty, the number, or
  // an error shown at the field (never a silent 0).
  function whole(id, label) {
    const v = $(id).value.trim();
    if (v === '') return undefined;
    if (!/^-?\d+$/.test(v)) throw { field: id, message: `${label}: must be a whole number (got "${v}")` };
    return Number(v);
  }
  function request() {
    const body = { prompt: $('prompt').value };
    for (const f of ['negative_prompt', 'model', 'sampler', 'scheduler']) if ($(f).value) body[f] = $(f).value;
    for (const [f, label] of [['width', 'width'], ['height', 'height'], ['steps', 'steps'], ['count', 'count']]) {
      const n = whole(f, label); if (n !== undefined) body[f] = n;
    }
    const cfg = $('cfg_scale').value.trim();
    if (cfg !== '') {
      if (!/^\d+(\.\d+)?$/.test(cfg)) throw { field: 'cfg_scale', message: `cfg_scale: must be a number (got "${cfg}")` };
      body.cfg_scale = Number(cfg);
    }
    const seed = whole('seed', 'seed'); if (seed !== undefined) body.seed = seed;
    return body;
  }

  async function submit(body, path) {
    clearErrors();
    if (source) source.stop();
    const r = await api('POST', path || '/v1/jobs', body);
    if (!r.ok) {
      if (r.status === 401) { $('keybox').hidden = false; showError({ field: 'apikey', message: r.body.error.message }); }
      else showError(r.body.error);
      status(r.status === 429 ? r.body.error.message : 'Not submitted: ' + r.body.error.message, true);
      return;
    }
    follow(r.body.id, body);
    status(r.body.position > 0 ? queuedText(r.body.position) : 'Starting…');
  }
  // queuedText is a queued job's line: its place, and the server's estimate
  // of the wait (rounds of every worker slot × the average run time).
  function queuedText(pos, eta) {
    const wait = !eta ? '' : eta < 90 ? `, about ${Math.ceil(eta)} s` : `, about ${Math.round(eta / 60)} min`;
    return `Queued — #${pos} in line` + wait;
  }

  function follow(id, body) {
    current = { id, body };
    $('cancel').disabled = false; $('go').disabled = false;
    $('bar').value = 0;
    const n = (body && body.count) || 1;
    $('grid').replaceChildren(...Array.from({ length: n }, () => el('div', { class: 'tile' }, el('img', { alt: 'waiting', class: 'preview' }))));
    source = stream(`/v1/jobs/${id}/events`, (type, d) => {
      if (current.id !== id) return;
      switch (type) {
        case 'queued': status(queuedText(d.position, d.eta_s)); break;
        // The place in line changed, or why it waits (every GPU backend down).
        case 'position': status(d.waiting ? `Queued — #${d.position} in line, ${d.waiting.message}` : queuedText(d.position, d.eta_s)); break;
        case 'started': status(`Running on ${d.backend}…`); break;
        case 'retrying': status(`Retrying in ${(d.after_s || 0).toFixed(1)} s: ${d.reason}`); break;
        case 'progress':
          $('bar').value = d.steps ? d.step / d.steps : (d.fraction || 0);
          status(`Step ${d.step}/${d.steps}` + (d.eta_s ? ` — about ${Math.ceil(d.eta_s)} s left` : ''));
          if (d.preview) blobURL(`/v1/jobs/${id}/previews/${d.preview}`).then(u => {
            for (const img of $('grid').querySelectorAll('img.preview')) { img.src = u; img.alt = 'preview'; }
          }).catch(() => {});
          break;
        case 'succeeded': $('bar').value = 1; $('cancel').disabled = true; status(`Done — seed ${(d.seeds || []).join(', ')}`); showJob(id); break;
        case 'failed': $('cancel').disabled = true; status(`Failed: ${d.message}`, true); $('grid').replaceChildren(); break;
        case 'canceled': $('cancel').disabled = true; status('Canceled'); $('grid').replaceChildren(); break;
        case 'error': status(d.message, true); break;
      }
    }, (type) => terminal.has(type));
  }

  // showJob fills the grid with a finished job's images and buttons.
  async function showJob(id) {
    const r = await api('GET', `/v1/jobs/${id}`);
    if (!r.ok) { status(r.body.error.message, true); return; }
    const job = r.body;
    const req = job.request || {};
    const tiles = job.images.map((im, i) => {
      // The grid shows the thumbnail; the full image is fetched when it is
      // opened or downloaded (once).
      const img = el('img', { alt: `image ${i + 1}, seed ${im.seed}`, tabindex: '0' });
      const dl = el('a', { class: 'btnlink', download: `easel-${id}-${i}.png`, href: '#' }, 'Download');
      let full = null;
      const fullURL = () => full || (full = blobURL(im.url));
      blobURL(im.thumb_url || im.url).then(u => { img.src = u; }).catch(() => { img.alt = 'image expired'; });
      dl.addEventListener('click', (e) => {
        if (dl.href.startsWith('blob:')) return;
        e.preventDefault();
        fullURL().then(u => { dl.href = u; dl.click(); }).catch(() => status('image expired', true));
      });
      const open = () => fullURL().then(u => {
        $('full-img').src = u; $('full-img').alt = img.alt; $('full-dl').href = u; $('full-dl').download = `easel-${id}-${i}.png`; $('full').showModal();
      }).catch(() => status('image expired', true));
      img.addEventListener('click', open);
      img.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
      const bar = el('div', { class: 'bar' }, dl);
      if (!req.kind) {
        bar.append(
          el('button', { type: 'button', onclick: () => { const b = Object.assign({}, req); delete b.seed; submit(b); } }, 'Reroll'),
          el('button', { type: 'button', onclick: () => submit(Object.assign({}, req, { seed: im.seed, count: 1, variation_strength: 0.35 })) }, 'Variation'),
          el('button', { type: 'button', onclick: () => submit({}, `/v1/jobs/${id}/images/${i}/upscale`) }, 'Upscale'));
      }
      return el('div', { class: 'tile' }, img, bar);
    });
    $('grid').replaceChildren(...tiles);
    loadHistory();
  }

  async function loadHistory() {
    const r = await api('GET', '/v1/jobs?limit=20');
    if (!r.ok) return;
    const jobs = r.body.jobs || [];
    if (jobs.length === 0) return;
    $('history').replaceChildren(...jobs.map(j => {
      const thumb = el('img', { alt: '' });
      if (j.images.length) blobURL(j.images[0].thumb_url || j.images[0].url).then(u => thumb.src = u).catch(() => {});
      const prompt = (j.request && j.request.prompt) || j.id;
      return el('button', { type: 'button', onclick: () => { current = { id: j.id, body: j.request }; showJob(j.id); status(`${j.status} — ${prompt}`); } },
        thumb, el('span', {}, el('span', {}, prompt), el('br'), el('span', { class: 'muted' }, `${j.status} · ${j.images.length} image(s)`)));
    }));
  }

  $('f').addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    let body;
    try { body = request(); } catch (err) { showError(err); return; }
    $('go').disabled = true;
    submit(body).finally(() => { $('go').disabled = false; });
  });
  $('cancel').addEventListener('click', async () => { if (current) await api('DELETE', `/v1/jobs/${current.id}`); });
  $('apikey').value = easel.key();
  $('apikey').addEventListener('change', () => { easel.setKey($('apikey').value.trim()); clearErrors(); loadModels().then(ok => ok && loadHistory()); });
  $('full-close').addEventListener('click', () => $('full').close());
  setAspect(512, 512);
  loadModels().then(ok => ok && loadHistory());
})();
