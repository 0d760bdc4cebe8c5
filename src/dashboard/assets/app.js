// shoal dashboard: renders /api/overview documents (the first one is inside the page)
// and follows /api/events for the next ones. No build step, no dependencies.
'use strict';

const esc = (v) => String(v === undefined || v === null ? '' : v).replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const attr = esc;
const fmtBytes = (n) => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
};
const ms = (v) => (v === null || v === undefined ? '–' : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + ' ms');
const table = (head, rows) => '<table><thead><tr>' + head.map((h) => '<th>' + esc(h) + '</th>').join('') +
  '</tr></thead><tbody>' + rows.join('') + '</tbody></table>';
const byName = (a, b) => String(a).localeCompare(String(b), undefined, { numeric: true });
const body = (id) => document.querySelector('#' + id + ' .body');
const statusClass = (s) => ({ ready: 'ok', down: 'bad', leaving: 'warn', running: 'ok', failed: 'bad',
  healthy: 'ok', ejected: 'warn', unhealthy: 'bad', starting: 'warn' }[s] || 'muted');

function renderSummary(o) {
  const c = o.cluster;
  const raft = c.raft ? ' · raft ' + esc(c.raft.state) + ', log ' + esc(c.raft.last_log_index) : '';
  document.getElementById('summary').innerHTML =
    '<span>cluster <b>' + esc(c.cluster_id.slice(0, 12)) + '</b></span>' +
    '<span>this node <b>' + esc(c.node) + '</b></span>' +
    '<span>leader <b id="leader">' + esc(c.leader || 'none') + '</b> (term ' + esc(c.leader_term) + ')</span>' +
    '<span>revision <b id="revision">' + esc(o.revision) + '</b>' + raft + '</span>';
}

function renderCluster(c) {
  const rows = c.nodes.slice().sort((a, b) => byName(a.name, b.name)).map((n) => '<tr data-node="' + attr(n.name) + '" data-status="' + attr(n.status) + '">' +
    '<td>' + esc(n.name) + (n.is_self ? ' <span class="muted">(this node)</span>' : '') + '</td>' +
    '<td>' + esc(n.role) + (n.manager_status ? ' <span class="muted">' + esc(n.manager_status) + '</span>' : '') + '</td>' +
    '<td class="' + statusClass(n.status) + '">' + esc(n.status) + '</td>' +
    '<td>' + esc(n.availability) + '</td><td><code>' + esc(n.addr) + '</code></td>' +
    '<td>' + esc(n.tasks) + '</td><td>' + esc(n.endpoints) + '</td>' +
    '<td>' + (n.raft_lag === null || n.raft_lag === undefined ? '<span class="muted">–</span>' : esc(n.raft_lag)) + '</td></tr>');
  const ready = c.nodes.filter((n) => n.status === 'ready').length;
  body('cluster').innerHTML = '<p>' + ready + ' of ' + c.nodes.length + ' nodes ready</p>' +
    table(['Node', 'Role', 'Status', 'Availability', 'Address', 'Tasks', 'Endpoints', 'Raft lag'], rows);
}

