// The dashboard page each node serves at /: one HTML document with its own style and script, no build step and no request to any other host; it polls GET /v1/dashboard every second.

/*
 * The script is plain ES5-style JavaScript inside this string (no template literals, so that it
 * needs no escaping here). Everything a node or peer sent is put on the page as text
 * (textContent, attribute values), never as HTML. Elements carry data- attributes naming what
 * they show (data-member, data-state, data-leader) for tests and for users' own scripts.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conclave</title>
<style>
  :root { color-scheme: light dark; --fg: #1d2433; --muted: #667085; --line: #d0d5dd; --bg: #fff;
    --card: #f8f9fb; --ok: #12805c; --warn: #b54708; --bad: #c01048; --w: #2e6fdb; --r: #12805c; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #98a2b3; --line: #344054;
    --bg: #0f1420; --card: #161c2b; --w: #6aa1ff; --r: #3ccb8f; } }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 14px 20px; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  h1 { font-size: 18px; margin: 0; }
  h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  section.wide { grid-column: 1 / -1; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; }
  td.why { white-space: normal; max-width: 360px; font-size: 12px; }
  tr.leader td:first-child { font-weight: 700; }
  .pill { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; border: 1px solid currentColor; }
  .leader-pill { color: var(--ok); } .down { color: var(--bad); } .lagging { color: var(--warn); }
  #banner { display: none; padding: 10px 20px; background: var(--bad); color: #fff; }
  #banner.shown { display: block; }
  #login { display: none; } #login.shown { display: block; }
  #login input { width: 420px; max-width: 100%; font: inherit; padding: 4px 6px; }
  .muted { color: var(--muted); }
  .stats { display: flex; gap: 28px; flex-wrap: wrap; }
  .stat b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
  svg { width: 100%; height: 150px; display: block; }
  svg text { fill: var(--muted); font-size: 11px; }
  .legend span { margin-right: 14px; }
  .sw { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin-right: 4px; }
</style>
</head>
<body>
<header>
  <h1>Conclave</h1>
  <span id="summary" class="muted">loading…</span>
  <span id="updated" class="muted"></span>
</header>
<div id="banner" role="alert"></div>
<main>
  <section id="login" class="wide">
    <h2>Token</h2>
    <p id="login-why">This node requires a token.</p>
    <form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="cnc_…" aria-label="token">
    <button type="submit">Use token</button></form>
    <p class="muted">Kept in this tab only (sessionStorage). Any user's token will do: the page only reads.</p>
  </section>
  <section class="wide">
    <h2>Members</h2>
    <table>
      <thead><tr><th>Node</th><th>Role</th><th>State</th><th class="num">Term</th><th class="num">Commit</th>
      <th class="num">Applied</th><th class="num">Lag (entries)</th><th class="num">Last contact</th><th>Replication</th></tr></thead>
      <tbody id="members"></tbody>
    </table>
  </section>
  <section><h2>Requests per second</h2><div id="chart-rate"></div></section>
  <section><h2>Latency p99 (ms)</h2><div id="chart-latency"></div></section>
  <section>
    <h2>Now</h2>
    <div class="stats">
      <div class="stat"><b id="stat-watches">–</b>watches</div>
      <div class="stat"><b id="stat-ws">–</b>WebSockets</div>
      <div class="stat"><b id="stat-http">–</b>HTTP in flight</div>
      <div class="stat"><b id="stat-sessions">–</b>sessions</div>
      <div class="stat"><b id="stat-errors">–</b>errors/s</div>
    </div>
  </section>
  <section><h2>Backups</h2><div id="backups" class="muted">–</div></section>
  <section class="wide"><h2>Leader changes</h2>
    <table><thead><tr><th>When</th><th>Leader</th><th class="num">Term</th><th>First seen by</th></tr></thead>
    <tbody id="leaders"></tbody></table>
  </section>
</main>
<script>
'use strict';
var TOKEN_KEY = 'conclave-token';
var WINDOW_MS = 5 * 60 * 1000;
var POLL_MS = 1000;
var st = { series: {}, since: -1, lastOk: 0, view: null, leaders: {}, lost: '', polls: 0 };

function $(id) { return document.getElementById(id); }
function el(tag, attrs, children) {
  var node = document.createElement(tag);
  if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, String(attrs[k]));
  (children || []).forEach(function (c) {
    node.appendChild(typeof c === 'object' && c !== null ? c : document.createTextNode(c === undefined || c === null ? '' : String(c)));
  });
  return node;
}
function svgEl(tag, attrs) {
  var node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (var k in attrs) node.setAttribute(k, String(attrs[k]));
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function time(ms) { return new Date(ms).toLocaleTimeString(); }
function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
function fmt(n) { return n === null || n === undefined ? '–' : (Math.round(n * 10) / 10).toLocaleString(); }

$('login-form').addEventListener('submit', function (event) {
  event.preventDefault();
  try { sessionStorage.setItem(TOKEN_KEY, $('token').value.trim()); } catch (e) { /* private mode */ }
  $('token').value = '';
  poll();
});

