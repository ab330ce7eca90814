// The console: one snapshot at load, then a new one on every server-sent event; the
// explain form asks the firewall's GET /fw/explain. No framework, no build step.
import { renderAll, renderExplainResult } from './render.js';

const conn = document.getElementById('conn');
let last = 0;

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

async function load() {
  const res = await fetch('api/snapshot', { cache: 'no-store' });
  if (res.ok) show(await res.json());
}

function follow() {
  const events = new EventSource('api/events');
  events.addEventListener('open', () => setConn('live', 'live'));
  events.addEventListener('snapshot', (e) => {
    setConn('live', 'live');
    show(JSON.parse(e.data));
  });
  // EventSource reconnects by itself (the server asks for 1 s).
  events.addEventListener('error', () => setConn('reconnecting', 'reconnecting…'));
}

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
    const res = await fetch(`/fw/explain?${q}`);
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

load().catch(() => undefined);
follow();