function renderMesh(m) {
  if (m.error) {
    body('mesh').innerHTML = '<p class="bad">No mesh view: ' + esc(m.error) + '</p>';
    return;
  }
  if (!m.reported.some((r) => r)) {
    body('mesh').innerHTML = '<p class="muted">Measuring: nodes report their peers within a few seconds of a dashboard opening.</p>';
    return;
  }
  const head = '<tr><th>from \\ to</th>' + m.nodes.map((n) => '<th>' + esc(n) + '</th>').join('') + '</tr>';
  const rows = m.nodes.map((from, i) => '<tr><th>' + esc(from) + '</th>' + m.nodes.map((to, j) => {
    if (i === j) return '<td class="self">·</td>';
    if (!m.reported[i]) return '<td class="muted" title="no report from ' + attr(from) + '">?</td>';
    const rtt = m.rtt_us[i][j];
    const w = m.wireguard && m.wireguard[i][j];
    const wg = w ? '\nWireGuard handshake ' + w[0] + ' s ago, ' + fmtBytes(w[1]) + ' in, ' + fmtBytes(w[2]) + ' out' : '';
    const title = from + ' → ' + to + ': ' + (rtt !== null ? 'underlay round trip ' + (rtt / 1000).toFixed(2) + ' ms' : 'unreachable') + wg;
    return '<td class="' + (rtt !== null ? 'ok' : 'bad') + '" data-from="' + attr(from) + '" data-to="' + attr(to) + '" title="' + attr(title) + '">' +
      (rtt !== null ? (rtt / 1000).toFixed(1) : '✗') + '</td>';
  }).join('') + '</tr>');
  const drops = Object.keys(m.drops).map((n) =>
    '<li>' + esc(n) + ': ' + Object.entries(m.drops[n]).map(([k, v]) => esc(k) + ' ' + esc(v)).join(', ') + '</li>');
  body('mesh').innerHTML = '<p class="muted">Underlay round trip (ms) of a TCP handshake from each row\'s node to each column\'s; hover for WireGuard handshake age and bytes.</p>' +
    '<table class="matrix"><thead>' + head + '</thead><tbody>' + rows.join('') + '</tbody></table>' +
    '<p>Drops: ' + (drops.length ? '</p><ul>' + drops.join('') + '</ul>' : 'none</p>');
}

function renderNetworks(nets) {
  const rows = nets.map((n) => {
    const pct = n.capacity ? Math.min(100, 100 * n.in_use / n.capacity) : 0;
    const per = Object.entries(n.endpoints_per_node).map(([node, k]) => esc(node) + ' ' + esc(k)).join(', ');
    return '<tr data-network="' + attr(n.name) + '"><td>' + esc(n.name) + '</td><td><code>' + esc(n.subnet) + '</code></td>' +
      '<td><code>' + esc(n.gateway) + '</code></td><td>' + esc(n.vni) + '</td>' +
      '<td>' + (n.encrypted ? '<span class="badge ok">encrypted</span>' : '<span class="muted">plain</span>') +
      (n.attachable ? ' <span class="badge">attachable</span>' : '') + (n.internal ? ' <span class="badge">internal</span>' : '') + '</td>' +
      '<td><span class="bar"><i style="width:' + pct.toFixed(1) + '%"></i></span>' + esc(n.in_use) + ' / ' + esc(n.capacity) + '</td>' +
      '<td>' + (per || '<span class="muted">none</span>') + '</td></tr>';
  });
  body('networks').innerHTML = nets.length ? table(['Network', 'Subnet', 'Gateway', 'VNI', 'Kind', 'Addresses used', 'Endpoints per node'], rows) :
    '<p class="muted">No networks.</p>';
}

function renderServices(svcs) {
  const rows = svcs.map((s) => {
    const mode = s.spec.mode.mode === 'global' ? 'global' : 'replicated';
    const vips = Object.entries(s.vips).map(([net, ip]) => esc(net) + ' <code>' + esc(ip) + '</code>').join('<br>');
    const ports = (s.spec.publish || []).map((p) => esc(p.published) + '→' + esc(p.target) + '/' + esc(p.protocol) + (p.mode === 'host' ? ' (host)' : '')).join(', ');
    const tasks = s.tasks.filter((t) => t.desired !== 'shutdown' || t.state === 'running').map((t) => {
      const stopping = t.desired === 'shutdown';
      return '<span class="badge ' + (stopping ? 'muted' : statusClass(t.state)) + '" title="' + attr(t.message) + '">' + esc(t.name) + ' @ ' + esc(t.node) + ' ' +
        (stopping ? 'stopping' : esc(t.state)) + '</span>';
    }).join('');
    return '<tr data-service="' + attr(s.spec.name) + '" data-running="' + attr(s.running) + '" data-desired="' + attr(s.desired) + '">' +
      '<td>' + esc(s.spec.name) + '</td><td>' + mode + '</td>' +
      '<td class="' + (s.running === s.desired ? 'ok' : 'warn') + '"><span class="running">' + esc(s.running) + '</span> / ' + esc(s.desired) + '</td>' +
      '<td>' + (vips || '<span class="muted">–</span>') + '</td><td>' + (ports || '<span class="muted">–</span>') + '</td><td>' + tasks + '</td></tr>';
  });
  body('services').innerHTML = svcs.length ? table(['Service', 'Mode', 'Running', 'VIPs', 'Published', 'Tasks'], rows) :
    '<p class="muted">No services.</p>';
}

