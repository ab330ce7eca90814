// The console: one snapshot at load, then a new one on every server-sent event; the
// explain form asks the firewall's GET /fw/explain. No framework, no build step.
//
// On a controller with an auth file, the console asks for an admin token (a browser with
// an admin client certificate needs none): it is kept for this tab only (sessionStorage)
// and sent as `Authorization: Bearer`. The event stream is read with fetch, not
// EventSource, which cannot send that header.
import { renderAll, renderExplainResult } from './render.js';

const conn = document.getElementById('conn');
const signin = document.getElementById('signin');
const TOKEN_KEY = 'rhumb-console-token';
let last = 0;
let stream;

function show(snapshot) {
  // Snapshots arrive in build order; a late answer to the first fetch is older.
  if (snapshot.generated_at < last) return;
  last = snapshot.generated_at;
  renderAll(snapshot);
  document.body.dataset.revision = String(snapshot.revision);
}

function setConn(state, text) {
  conn.dataset.state = state;
  conn.textContent = text;
}

/** fetch with the tab's token, if it has one. */
function authFetch(url, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(url, { ...init, headers });
}

/** 401/403: ask for a token (again), saying why; the stream stops until one is given. */
function askForToken(status, message) {
  stream?.abort();
  setConn('signed-out', 'signed out');
  const hadToken = sessionStorage.getItem(TOKEN_KEY) !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  signin.hidden = false;
  const why = status === 403 ? `This token may not see the console (admins only): ${message}` : hadToken ? `The controller refused the token: ${message}` : '';
  document.getElementById('signin-error').textContent = why;
  document.getElementById('signin-token').focus();
}

async function load() {
  const res = await authFetch('api/snapshot', { cache: 'no-store' });
  if (res.status === 401 || res.status === 403) {
    const body = await res.json().catch(() => ({}));
    askForToken(res.status, body.message ?? `HTTP ${res.status}`);
    return false;
  }
  if (res.ok) show(await res.json());
  return true;
}

/** Reads the server-sent events; reconnects after a second when the stream ends. */
async function follow() {
  const ctl = new AbortController();
  stream = ctl;
  while (!ctl.signal.aborted) {
    try {
      const res = await authFetch('api/events', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'text/event-stream' } });
      if (res.status === 401 || res.status === 403) {
        const body = await res.json().catch(() => ({}));
        askForToken(res.status, body.message ?? `HTTP ${res.status}`);
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      setConn('live', 'live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const lines = block.split('\n');
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (lines.includes('event: snapshot') && data) {
            setConn('live', 'live');
            show(JSON.parse(data));
          }
        }
      }
    } catch {
      if (ctl.signal.aborted) return;
    }
    setConn('reconnecting', 'reconnecting…');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function start() {
  if (await load().catch(() => true)) follow();
}

signin.addEventListener('submit', (e) => {
  e.preventDefault();
  const token = String(new FormData(signin).get('token') ?? '').trim();
  if (token === '') return;
  sessionStorage.setItem(TOKEN_KEY, token);
  signin.reset();
  signin.hidden = true;
  document.getElementById('signin-error').textContent = '';
  start();
});

document.getElementById('explain').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const q = new URLSearchParams();
  for (const k of ['from', 'to', 'proto', 'port']) {
    const v = String(form.get(k) ?? '').trim();
    if (v !== '' && !(k === 'port' && !['tcp', 'udp'].includes(String(form.get('proto'))))) q.set(k, v);
  }
  const box = document.getElementById('explain-result');
  box.dataset.state = 'asking';
  try {
    const res = await authFetch(`/fw/explain?${q}`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const detail = Array.isArray(body.errors) ? body.errors.map((x) => `${x.field}: ${x.message}`).join('; ') : '';
      renderExplainResult(box, { error: `${body.message ?? `HTTP ${res.status}`}${detail ? ` (${detail})` : ''}` });
    } else {
      renderExplainResult(box, { explanation: body });
    }
  } catch (err) {
    renderExplainResult(box, { error: String(err) });
  }
  box.dataset.state = 'answered';
});

start();