var timer = null;
function schedule() { if (timer) clearTimeout(timer); timer = setTimeout(poll, POLL_MS); }

function poll() {
  var headers = {};
  var t = token();
  if (t) headers.authorization = 'Bearer ' + t;
  var url = '/v1/dashboard' + (st.since < 0 ? '' : '?since=' + Math.max(0, st.since - 5000));
  fetch(url, { headers: headers, cache: 'no-store' }).then(function (res) {
    return res.json().then(function (body) {
      if (res.status === 401 || res.status === 403) { showLogin(body.message || body.code); return; }
      if (!res.ok) throw new Error((body.code ? body.code + ': ' : '') + (body.message || 'HTTP ' + res.status));
      $('login').className = 'wide';
      accept(body);
    });
  }).catch(function (error) {
    lost(error && error.message ? error.message : String(error));
  }).then(schedule);
}

function showLogin(why) {
  $('login').className = 'wide shown';
  $('login-why').textContent = token() ? 'The token was refused: ' + why : 'This node requires a token: ' + why;
}

function lost(why) {
  st.lost = why;
  var name = st.view ? st.view.servedBy : 'this node';
  var since = st.lastOk ? ' since ' + time(st.lastOk) : '';
  $('banner').textContent = 'No answer from ' + name + since + ' (' + why + '). Retrying every second; ' +
    'the dashboard of any other member shows the cluster too.';
  $('banner').className = 'shown';
  document.body.setAttribute('data-lost', 'true');
}

function accept(view) {
  st.view = view;
  st.lastOk = Date.now();
  st.lost = '';
  st.polls++;
  $('banner').className = '';
  document.body.removeAttribute('data-lost');
  var horizon = view.at - WINDOW_MS;
  view.nodes.forEach(function (node) {
    if (node.unreachable !== undefined) return;
    var series = st.series[node.name] || (st.series[node.name] = {});
    node.activity.forEach(function (s) { series[s.t] = s; if (s.t > st.since) st.since = s.t; });
    for (var t in series) if (Number(t) < horizon) delete series[t];
    node.leaderChanges.forEach(function (c) {
      var key = c.term + '/' + c.leader;
      var seen = st.leaders[key];
      if (!seen || c.at < seen.at) st.leaders[key] = { at: c.at, term: c.term, leader: c.leader, by: node.name };
    });
  });
  render(view);
}

function panels(view) { return view.nodes.filter(function (n) { return n.unreachable === undefined; }); }

function leaderOf(view) {
  var best = null;
  panels(view).forEach(function (n) {
    if (n.state === 'leader' && (!best || n.term > best.term)) best = { name: n.name, term: n.term, panel: n };
  });
  if (best) return best;
  panels(view).forEach(function (n) {
    if (n.leader && (!best || n.term > best.term)) best = { name: n.leader, term: n.term, panel: null };
  });
  return best;
}

function render(view) {
  var leader = leaderOf(view);
  var self = view.nodes[0];
  document.body.setAttribute('data-leader', leader ? leader.name : '');
  document.body.setAttribute('data-served-by', view.servedBy);
  document.body.setAttribute('data-polls', st.polls);
  $('summary').textContent = (leader ? 'leader ' + leader.name + ' · term ' + leader.term : 'no leader known') +
    ' · served by ' + view.servedBy + (self.role === 'proxy' ? ' (proxy)' : '');
  $('updated').textContent = 'updated ' + time(view.at);
  renderMembers(view, leader);
  renderCharts();
  renderStats(view, leader);
  renderBackups(leader && leader.panel ? leader.panel : self);
  renderLeaders();
}

