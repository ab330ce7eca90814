// Rendering of a ConsoleSnapshot (src/console/view.ts) into the page. Every value from
// the snapshot is written as text (textContent / text nodes) or through setAttribute on
// data-* and SVG geometry: never parsed as HTML. Names and tags come from tenants.

const SVG_NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2b7bb9', '#d9822b', '#3a9a5b', '#a94fb0', '#c2403a', '#6b7f2a', '#2a9c9c', '#8a5a2b'];

/** An HTML element; string children become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return el;
}

/** An SVG element (same rules). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

const short = (uuid) => (typeof uuid === 'string' ? uuid.slice(0, 8) : '');

export function nodeLabel(snapshot, uuid) {
  const n = snapshot.nodes.find((x) => x.uuid === uuid);
  return n?.underlay_ip ?? short(uuid);
}

function fmtMs(ms) {
  if (ms === undefined || ms === null) return '—';
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

function fmtLoss(loss) {
  return loss === undefined || loss === null ? 'loss —' : `${(loss * 100).toFixed(loss > 0 && loss < 0.01 ? 1 : 0)}% loss`;
}

function fmtTags(tags) {
  if (!tags) return '';
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

function replaceBody(table, rows) {
  const tbody = table.tBodies[0];
  tbody.replaceChildren(...rows);
  if (rows.length === 0) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: table.tHead.rows[0].cells.length, text: 'none' })));
}

function nodeHealthClass(n) {
  if (n.agent === 'unknown') return 'unknown';
  if (n.agent === 'silent' || n.peers.some((p) => p.state === 'down')) return 'bad';
  return 'good';
}

export function renderNodes(table, snap) {
  replaceBody(
    table,
    snap.nodes.map((n) =>
      h(
        'tr',
        { 'data-node': n.uuid, class: nodeHealthClass(n) },
        h('td', { title: n.uuid, text: short(n.uuid) }),
        h('td', { text: n.underlay_ip ?? '—' }),
        h('td', { text: n.backend ?? '—' }),
        h('td', { class: `agent-${n.agent}`, text: n.agent === 'up' ? `reporting (${Math.round((n.report_age_ms ?? 0) / 1000)} s ago)` : n.agent }),
        h('td', { text: n.nics }),
        h('td', { text: n.vnets.join(', ') || '—' }),
        h(
          'td',
          { class: 'peers' },
          n.peers.length === 0
            ? '—'
            : n.peers.map((p) =>
                h(
                  'span',
                  { class: `peer peer-${p.state}`, 'data-peer': p.address },
                  `${p.node ? nodeLabel(snap, p.node) : p.address} ${p.state} ${fmtMs(p.last_rtt_ms)} ${fmtLoss(p.loss)}`,
                ),
              ),
        ),
      ),
    ),
  );
}

function networkNames(snap, uuids) {
  return uuids.map((u) => snap.networks.find((n) => n.uuid === u)?.name ?? short(u)).join(', ');
}

export function renderVnets(table, snap) {
  replaceBody(
    table,
    snap.vnets.map((v) =>
      h(
        'tr',
        { 'data-vnet': v.vnet_id },
        h('td', { text: v.vnet_id }),
        h('td', { title: v.owner_uuid ?? '', text: short(v.owner_uuid) || '—' }),
        h('td', { class: 'names', text: networkNames(snap, v.networks) || '—' }),
        h('td', { text: v.nodes.map((n) => `${nodeLabel(snap, n.uuid)} (${n.nics})`).join(', ') || 'no NICs' }),
      ),
    ),
  );
}

export function renderNetworks(container, snap) {
  const cards = snap.networks.map((n) => {
    const rows = n.instances.map((i) =>
      h(
        'tr',
        { 'data-mac': i.mac, 'data-instance': i.uuid },
        h('td', { title: i.uuid, text: short(i.uuid) }),
        h('td', { text: i.ip ?? '—' }),
        h('td', { text: i.mac }),
        h('td', { text: i.cn_uuid ? nodeLabel(snap, i.cn_uuid) : '—' }),
        h('td', { class: 'tags', text: fmtTags(i.tags) }),
        h('td', { text: i.firewall_enabled === undefined ? '—' : i.firewall_enabled ? 'on' : 'off' }),
      ),
    );
    const table = h(
      'table',
      { class: 'instances' },
      h('thead', {}, h('tr', {}, ['instance', 'ip', 'mac', 'node', 'tags', 'firewall'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows.length ? rows : h('tr', { class: 'empty' }, h('td', { colspan: 6, text: 'no instances' }))),
    );
    return h(
      'div',
      { class: 'network', 'data-network': n.uuid },
      h(
        'h3',
        {},
        h('span', { class: 'name', text: n.name }),
        h(
          'small',
          {},
          ` ${n.subnet} · vlan ${n.vlan_id}${n.vlan_name !== undefined ? ` (${n.vlan_name})` : ''} · vnet ${n.vnet_id ?? '—'} · owner ${short(n.owner_uuid) || '—'}`,
        ),
      ),
      table,
    );
  });
  container.replaceChildren(...(cards.length ? cards : [h('p', { class: 'empty', text: 'no fabric networks' })]));
}

export function renderShootdowns(table, snap) {
  replaceBody(
    table,
    snap.shootdowns.map((sd) =>
      h(
        'tr',
        { 'data-shootdown': sd.id },
        h('td', { text: new Date(sd.applied_at).toLocaleTimeString() }),
        h('td', { text: nodeLabel(snap, sd.node) }),
        h('td', { text: sd.type }),
        h('td', { text: sd.vnet }),
        h('td', { text: sd.target }),
        h('td', { class: 'latency', text: sd.latency_ms === undefined ? '—' : `${sd.latency_ms} ms` }),
      ),
    ),
  );
}

export function renderRules(table, snap) {
  replaceBody(
    table,
    snap.rules.map((r) =>
      h(
        'tr',
        { 'data-rule': r.uuid, class: r.enabled ? '' : 'disabled' },
        h('td', { title: r.owner_uuid ?? 'global', text: r.global ? 'global' : short(r.owner_uuid) }),
        h('td', { class: 'rule', text: r.rule }),
        h('td', { text: r.enabled ? 'yes' : 'no' }),
        h('td', { text: r.description ?? '' }),
      ),
    ),
  );
}

function instanceLabel(i) {
  const name = i.tags?.name ?? i.tags?.role;
  return `${name !== undefined ? `${name} ` : ''}${i.addresses[0] ?? ''} (${short(i.uuid)})`;
}

/** The explain form's choices; keeps what the user picked when it still exists. */
export function renderExplainChoices(select, datalist, snap) {
  const picked = select.value;
  select.replaceChildren(...snap.instances.map((i) => h('option', { value: i.uuid, text: instanceLabel(i) })));
  if (snap.instances.some((i) => i.uuid === picked)) select.value = picked;
  datalist.replaceChildren(
    ...snap.instances.flatMap((i) => [
      ...i.addresses.map((a) => h('option', { value: a, text: instanceLabel(i) })),
      h('option', { value: i.uuid, text: instanceLabel(i) }),
    ]),
  );
}