function renderIngress(ing) {
  const eps = Object.entries(ing.entrypoints).map(([n, a]) => '<span class="badge">' + esc(n) + ' ' + esc(a) + '</span>').join('') ||
    '<span class="muted">none</span>';
  const rows = ing.routers.map((r) => {
    const t = r.traffic;
    const backends = r.backends.map((b) => '<span class="badge ' + statusClass(b.health) + '" title="' +
      attr(b.requests + ' requests, ' + b.failures + ' failed, ' + b.outstanding + ' in flight' + (b.ejected_for_ms ? ', ejected for ' + b.ejected_for_ms + ' ms more' : '')) + '">' +
      esc(b.address) + ' ' + esc(b.health) + '</span>').join('') || '<span class="bad">no backend</span>';
    const svc = ing.services[r.service] || { retries: 0, breaker_refusals: 0, ejections: 0 };
    return '<tr data-router="' + attr(r.router) + '"><td>' + esc(r.router) + '</td><td><code>' + esc(r.rule) + '</code></td>' +
      '<td>' + esc(r.service) + '</td><td>' + backends + '</td>' +
      '<td>' + t.requests_per_s.toFixed(1) + '</td><td>' + ms(t.p50_ms) + ' / ' + ms(t.p90_ms) + ' / ' + ms(t.p99_ms) + '</td>' +
      '<td>' + esc(t.requests) + ' <span class="' + (t.errors_5xx ? 'bad' : 'muted') + '">(' + esc(t.errors_5xx) + ' 5xx)</span></td>' +
      '<td>' + esc(svc.retries) + ' / ' + esc(svc.breaker_refusals) + ' / ' + esc(svc.ejections) + '</td></tr>';
  });
  body('ingress').innerHTML = '<p>Entrypoints: ' + eps + '</p>' + (rows.length ?
    table(['Router', 'Rule', 'Service', 'Backends', 'req/s', 'p50 / p90 / p99', 'Requests', 'Retries / breaker / ejections'], rows) :
    '<p class="muted">No routers.</p>');
}

function render(o) {
  const problem = document.getElementById('problem');
  if (o.error) {
    problem.textContent = o.error;
    problem.hidden = false;
    return;
  }
  problem.hidden = true;
  renderSummary(o);
  // A panel is drawn again only when its data changed (most updates touch one or two).
  const panels = [['cluster', renderCluster], ['mesh', renderMesh], ['networks', renderNetworks],
    ['services', renderServices], ['ingress', renderIngress]];
  for (const [name, draw] of panels) {
    const text = JSON.stringify(name === 'mesh' ? meshShape(o.mesh) : o[name]);
    const stale = name === 'mesh' && Date.now() - meshDrawnAt > MESH_REDRAW_MS;
    if (drawn[name] !== text || stale) {
      draw(o[name]);
      drawn[name] = text;
      if (name === 'mesh') meshDrawnAt = Date.now();
    }
  }
  document.body.dataset.revision = o.revision;
}

// The JSON each panel was last drawn from.
const drawn = {};
// Round trips change with every probe: the matrix is drawn again at once when who
// reaches whom changes, and otherwise every few seconds (it has up to n² cells).
const MESH_REDRAW_MS = 5000;
let meshDrawnAt = 0;
const meshShape = (m) => ({ nodes: m.nodes, reported: m.reported, error: m.error, drops: m.drops,
  reach: m.rtt_us.map((row) => row.map((v) => v !== null)), wg: m.wireguard ? m.wireguard.map((row) => row.map((v) => v !== null)) : null });

function follow() {
  const live = document.getElementById('live');
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  events.addEventListener('error', () => { live.textContent = 'reconnecting'; live.className = 'live off'; });
  events.addEventListener('overview', (e) => render(JSON.parse(e.data)));
  events.addEventListener('problem', (e) => render({ error: e.data }));
}

try {
  render(JSON.parse(document.getElementById('initial').textContent));
} catch (e) {
  render({ error: 'cannot read the first overview: ' + e });
}
performance.mark('shoal-first-render');
follow();