function renderMembers(view, leader) {
  var byName = {};
  view.nodes.forEach(function (n) { byName[n.name] = n; });
  var leaderPanel = leader && leader.panel;
  var progress = {};
  if (leaderPanel) leaderPanel.members.forEach(function (m) { progress[m.name] = m; });
  var names = [];
  var self = view.nodes[0];
  if (self.role === 'proxy') names.push(self.name);
  (leaderPanel || self).members.forEach(function (m) { names.push(m.name); });
  view.nodes.forEach(function (n) { if (names.indexOf(n.name) < 0) names.push(n.name); });
  var roles = {};
  (leaderPanel || self).members.forEach(function (m) { roles[m.name] = m.role; });
  var body = $('members');
  clear(body);
  names.forEach(function (name) {
    var node = byName[name];
    var p = progress[name] || {};
    var down = !node || node.unreachable !== undefined;
    var why = down && node ? String(node.unreachable) : '';
    var stateText = !node ? 'not asked' : down ? 'unreachable: ' + (why.length > 80 ? why.slice(0, 80) + '…' : why) : node.state;
    var stateCell = el('td', { 'class': down ? 'down why' : '', title: why || null }, [
      leader && name === leader.name && !down ? el('span', { 'class': 'pill leader-pill' }, ['leader']) : stateText,
    ]);
    var lag = p.lagEntries;
    var row = el('tr', {
      'data-member': name,
      'data-state': down ? 'unreachable' : node.state,
      'class': leader && name === leader.name ? 'leader' : '',
    }, [
      el('td', null, [name]),
      el('td', null, [roles[name] || (node && !down ? node.role : '')]),
      stateCell,
      el('td', { 'class': 'num' }, [down ? '' : node.term]),
      el('td', { 'class': 'num' }, [down ? '' : node.commitIndex]),
      el('td', { 'class': 'num' }, [down ? '' : node.appliedIndex]),
      el('td', { 'class': 'num' + (lag > 100 ? ' lagging' : '') }, [lag === undefined ? '' : lag]),
      el('td', { 'class': 'num' }, [p.lastContactMs === undefined ? '' : p.lastContactMs === null ? 'never' : p.lastContactMs + ' ms']),
      el('td', null, [p.state || '']),
    ]);
    body.appendChild(row);
  });
}

/** Per second over the window: the sum (or max) of a field over every node that answered. */
function combined(field, how) {
  var byT = {};
  for (var name in st.series) {
    var series = st.series[name];
    for (var t in series) {
      var v = series[t][field];
      if (v === null || v === undefined) continue;
      byT[t] = byT[t] === undefined ? v : how === 'max' ? Math.max(byT[t], v) : byT[t] + v;
    }
  }
  return Object.keys(byT).map(Number).sort(function (a, b) { return a - b; }).map(function (t) { return [t, byT[t]]; });
}