export function renderExplainResult(box, result) {
  if (result.error) {
    box.replaceChildren(h('p', { class: 'error', text: result.error }));
    box.dataset.allowed = '';
    return;
  }
  const e = result.explanation;
  const parts = [h('p', { class: e.allowed ? 'allowed' : 'blocked', text: e.summary })];
  for (const [label, v] of [
    ['outbound', e.outbound],
    ['inbound', e.inbound],
  ]) {
    if (!v) continue;
    parts.push(h('p', { class: 'verdict' }, h('b', { text: `${label} (${short(v.instance)}): ${v.action}` }), ` — ${v.reason}`));
  }
  box.dataset.allowed = e.allowed ? 'yes' : 'no';
  box.replaceChildren(...parts);
}

/** Nodes as boxes in a row; each vnet a coloured lane joining the nodes that have its NICs. */
export function renderPicture(container, snap) {
  const nodes = snap.nodes;
  const vnets = snap.vnets.filter((v) => v.nodes.length > 0);
  const colW = 170;
  const left = 150;
  const width = Math.max(640, left + nodes.length * colW + 20);
  const laneTop = 110;
  const height = laneTop + Math.max(1, vnets.length) * 28 + 20;
  const x = new Map(nodes.map((n, i) => [n.uuid, left + i * colW + colW / 2]));
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'nodes and the vnets that connect them' });
  // Underlay: one bar all nodes sit on.
  if (nodes.length > 0) {
    svg.append(s('line', { x1: left, y1: 20, x2: left + nodes.length * colW, y2: 20, class: 'underlay' }));
    svg.append(s('text', { x: 8, y: 24, class: 'lane-label', text: 'underlay' }));
  }
  nodes.forEach((n) => {
    const cx = x.get(n.uuid);
    svg.append(s('line', { x1: cx, y1: 20, x2: cx, y2: 36, class: 'underlay' }));
    svg.append(s('line', { x1: cx, y1: 80, x2: cx, y2: height - 10, class: 'drop' }));
    const g = s('g', { class: `node ${nodeHealthClass(n)}`, 'data-node': n.uuid });
    g.append(s('rect', { x: cx - 70, y: 36, width: 140, height: 44, rx: 6 }));
    g.append(s('text', { x: cx, y: 55, 'text-anchor': 'middle', class: 'node-label', text: n.underlay_ip ?? short(n.uuid) }));
    g.append(s('text', { x: cx, y: 72, 'text-anchor': 'middle', class: 'node-sub', text: `${n.backend ?? '?'} · ${n.nics} NIC${n.nics === 1 ? '' : 's'}` }));
    g.append(s('title', { text: n.uuid }));
    svg.append(g);
  });
  vnets.forEach((v, i) => {
    const y = laneTop + i * 28;
    const colour = PALETTE[i % PALETTE.length];
    const xs = v.nodes.map((n) => x.get(n.uuid)).filter((p) => p !== undefined);
    const g = s('g', { class: 'vnet', 'data-vnet': v.vnet_id });
    g.append(s('text', { x: 8, y: y + 4, class: 'lane-label', fill: colour, text: `vnet ${v.vnet_id}` }));
    if (xs.length > 0) {
      g.append(s('line', { x1: Math.min(...xs), y1: y, x2: Math.max(...xs), y2: y, stroke: colour, class: 'lane' }));
      v.nodes.forEach((n) => {
        const cx = x.get(n.uuid);
        if (cx === undefined) return;
        g.append(s('circle', { cx, cy: y, r: 8, fill: colour }));
        g.append(s('text', { x: cx, y: y + 4, 'text-anchor': 'middle', class: 'count', text: String(n.nics) }));
      });
    }
    g.append(s('title', { text: `vnet ${v.vnet_id}: ${networkNames(snap, v.networks)}` }));
    svg.append(g);
  });
  container.replaceChildren(svg);
}

export function renderAll(snap) {
  const $ = (id) => document.getElementById(id);
  renderPicture($('picture'), snap);
  renderNodes($('nodes'), snap);
  renderVnets($('vnets'), snap);
  renderNetworks($('networks'), snap);
  renderShootdowns($('shootdowns'), snap);
  renderRules($('rules'), snap);
  renderExplainChoices($('explain-to'), $('explain-sources'), snap);
  $('meta').textContent = `revision ${snap.revision} · updated ${new Date(snap.generated_at).toLocaleTimeString()}${snap.truncated ? ' · lists cut at their limit' : ''}`;
}
