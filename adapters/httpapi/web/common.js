// Shared by the playground and the dashboard: API calls with the stored
// key, and Server-Sent Events read through fetch (EventSource cannot send
// an Authorization header).
'use strict';
const easel = (() => {
  const keyName = 'easel.apiKey';
  const key = () => localStorage.getItem(keyName) || '';
  const setKey = (k) => { if (k) localStorage.setItem(keyName, k); else localStorage.removeItem(keyName); };
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (key()) h['Authorization'] = 'Bearer ' + key();
    return h;
  }
  // api calls the HTTP API; it resolves to {ok, status, body}. An answer's
  // error is body.error: {code, message, field}.
  async function api(method, path, body) {
    const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let resp;
    try { resp = await fetch(path, init); } catch (e) {
      return { ok: false, status: 0, body: { error: { code: 'network', message: 'the server did not answer: ' + e.message } } };
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = { error: { code: 'bad_answer', message: 'HTTP ' + resp.status } }; }
    return { ok: resp.ok, status: resp.status, body: data };
  }
  // blobURL fetches an image with the key and returns an object URL.
  async function blobURL(path) {
    const resp = await fetch(path, { headers: headers() });
    if (!resp.ok) throw new Error('HTTP ' + resp.status);
    return URL.createObjectURL(await resp.blob());
  }
  // stream reads an SSE endpoint, calling on(type, data, id) per event,
  // and resumes from the last id when the connection drops, until
  // stop() is called or done(type) says the stream is over.
  function stream(path, on, done) {
    const ctl = { stopped: false, abort: null, stop() { this.stopped = true; if (this.abort) this.abort.abort(); } };
    let last = '';
    (async () => {
      let delay = 500;
      while (!ctl.stopped) {
        ctl.abort = new AbortController();
        try {
          const h = headers({ Accept: 'text/event-stream' });
          if (last) h['Last-Event-ID'] = last;
          const resp = await fetch(path, { headers: h, signal: ctl.abort.signal });
          if (!resp.ok) { on('error', { message: 'HTTP ' + resp.status }); return; }
          const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done: end } = await reader.read();
            if (end) break;
            buf += value;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i); buf = buf.slice(i + 2);
              let type = 'message', data = '', id = '';
              for (const line of block.split('\n')) {
                if (line.startsWith('event: ')) type = line.slice(7);
                else if (line.startsWith('data: ')) data += line.slice(6);
                else if (line.startsWith('id: ')) id = line.slice(4);
              }
              if (!data) continue;
              if (id) last = id;
              let d; try { d = JSON.parse(data); } catch (e) { continue; }
              on(type, d, id);
              if (done && done(type)) { ctl.stopped = true; ctl.abort.abort(); return; }
            }
          }
          delay = 500;
        } catch (e) {
          if (ctl.stopped) return;
        }
        await new Promise(r => setTimeout(r, delay)); // reconnect backoff after a dropped stream
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return ctl;
  }
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  return { key, setKey, api, blobURL, stream, el };
})();