function chart(container, lines) {
  clear(container);
  var now = st.view ? st.view.at : Date.now();
  var from = now - WINDOW_MS;
  var W = 600, H = 150, L = 44, B = 18;
  var max = 0;
  lines.forEach(function (line) { line.points.forEach(function (p) { if (p[1] > max) max = p[1]; }); });
  max = max <= 0 ? 1 : max * 1.1;
  var svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' });
  svg.appendChild(svgEl('line', { x1: L, y1: H - B, x2: W, y2: H - B, stroke: 'currentColor', 'stroke-opacity': 0.3 }));
  var top = svgEl('text', { x: 2, y: 12 }); top.textContent = fmt(max); svg.appendChild(top);
  var zero = svgEl('text', { x: 2, y: H - B }); zero.textContent = '0'; svg.appendChild(zero);
  var left = svgEl('text', { x: L, y: H - 3 }); left.textContent = '−5 min'; svg.appendChild(left);
  var right = svgEl('text', { x: W - 26, y: H - 3 }); right.textContent = 'now'; svg.appendChild(right);
  lines.forEach(function (line) {
    var pts = line.points.filter(function (p) { return p[0] >= from; }).map(function (p) {
      var x = L + (p[0] - from) / WINDOW_MS * (W - L);
      var y = (H - B) - p[1] / max * (H - B - 14);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    if (pts.length > 0) svg.appendChild(svgEl('polyline', { points: pts.join(' '), fill: 'none', style: 'stroke:' + line.color, 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke' }));
  });
  container.appendChild(svg);
  var legend = el('div', { 'class': 'legend' });
  lines.forEach(function (line) {
    var last = line.points.length ? line.points[line.points.length - 1][1] : null;
    var peak = line.points.reduce(function (m, p) { return p[1] > m ? p[1] : m; }, 0);
    legend.appendChild(el('span', { 'data-series': line.key, 'data-max': peak }, [el('i', { 'class': 'sw', style: 'background:' + line.color }), line.label + ': ' + fmt(last)]));
  });
  container.appendChild(legend);
}

function renderCharts() {
  chart($('chart-rate'), [
    { key: 'writes', label: 'writes/s', color: 'var(--w)', points: combined('writes', 'sum') },
    { key: 'reads', label: 'reads/s', color: 'var(--r)', points: combined('reads', 'sum') },
  ]);
  chart($('chart-latency'), [
    { key: 'write-p99', label: 'write p99', color: 'var(--w)', points: combined('writeP99Ms', 'max') },
    { key: 'read-p99', label: 'read p99', color: 'var(--r)', points: combined('readP99Ms', 'max') },
  ]);
}

function renderStats(view, leader) {
  var watches = 0, ws = 0, http = 0, anyWatch = false, anyWs = false, anyHttp = false;
  panels(view).forEach(function (n) {
    if (n.watches !== null) { watches += n.watches; anyWatch = true; }
    if (n.wsConnections !== null) { ws += n.wsConnections; anyWs = true; }
    if (n.httpInFlight !== null && n.httpInFlight !== undefined) { http += n.httpInFlight; anyHttp = true; }
  });
  $('stat-watches').textContent = anyWatch ? watches : '–';
  $('stat-ws').textContent = anyWs ? ws : '–';
  $('stat-http').textContent = anyHttp ? http : '–';
  var sessionsFrom = leader && leader.panel ? leader.panel : panels(view).filter(function (n) { return n.sessions !== null; })[0];
  $('stat-sessions').textContent = sessionsFrom && sessionsFrom.sessions !== null ? sessionsFrom.sessions : '–';
  var errors = combined('errors', 'sum');
  $('stat-errors').textContent = errors.length ? errors[errors.length - 1][1] : '0';
}

function renderBackups(panel) {
  var box = $('backups');
  clear(box);
  var b = panel && panel.backups;
  if (!b) { box.textContent = 'No scheduled backups (start nodes with --backup-dir and --backup-every).'; return; }
  if (b.lastSuccess) {
    box.appendChild(el('div', { 'data-backup': 'success' }, ['Last backup ' + time(b.lastSuccess.at) + ' by ' + b.lastSuccess.node +
      ': revision ' + b.lastSuccess.revision + ', ' + fmt(b.lastSuccess.bytes / 1024) + ' KiB, ' + b.lastSuccess.file]));
  } else {
    box.appendChild(el('div', null, ['No backup has succeeded yet.']));
  }
  if (b.lastFailure && (!b.lastSuccess || b.lastFailure.at > b.lastSuccess.at)) {
    box.appendChild(el('div', { 'class': 'down', 'data-backup': 'failure' }, ['Last failure ' + time(b.lastFailure.at) + ' on ' +
      b.lastFailure.node + ': ' + b.lastFailure.error]));
  }
}

function renderLeaders() {
  var body = $('leaders');
  clear(body);
  var changes = Object.keys(st.leaders).map(function (k) { return st.leaders[k]; });
  changes.sort(function (a, b) { return b.term - a.term || b.at - a.at; });
  changes.slice(0, 20).forEach(function (c) {
    body.appendChild(el('tr', { 'data-term': c.term, 'data-leader': c.leader }, [
      el('td', null, [new Date(c.at).toLocaleString()]), el('td', null, [c.leader]),
      el('td', { 'class': 'num' }, [c.term]), el('td', null, [c.by]),
    ]));
  });
  if (changes.length === 0) body.appendChild(el('tr', null, [el('td', { colspan: 4, 'class': 'muted' }, ['none seen since these nodes started'])]));
}

poll();
</script>
</body>
</html>
`;
