/* tcptrace-py HTML report. Hand-written on purpose (docs/report.md): no library, no network,
   and every text from the capture goes into the page through textContent only. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var app = document.getElementById('app');
  var C = D.connections;
  var NCONN = C.flow_id.length;
  var rowOf = new Map();
  for (var i = 0; i < NCONN; i++) rowOf.set(C.flow_id[i], i);

  /* ---------------------------------------------------------------- helpers */
  function el(tag, props) {
    var e = document.createElement(tag);
    if (props) {
      for (var k in props) {
        var v = props[k];
        if (v === undefined || v === null) continue;
        if (k === 'cls') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
      }
    }
    for (var j = 2; j < arguments.length; j++) {
      var c = arguments[j];
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function fmtInt(n) { return n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'); }
  function fmtS(s) {
    if (s === null || s === undefined) return '-';
    var a = Math.abs(s);
    if (a === 0) return '0 s';
    if (a < 1e-3) return (s * 1e6).toPrecision(3) + ' µs';
    if (a < 1) return (s * 1e3).toPrecision(3) + ' ms';
    if (a < 120) return s.toPrecision(4) + ' s';
    if (a < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  var BYTE_UNITS = [[1e9, 'GB'], [1e6, 'MB'], [1e3, 'kB'], [1, 'B']];
  function fmtBytes(b, perS) {
    if (b === null || b === undefined) return '-';
    for (var i = 0; i < BYTE_UNITS.length; i++) {
      if (Math.abs(b) >= BYTE_UNITS[i][0] || i === BYTE_UNITS.length - 1) {
        var v = b / BYTE_UNITS[i][0];
        return (i === BYTE_UNITS.length - 1 ? String(Math.round(v)) : v.toPrecision(3)) + ' ' +
          BYTE_UNITS[i][1] + (perS ? '/s' : '');
      }
    }
    return String(b);
  }
  function isoTime(epochS) {
    if (epochS === null || epochS === undefined) return '-';
    var d = new Date(epochS * 1000);
    return isNaN(d.getTime()) ? '-' : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }
  function endpoint(ip, port) { return ip.indexOf(':') >= 0 ? '[' + ip + ']:' + port : ip + ':' + port; }
  function kvText(obj) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return 'none';
    return keys.map(function (k) { return k + ' ' + fmtInt(obj[k]); }).join(', ');
  }
  function evidenceText(details) {
    var parts = [];
    Object.keys(details || {}).forEach(function (k) {
      var v = details[k];
      var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
      if (s.length > 300) s = s.slice(0, 300) + '…';
      parts.push([k, s]);
    });
    return parts;
  }

  /* ---------------------------------------------------------------- header, summary */
  var S = D.summary;
  app.append(el('header', { cls: 'top' },
    el('h1', { id: 'title', text: D.title }),
    el('div', { cls: 'sub' }, D.generator + ' · ' + fmtInt(S.connections) + ' connections · ' +
      fmtInt(S.frames) + ' frames · generated from the capture only; opens offline')));
  var main = el('main');
  app.append(main);

  var sumT = el('table', { cls: 'kv', id: 'summary' });
  function kvRow(k, v) { sumT.append(el('tr', null, el('th', { text: k }), el('td', null, v))); }
  var span = S.span_s === null ? 'n/a' : fmtS(S.span_s) + ', ' + isoTime(S.first_ts) + ' to ' + isoTime(S.last_ts);
  kvRow('frames', fmtInt(S.frames) + ' (' + fmtInt(S.tcp_segments) + ' TCP segments)');
  kvRow('link types', kvText(S.link_types));
  kvRow('time span', span);
  kvRow('skipped frames', kvText(S.skipped));
  kvRow('connections', fmtInt(S.connections));
  kvRow('opened by', kvText(S.by_open));
  kvRow('closed by', kvText(S.by_close));
  var sevCell = el('span');
  ['error', 'warning', 'info'].forEach(function (s) {
    var n = (S.anomalies_by_severity || {})[s];
    if (n) sevCell.append(el('span', { cls: 'sev-' + s, text: s + ' ' + fmtInt(n) }), ' ');
  });
  if (!sevCell.childNodes.length) sevCell.textContent = 'none';
  kvRow('findings', sevCell);
  kvRow('findings by code', kvText(S.anomalies_by_code));
  if (S.warnings) kvRow('warnings', fmtInt(S.warnings) + ' (' + D.warnings.slice(0, 3).join('; ') + ')');
  main.append(el('section', null, el('h2', { text: 'Capture summary' }), sumT));

  var det = D.detail;
  var leftOut = det.over_budget.length + det.too_many_packets.length + det.unreadable.length;
  var noteBox = el('div', { cls: 'warnbox', id: 'left-out' });
  noteBox.append('Packet detail (lifecycle graph, ladder, time-sequence, RTT, throughput and ' +
    'window graphs) is embedded for ' + fmtInt(det.embedded) + ' of ' + fmtInt(NCONN) +
    ' connections (' + fmtBytes(det.bytes) + '): those with findings and the ' +
    det.limits.largest + ' largest.');
  function listOut(ids, why) {
    if (!ids.length) return;
    var shown = ids.slice(0, 30).join(', ') + (ids.length > 30 ? ', … (' + (ids.length - 30) + ' more)' : '');
    noteBox.append(el('br'), 'Left out ' + why + ': flows ' + shown + '.');
  }
  listOut(det.too_many_packets, 'because they have more than ' + fmtInt(det.limits.max_flow_packets) + ' packets');
  listOut(det.over_budget, 'by the size limit of ' + fmtBytes(det.limits.budget_bytes) + ' or of ' + fmtInt(det.limits.max_connections) + ' connections');
  listOut(det.unreadable, 'because the capture could not be read a second time');
  noteBox.append(el('br'), 'Other connections show their record only; `tcptrace-py flow CAPTURE ID` ' +
    'and `tcptrace-py plot` show any of them.');
  if (leftOut || det.embedded < NCONN) main.append(noteBox);

  /* ---------------------------------------------------------------- findings */
  var findSec = el('section', { id: 'findings' }, el('h2', { text: 'Findings' }));
  main.append(findSec);
  var bySev = { error: [], warning: [], info: [] };
  D.findings.forEach(function (f) { (bySev[f.severity] || bySev.info).push(f); });
  if (!D.findings.length) findSec.append(el('p', { cls: 'note', text: 'No findings.' }));
  var codesOut = Object.keys(D.findings_left_out || {});
  if (codesOut.length) {
    findSec.append(el('p', { cls: 'warnbox', id: 'findings-left-out', text: 'Listed: the first ' + fmtInt(det.limits.max_findings_per_code) +
      ' findings of each code. Left out: ' + codesOut.map(function (c) { return fmtInt(D.findings_left_out[c]) + ' more ' + c; }).join(', ') +
      ' (the connection table\'s finding filter shows every connection with a code).' }));
  }
  var FIND_PAGE = 200;
  ['error', 'warning', 'info'].forEach(function (sev) {
    var list = bySev[sev];
    if (!list.length) return;
    var d = el('details', { cls: 'sev', 'data-severity': sev });
    if (sev !== 'info') d.open = true;
    var total = (S.anomalies_by_severity || {})[sev] || list.length;
    d.append(el('summary', null, el('span', { cls: 'sev-' + sev, text: sev }), ' · ' + fmtInt(total) + ' finding' + (total === 1 ? '' : 's') +
      (total > list.length ? ' (' + fmtInt(list.length) + ' listed)' : '')));
    var body = el('div');
    var t = el('table', { cls: 'findings' });
    t.append(el('tr', null, el('th', { text: 'code' }), el('th', { text: 'flow' }),
      el('th', { text: 'frames' }), el('th', { text: 'time (s)', cls: 'num' }),
      el('th', { text: 'summary and evidence' })));
    var shown = 0;
    function more() {
      var end = Math.min(list.length, shown + FIND_PAGE);
      for (; shown < end; shown++) {
        var f = list[shown];
        var flowCell = el('td');
        if (f.flow_id !== null && rowOf.has(f.flow_id)) {
          flowCell.append(el('button', { cls: 'link flowlink', 'data-flow': String(f.flow_id), text: String(f.flow_id),
            onclick: (function (id) { return function () { openFlow(id); }; })(f.flow_id) }));
        } else flowCell.textContent = 'capture-wide';
        var ev = el('div', { cls: 'evidence' });
        evidenceText(f.details).forEach(function (kv) { ev.append(el('b', { text: kv[0] }), ' ' + kv[1] + '  '); });
        t.append(el('tr', { 'data-code': f.code }, el('td', { cls: 'mono', text: f.code }), flowCell,
          el('td', { cls: 'mono', text: f.first_frame === f.last_frame ? String(f.first_frame) : f.first_frame + '–' + f.last_frame }),
          el('td', { cls: 'num', text: (f.ts - D.t0).toFixed(6) }),
          el('td', null, el('div', { text: f.summary }), ev)));
      }
      moreBtn.style.display = shown < list.length ? '' : 'none';
      moreBtn.textContent = 'show more (' + fmtInt(list.length - shown) + ' left)';
    }
    var moreBtn = el('button', { onclick: more });
    body.append(el('div', { cls: 'tablewrap' }, t), moreBtn);
    d.append(body);
    findSec.append(d);
    more();
  });

  /* ---------------------------------------------------------------- connection table */
  var PAGE = 100;
  var connSec = el('section', { id: 'connections' }, el('h2', { text: 'Connections' }));
  main.append(connSec);
  function distinct(col) {
    var s = new Set();
    for (var i = 0; i < NCONN; i++) s.add(col[i]);
    return Array.from(s).sort();
  }
  function select(id, label, values) {
    var s = el('select', { id: id });
    s.append(el('option', { value: '', text: 'any' }));
    values.forEach(function (v) { s.append(el('option', { value: v, text: v })); });
    return el('label', null, label, s);
  }
  var codes = new Set();
  for (i = 0; i < NCONN; i++) C.anomalies[i].forEach(function (c) { codes.add(c); });
  var states = new Set(distinct(C.client_state).concat(distinct(C.server_state)));
  var fHost = el('input', { id: 'f-host', type: 'search', placeholder: 'address contains' });
  var fPort = el('input', { id: 'f-port', type: 'search', placeholder: 'port', size: '6' });
  var filters = el('div', { cls: 'filters' },
    el('label', null, 'host', fHost), el('label', null, 'port', fPort),
    select('f-close', 'close', distinct(C.close)),
    select('f-state', 'final state (either side)', Array.from(states).sort()),
    select('f-anomaly', 'finding', ['(any finding)', '(none)'].concat(Array.from(codes).sort())),
    select('f-detail', 'packet detail', ['embedded']));
  var countLbl = el('span', { id: 'conn-count' });
  var prevB = el('button', { id: 'page-prev', text: '◀ previous' });
  var nextB = el('button', { id: 'page-next', text: 'next ▶' });
  var pageLbl = el('span', { id: 'page-label' });
  var connTable = el('table', { id: 'conn-table' });
  connSec.append(filters, el('div', { cls: 'pager' }, countLbl, prevB, pageLbl, nextB),
    el('div', { cls: 'tablewrap' }, connTable),
    el('p', { cls: 'note', text: 'Click a column heading to sort, a row to open the connection. ' +
      'Flow ids are Wireshark\'s tcp.stream numbers (filter: tcp.stream eq ID).' }));
  var NUMERIC = { flow_id: 1, start_s: 1, duration_s: 1, packets: 1, bytes: 1, retransmissions: 1 };
  /* Sizes sort largest first on the first click; ids, times and text ascending. */
  var DESC_FIRST = { duration_s: 1, packets: 1, bytes: 1, retransmissions: 1 };
  var sortKey = 'flow_id', sortDir = 1, page = 0, view = [];
  var head = el('tr');
  D.columns.forEach(function (c) {
    head.append(el('th', { cls: 'sortable' + (NUMERIC[c[0]] ? ' num' : ''), 'data-key': c[0], text: c[1],
      onclick: function () { if (sortKey === c[0]) sortDir = -sortDir; else { sortKey = c[0]; sortDir = DESC_FIRST[c[0]] ? -1 : 1; } page = 0; applySort(); render(); } }));
  });
  var thead = el('thead', null, head), tbody = el('tbody');
  connTable.append(thead, tbody);
  function sortValue(k, i) {
    if (k === 'client') return C.client_ip[i] + ' ' + (100000 + C.client_port[i]);
    if (k === 'server') return C.server_ip[i] + ' ' + (100000 + C.server_port[i]);
    if (k === 'anomalies') return C.anomalies[i].join(' ');
    return C[k][i];
  }
  function applyFilter() {
    var host = fHost.value.trim().toLowerCase();
    var port = fPort.value.trim();
    var close = document.getElementById('f-close').value;
    var state = document.getElementById('f-state').value;
    var code = document.getElementById('f-anomaly').value;
    var detailOnly = document.getElementById('f-detail').value;
    var portN = port === '' ? null : Number(port);
    view = [];
    for (var i = 0; i < NCONN; i++) {
      if (host && C.client_ip[i].toLowerCase().indexOf(host) < 0 && C.server_ip[i].toLowerCase().indexOf(host) < 0) continue;
      if (portN !== null && C.client_port[i] !== portN && C.server_port[i] !== portN) continue;
      if (close && C.close[i] !== close) continue;
      if (state && C.client_state[i] !== state && C.server_state[i] !== state) continue;
      if (code === '(any finding)' && !C.anomalies[i].length) continue;
      if (code === '(none)' && C.anomalies[i].length) continue;
      if (code && code[0] !== '(' && C.anomalies[i].indexOf(code) < 0) continue;
      if (detailOnly && !C.detail[i]) continue;
      view.push(i);
    }
    page = 0;
    applySort();
  }
  function applySort() {
    var k = sortKey, dir = sortDir;
    var keys = new Array(NCONN);
    view.forEach(function (i) { keys[i] = sortValue(k, i); });
    view.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x < y) return -dir;
      if (x > y) return dir;
      return C.flow_id[a] - C.flow_id[b];
    });
    Array.prototype.forEach.call(head.children, function (th) {
      var key = th.getAttribute('data-key');
      th.setAttribute('aria-sort', key === k ? (dir > 0 ? 'ascending' : 'descending') : 'none');
      th.textContent = D.columns.filter(function (c) { return c[0] === key; })[0][1] + (key === k ? (dir > 0 ? ' ▲' : ' ▼') : '');
    });
  }
  var selectedFlow = null;
  function render() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    if (page >= pages) page = pages - 1;
    countLbl.textContent = fmtInt(view.length) + ' of ' + fmtInt(NCONN) + ' connections';
    pageLbl.textContent = 'page ' + (page + 1) + ' of ' + pages;
    prevB.disabled = page === 0;
    nextB.disabled = page >= pages - 1;
    var frag = document.createDocumentFragment();
    var end = Math.min(view.length, (page + 1) * PAGE);
    for (var n = page * PAGE; n < end; n++) {
      var i = view[n];
      var chips = el('td', { cls: 'chips' });
      C.anomalies[i].forEach(function (c) { chips.append(el('span', { text: c })); });
      var tr = el('tr', { cls: 'conn' + (C.flow_id[i] === selectedFlow ? ' selected' : ''), 'data-flow': String(C.flow_id[i]) },
        el('td', { cls: 'num', text: String(C.flow_id[i]), title: C.detail[i] ? 'packet detail embedded' : 'record only (detail not embedded)' }),
        el('td', { cls: 'mono', text: endpoint(C.client_ip[i], C.client_port[i]) }),
        el('td', { cls: 'mono', text: endpoint(C.server_ip[i], C.server_port[i]) }),
        el('td', { cls: 'num', text: C.start_s[i] === null ? '-' : C.start_s[i].toFixed(6) }),
        el('td', { cls: 'num', text: C.duration_s[i] === null ? '-' : C.duration_s[i].toFixed(6) }),
        el('td', { cls: 'num', text: fmtInt(C.packets[i]) }),
        el('td', { cls: 'num', text: fmtInt(C.bytes[i]) }),
        el('td', { cls: 'num', text: fmtInt(C.retransmissions[i]) }),
        el('td', { text: C.open[i] }), el('td', { text: C.close[i] }),
        el('td', { text: C.client_state[i] }), el('td', { text: C.server_state[i] }), chips);
      tr.addEventListener('click', (function (id) { return function () { openFlow(id); }; })(C.flow_id[i]));
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
  }
  prevB.addEventListener('click', function () { page--; render(); });
  nextB.addEventListener('click', function () { page++; render(); });
  [fHost, fPort].forEach(function (inp) { inp.addEventListener('input', function () { applyFilter(); render(); }); });
  ['f-close', 'f-state', 'f-anomaly', 'f-detail'].forEach(function (id) {
    document.getElementById(id).addEventListener('change', function () { applyFilter(); render(); });
  });
  applyFilter();
  render();

  /* ---------------------------------------------------------------- plots */
  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  function niceStep(range, n) {
    var raw = range / Math.max(n, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  }
  function ticks(a, b, n) {
    if (!(b > a)) return [a];
    var st = niceStep(b - a, n), out = [];
    for (var v = Math.ceil(a / st) * st; v <= b + st * 1e-9; v += st) out.push(Math.abs(v) < st * 1e-9 ? 0 : v);
    return out;
  }
  function tickLabel(v, step, kind) {
    if (kind === 'bytes' || kind === 'rate') {
      var top = Math.abs(step) * 10;
      for (var i = 0; i < BYTE_UNITS.length; i++) {
        if (top >= BYTE_UNITS[i][0] || i === BYTE_UNITS.length - 1) {
          var d = Math.max(0, -Math.floor(Math.log10(step / BYTE_UNITS[i][0]) + 1e-9));
          return (v / BYTE_UNITS[i][0]).toFixed(Math.min(d, 6)) + (v === 0 ? '' : BYTE_UNITS[i][1]);
        }
      }
    }
    var dg = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return v.toFixed(Math.min(dg, 9));
  }

  /* A zoomable canvas plot. series: {type: seg|step|pts|hline, x, y | y0,y1, color, width,
     marker, frames, label, info(i) -> tooltip text}. Drag a box to zoom, wheel zooms time
     around the pointer (shift: the y axis), double-click or "reset" shows everything. */
  function Plot(parent, o) {
    var self = this;
    this.o = o;
    var box = el('div', { cls: 'plot', 'data-plot': o.id });
    var tools = el('div', { cls: 'tools' }, el('span', { cls: 'ptitle', text: o.title }));
    var reset = el('button', { text: 'reset zoom', 'data-role': 'reset', onclick: function () { self.reset(); } });
    var out = el('button', { text: 'zoom out', onclick: function () { self.zoomBy(2, null); } });
    tools.append(reset, out);
    if (o.tools) o.tools.forEach(function (t) { tools.append(t); });
    tools.append(el('span', { text: 'drag: zoom box · wheel: zoom time (shift: y) · double-click: reset' }));
    var canvas = el('canvas', { height: String(o.height || 360) });
    var tip = el('div', { cls: 'tip' });
    var legend = el('div', { cls: 'legend' });
    (o.legend || []).forEach(function (l) {
      legend.append(el('span', null, el('i', { style: 'background:' + l[1] }), l[0]));
    });
    box.append(tools, canvas, tip, legend);
    parent.append(box);
    this.box = box; this.canvas = canvas; this.tip = tip;
    this.M = { l: 78, r: 14, t: 10, b: 36 };
    this.home = this.bounds();
    this.view = Object.assign({}, this.home);
    var drag = null;
    function pos(ev) { var r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; }
    canvas.addEventListener('mousedown', function (ev) { if (ev.button === 0) { drag = { a: pos(ev), b: pos(ev) }; ev.preventDefault(); } });
    canvas.addEventListener('mousemove', function (ev) {
      var p = pos(ev);
      if (drag) { drag.b = p; self.draw(drag); return; }
      self.hover(p);
    });
    canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    window.addEventListener('mouseup', function (ev) {
      if (!drag) return;
      var a = drag.a, b = pos(ev);
      drag = null;
      var dx = Math.abs(a[0] - b[0]), dy = Math.abs(a[1] - b[1]);
      if (dx < 5 && dy < 5) { self.draw(); return; }
      var x0 = self.xv(Math.min(a[0], b[0])), x1 = self.xv(Math.max(a[0], b[0]));
      var y0 = self.yv(Math.max(a[1], b[1])), y1 = self.yv(Math.min(a[1], b[1]));
      if (dx < 5) { x0 = self.view.x0; x1 = self.view.x1; }
      if (dy < 5) { y0 = self.view.y0; y1 = self.view.y1; }
      self.setView(x0, x1, y0, y1);
    });
    canvas.addEventListener('dblclick', function () { self.reset(); });
    canvas.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var f = ev.deltaY > 0 ? 1.25 : 0.8;
      self.zoomBy(f, pos(ev), ev.shiftKey);
    }, { passive: false });
    if (window.ResizeObserver) new ResizeObserver(function () { self.draw(); }).observe(box);
    this.draw();
  }
  Plot.prototype.bounds = function () {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    this.o.series.forEach(function (s) {
      if (s.type === 'hline') { y0 = Math.min(y0, s.y); y1 = Math.max(y1, s.y); return; }
      if (s.noBounds) return;
      var ys = s.type === 'seg' ? [s.y0, s.y1] : [s.y];
      for (var i = 0; i < s.x.length; i++) {
        if (s.x[i] < x0) x0 = s.x[i];
        if (s.x[i] > x1) x1 = s.x[i];
        ys.forEach(function (y) { if (y[i] < y0) y0 = y[i]; if (y[i] > y1) y1 = y[i]; });
      }
    });
    if (!isFinite(x0)) { x0 = 0; x1 = 1; }
    if (!isFinite(y0)) { y0 = 0; y1 = 1; }
    if (this.o.ymin !== undefined) y0 = Math.min(y0, this.o.ymin);
    if (this.o.ymax !== undefined) y1 = Math.min(y1, this.o.ymax);
    if (this.o.xmax !== undefined) x1 = Math.max(x1, this.o.xmax);
    if (x1 <= x0) { x1 = x0 + 1e-3; }
    if (y1 <= y0) { y1 = y0 + 1; }
    var px = (x1 - x0) * 0.02, py = (y1 - y0) * 0.04;
    return { x0: x0 - px, x1: x1 + px, y0: y0 - (y0 === 0 ? 0 : py), y1: y1 + py };
  };
  Plot.prototype.size = function () {
    var w = Math.max(300, this.canvas.clientWidth || this.box.clientWidth - 14);
    var h = this.o.height || 360;
    return [w, h];
  };
  Plot.prototype.xp = function (x) { var v = this.view, w = this.size()[0] - this.M.l - this.M.r; return this.M.l + (x - v.x0) / (v.x1 - v.x0) * w; };
  Plot.prototype.yp = function (y) { var v = this.view, h = this.size()[1] - this.M.t - this.M.b; return this.M.t + h - (y - v.y0) / (v.y1 - v.y0) * h; };
  Plot.prototype.xv = function (px) { var v = this.view, w = this.size()[0] - this.M.l - this.M.r; return v.x0 + (px - this.M.l) / w * (v.x1 - v.x0); };
  Plot.prototype.yv = function (py) { var v = this.view, h = this.size()[1] - this.M.t - this.M.b; return v.y0 + (this.M.t + h - py) / h * (v.y1 - v.y0); };
  Plot.prototype.setView = function (x0, x1, y0, y1) {
    if (!(x1 > x0) || !(y1 > y0)) return;
    this.view = { x0: x0, x1: x1, y0: y0, y1: y1 };
    this.draw();
  };
  Plot.prototype.reset = function () { this.view = Object.assign({}, this.home); this.draw(); };
  Plot.prototype.zoomBy = function (f, p, yAxis) {
    var v = this.view;
    if (yAxis) {
      var cy = p ? this.yv(p[1]) : (v.y0 + v.y1) / 2;
      this.setView(v.x0, v.x1, cy - (cy - v.y0) * f, cy + (v.y1 - cy) * f);
    } else {
      var cx = p ? this.xv(p[0]) : (v.x0 + v.x1) / 2;
      this.setView(cx - (cx - v.x0) * f, cx + (v.x1 - cx) * f, v.y0, v.y1);
    }
  };
  /* Show time t0..t1 with the y axis fitted to what is visible there. */
  Plot.prototype.zoomTo = function (t0, t1) {
    var y0 = Infinity, y1 = -Infinity;
    this.o.series.forEach(function (s) {
      if (s.type === 'hline' || s.noFit) return;
      var ys = s.type === 'seg' ? [s.y0, s.y1] : [s.y];
      for (var i = 0; i < s.x.length; i++) {
        if (s.x[i] < t0 || s.x[i] > t1) continue;
        ys.forEach(function (y) { if (y[i] < y0) y0 = y[i]; if (y[i] > y1) y1 = y[i]; });
      }
    });
    if (!isFinite(y0)) { y0 = this.home.y0; y1 = this.home.y1; }
    var pad = Math.max((y1 - y0) * 0.08, 1);
    this.setView(t0, t1, y0 - pad, y1 + pad);
  };
  Plot.prototype.draw = function (drag) {
    var c = this.canvas, o = this.o, M = this.M, v = this.view, self = this;
    var sz = this.size(), W = sz[0], H = sz[1];
    var dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); c.style.height = H + 'px';
    }
    var g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.fillStyle = '#fff'; g.fillRect(0, 0, W, H);
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#e6e9ef'; g.fillStyle = '#444'; g.lineWidth = 1;
    var xt = ticks(v.x0, v.x1, Math.max(2, Math.floor(pw / 90)));
    var xs = xt.length > 1 ? xt[1] - xt[0] : 1;
    g.textAlign = 'center'; g.textBaseline = 'top';
    xt.forEach(function (t) { var x = self.xp(t); g.beginPath(); g.moveTo(x, M.t); g.lineTo(x, M.t + ph); g.stroke(); g.fillText(tickLabel(t, xs, 's'), x, M.t + ph + 4); });
    var yt = o.yticks ? o.yticks.map(function (q) { return q[0]; }) : ticks(v.y0, v.y1, Math.max(2, Math.floor(ph / 50)));
    var ys = yt.length > 1 ? yt[1] - yt[0] : 1;
    g.textAlign = 'right'; g.textBaseline = 'middle';
    yt.forEach(function (t, k) { var y = self.yp(t); g.beginPath(); g.moveTo(M.l, y); g.lineTo(M.l + pw, y); g.stroke(); g.fillText(o.yticks ? o.yticks[k][1] : tickLabel(t, ys, o.ykind), M.l - 5, y); });
    g.textAlign = 'center'; g.textBaseline = 'bottom';
    g.fillText(o.xlabel || 'time since the connection\'s first packet (s)', M.l + pw / 2, H - 1);
    g.save(); g.translate(11, M.t + ph / 2); g.rotate(-Math.PI / 2); g.textBaseline = 'middle'; g.fillText(o.ylabel || '', 0, 0); g.restore();
    g.save();
    g.beginPath(); g.rect(M.l, M.t, pw, ph); g.clip();
    var drawn = 0;
    o.series.forEach(function (s) {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = s.width || 1;
      g.globalAlpha = s.alpha || 1;
      if (s.dash) g.setLineDash(s.dash); else g.setLineDash([]);
      var i, x, n = s.type === 'hline' ? 0 : s.x.length;
      if (s.type === 'hline') {
        var yy = self.yp(s.y); g.beginPath(); g.moveTo(M.l, yy); g.lineTo(M.l + pw, yy); g.stroke(); return;
      }
      if (s.type === 'step' || s.type === 'line') {
        g.beginPath();
        var started = false, prevY = null;
        for (i = 0; i < n; i++) {
          x = self.xp(s.x[i]); var y = self.yp(s.y[i]);
          if (!started) { g.moveTo(x, y); started = true; } else if (s.type === 'step') { g.lineTo(x, prevY); g.lineTo(x, y); } else g.lineTo(x, y);
          prevY = y;
        }
        if (s.type === 'step' && started && s.extendTo !== undefined) g.lineTo(self.xp(s.extendTo), prevY);
        g.stroke(); drawn += n; return;
      }
      for (i = 0; i < n; i++) {
        if (s.x[i] < v.x0 || s.x[i] > v.x1) continue;
        x = self.xp(s.x[i]);
        if (s.type === 'seg') {
          var a = self.yp(s.y0[i]), b = self.yp(s.y1[i]);
          if (Math.abs(a - b) < 2) { a += 1; b -= 1; }
          g.beginPath(); g.moveTo(x, a); g.lineTo(x, b); g.stroke();
          if (s.mark) { g.font = 'bold 11px system-ui, sans-serif'; g.textAlign = 'center'; g.textBaseline = 'bottom'; g.fillText(s.mark[i] || s.mark, x, b - 1); }
        } else marker(g, s.marker || 'o', x, self.yp(s.y[i]), s.size || 3);
        drawn++;
      }
    });
    g.globalAlpha = 1; g.setLineDash([]);
    if (drag) {
      g.strokeStyle = '#1f6feb'; g.fillStyle = 'rgba(31,111,235,.12)';
      var rx = Math.min(drag.a[0], drag.b[0]), ry = Math.min(drag.a[1], drag.b[1]);
      g.fillRect(rx, ry, Math.abs(drag.a[0] - drag.b[0]), Math.abs(drag.a[1] - drag.b[1]));
      g.strokeRect(rx, ry, Math.abs(drag.a[0] - drag.b[0]), Math.abs(drag.a[1] - drag.b[1]));
    }
    g.restore();
    g.strokeStyle = '#888'; g.strokeRect(M.l, M.t, pw, ph);
    if (o.empty && drawn === 0) { g.fillStyle = '#888'; g.textAlign = 'center'; g.textBaseline = 'middle'; g.font = '13px system-ui, sans-serif'; g.fillText(o.empty, M.l + pw / 2, M.t + ph / 2); }
    c.setAttribute('data-view', JSON.stringify([v.x0, v.x1, v.y0, v.y1]));
    c.setAttribute('data-drawn', String(drawn));
  };
  function marker(g, m, x, y, r) {
    g.beginPath();
    if (m === 'x') { g.moveTo(x - r, y - r); g.lineTo(x + r, y + r); g.moveTo(x + r, y - r); g.lineTo(x - r, y + r); g.stroke(); return; }
    if (m === 'd') { g.moveTo(x, y - r - 1); g.lineTo(x + r + 1, y); g.lineTo(x, y + r + 1); g.lineTo(x - r - 1, y); g.closePath(); g.fill(); return; }
    if (m === '>') { g.moveTo(x - r, y - r - 1); g.lineTo(x + r + 1, y); g.lineTo(x - r, y + r + 1); g.closePath(); g.fill(); return; }
    if (m === '*') { g.font = 'bold ' + (4 * r) + 'px system-ui, sans-serif'; g.textAlign = 'center'; g.textBaseline = 'middle'; g.fillText('✱', x, y); return; }
    g.arc(x, y, r, 0, 2 * Math.PI); g.fill();
  }
  Plot.prototype.hover = function (p) {
    var best = null, bd = 64, self = this, v = this.view;
    this.o.series.forEach(function (s) {
      if (!s.info || s.type === 'hline') return;
      for (var i = 0; i < s.x.length; i++) {
        if (s.x[i] < v.x0 || s.x[i] > v.x1) continue;
        var dx = self.xp(s.x[i]) - p[0];
        if (dx * dx > bd) continue;
        var dy;
        if (s.type === 'seg') {
          var a = self.yp(s.y0[i]), b = self.yp(s.y1[i]);
          dy = p[1] < Math.min(a, b) ? Math.min(a, b) - p[1] : p[1] > Math.max(a, b) ? p[1] - Math.max(a, b) : 0;
        } else dy = self.yp(s.y[i]) - p[1];
        var d = dx * dx + dy * dy;
        if (d < bd) { bd = d; best = [s, i]; }
      }
    });
    if (!best) { this.tip.style.display = 'none'; return; }
    this.tip.textContent = best[0].info(best[1]);
    this.tip.style.display = 'block';
    this.tip.style.left = Math.min(p[0] + 14, this.size()[0] - 160) + 'px';
    this.tip.style.top = (p[1] + 40) + 'px';
  };

  /* ---------------------------------------------------------------- connection detail */
  var detailSec = el('section', { id: 'detail' });
  main.append(detailSec);
  detailSec.append(el('p', { cls: 'note', text: 'Click a connection in the table or a flow in the findings to see it here.' }));
  var RETX = {
    fast: ['#d62728', 'F', 'fast retransmission (dup ACKs / SACK)'],
    rto: ['#9c27b0', 'T', 'retransmission by timeout (RTO)'],
    tail_loss_probe: ['#e67e22', 'P', 'tail-loss probe'],
    spurious: ['#8c564b', 'S', 'spurious retransmission (already acknowledged / D-SACK)'],
    other: ['#e377c2', 'R', 'retransmission (other)']
  };
  var STATE_COLOURS = { ESTABLISHED: '#9fd49f', SYN_SENT: '#ffe08a', SYN_RECEIVED: '#ffd36b', LISTEN: '#e8e8e8', INACTIVE: '#f1f1f1',
    CLOSED: '#d9d9d9', FIN_WAIT_1: '#a8c8f0', FIN_WAIT_2: '#8cb6eb', CLOSE_WAIT: '#f4b183', CLOSING: '#c5a3e6', LAST_ACK: '#f0a0a0', TIME_WAIT: '#b7b7e8' };
  function stateColour(s) {
    if (STATE_COLOURS[s]) return STATE_COLOURS[s];
    var h = 0; for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return 'hsl(' + h + ',55%,80%)';
  }
  var flowCache = new Map();
  function flowData(fid) {
    if (flowCache.has(fid)) return flowCache.get(fid);
    var node = document.getElementById('flow-' + fid);
    var d = node ? JSON.parse(node.textContent) : null;
    flowCache.set(fid, d);
    return d;
  }
  var openPlots = [];
  function openFlow(fid) {
    var i = rowOf.get(fid);
    if (i === undefined) return;
    selectedFlow = fid;
    render();
    openPlots = [];
    detailSec.replaceChildren();
    detailSec.setAttribute('data-flow', String(fid));
    var cli = endpoint(C.client_ip[i], C.client_port[i]), srv = endpoint(C.server_ip[i], C.server_port[i]);
    detailSec.append(el('h2', { text: 'flow ' + fid + ' · ' + cli + ' → ' + srv }));
    var kv = el('table', { cls: 'kv' });
    function row(k, val) { kv.append(el('tr', null, el('th', { text: k }), el('td', null, val))); }
    row('Wireshark', el('span', { cls: 'mono', text: 'tcp.stream eq ' + fid + '   (frames ' + C.first_frame[i] + '–' + C.last_frame[i] + ')' }));
    row('client / server', cli + ' (client)  ↔  ' + srv + ' (server)');
    row('started, lasted', isoTime(C.start_ts[i]) + ', ' + fmtS(C.duration_s[i]));
    row('open, close', C.open[i] + ', ' + C.close[i]);
    row('final states', 'client ' + C.client_state[i] + ', server ' + C.server_state[i] + ' (Zeek conn_state ' + C.conn_state[i] + ', history ' + C.history[i] + ')');
    row('packets, payload', fmtInt(C.packets[i]) + ' packets, ' + fmtBytes(C.bytes[i]) + ', ' + fmtInt(C.retransmissions[i]) + ' retransmitted segments');
    detailSec.append(kv);
    var mine = D.findings.filter(function (f) { return f.flow_id === fid; });
    if (mine.length) {
      var ul = el('ul', { id: 'flow-findings' });
      mine.forEach(function (f) {
        ul.append(el('li', null, el('span', { cls: 'sev-' + f.severity, text: f.severity }), ' ',
          el('span', { cls: 'mono', text: f.code }), ' (frames ' + f.first_frame + '–' + f.last_frame + '): ' + f.summary));
      });
      detailSec.append(el('h3', { text: 'Findings' }), ul);
    }
    var d = C.detail[i] ? flowData(fid) : null;
    if (!d) {
      detailSec.append(el('p', { cls: 'warnbox', id: 'no-detail', text: 'Packet detail of this connection is not embedded in this report (see the note at the top). ' +
        'tcptrace-py flow CAPTURE ' + fid + ' shows its ladder; tcptrace-py plot CAPTURE --flow ' + fid + ' its graphs.' }));
      detailSec.scrollIntoView();
      return;
    }
    lifecycle(d, i);
    graphs(d, fid);
    ladder(d);
    detailSec.scrollIntoView();
  }
  window.tcptraceReport = { openFlow: openFlow, plots: function () { return openPlots; } };

  function lifecycle(d, ci) {
    var sec = el('div', { cls: 'lifecycle', id: 'lifecycle' });
    detailSec.append(el('h3', { text: 'Lifecycle: each endpoint\'s state over time' }), sec);
    var span = Math.max(d.span_s, 1e-6);
    var spans = { client: [], server: [] };
    var cur = { client: ['INACTIVE', 0], server: ['INACTIVE', 0] };
    d.events.forEach(function (e) {
      var ep = e[2];
      if (!cur[ep] || e[5] === cur[ep][0]) return;
      spans[ep].push([cur[ep][1], e[1], cur[ep][0]]);
      cur[ep] = [e[5], e[1]];
    });
    ['client', 'server'].forEach(function (ep) { spans[ep].push([cur[ep][1], Math.max(span, cur[ep][1]), cur[ep][0]]); });
    var series = [];
    var legend = [];
    var seen = {};
    ['client', 'server'].forEach(function (ep, row) {
      spans[ep].forEach(function (sp) {
        var col = stateColour(sp[2]);
        if (!seen[sp[2]]) { seen[sp[2]] = 1; legend.push([sp[2], col]); }
        series.push({ type: 'line', x: [sp[0], sp[1]], y: [row === 0 ? 1 : 0, row === 0 ? 1 : 0], color: col, width: 26,
          info: null });
      });
    });
    var trans = d.events.filter(function (e) { return e[3] === 'transition' || e[3] === 'timeout'; });
    series.push({ type: 'pts', x: trans.map(function (e) { return e[1]; }), y: trans.map(function (e) { return e[2] === 'client' ? 1 : 0; }),
      color: '#333', marker: 'd', size: 3,
      info: function (k) { var e = trans[k]; return 'frame ' + e[0] + ', t ' + e[1].toFixed(6) + ' s\n' + e[2] + ': ' + e[4] + ' → ' + e[5] + '\n' + e[6]; } });
    var p = new Plot(sec, { id: 'lifecycle', title: 'states (top: client, bottom: server); ◆ a transition, hover for its reason', height: 150,
      series: series, ylabel: 'endpoint', yticks: [[1, 'client'], [0, 'server']], ymin: -0.6, ymax: 1.6, legend: legend });
    p.home.y0 = -0.6; p.home.y1 = 1.6; p.reset();
    openPlots.push(p);
    var t = el('table', { id: 'transitions' });
    t.append(el('tr', null, el('th', { text: 'frame' }), el('th', { text: 't (s)', cls: 'num' }), el('th', { text: 'endpoint' }),
      el('th', { text: 'change' }), el('th', { text: 'kind' }), el('th', { text: 'reason' })));
    d.events.forEach(function (e) {
      t.append(el('tr', null, el('td', { cls: 'mono', text: String(e[0]) }), el('td', { cls: 'num', text: e[1].toFixed(6) }),
        el('td', { text: e[2] }), el('td', { cls: 'mono', text: e[4] + ' → ' + e[5] + ' (' + e[7] + ')' }), el('td', { text: e[3] }), el('td', { text: e[6] })));
    });
    sec.append(el('details', null, el('summary', { text: fmtInt(d.events.length) + ' transitions and events with their reasons' }), el('div', { cls: 'tablewrap' }, t)));
  }

  function graphs(d, fid) {
    var wrap = el('div');
    detailSec.append(el('h3', { text: 'Graphs' }), wrap);
    var dirSel = el('select', { id: 'sender' },
      el('option', { value: 'client', text: 'data sent by the client' }),
      el('option', { value: 'server', text: 'data sent by the server' }));
    dirSel.value = d.sender;
    var top = el('div', { cls: 'tools' }, 'direction: ', dirSel);
    wrap.append(top);
    var area = el('div');
    wrap.append(area);
    function build() {
      area.replaceChildren();
      openPlots = openPlots.filter(function (p) { return p.o.id === 'lifecycle'; });
      var who = dirSel.value, s = d[who], peer = who === 'client' ? 'server' : 'client';
      openPlots.push(tsgPlot(area, s.tsg, who, d.span_s));
      var grid = el('div', { cls: 'plots two' });
      area.append(grid);
      var rtt = s.rtt;
      var rttSeries = [{ type: 'pts', x: rtt.t, y: rtt.y, color: '#1f77b4', size: 2.5,
        info: function (k) { return 't ' + rtt.t[k].toFixed(6) + ' s\nRTT ' + rtt.y[k].toFixed(3) + ' ms'; } }];
      var legend = [['RTT sample (Karn: segments sent once)', '#1f77b4']];
      if (d.srtt_ms[who] !== null) { rttSeries.push({ type: 'hline', y: d.srtt_ms[who], color: '#ff7f0e', dash: [5, 4] }); legend.push(['final SRTT ' + d.srtt_ms[who].toFixed(3) + ' ms', '#ff7f0e']); }
      openPlots.push(new Plot(grid, { id: 'rtt', title: 'RTT of the ' + who + '\'s data', ylabel: 'RTT (ms)', ykind: 'ms', ymin: 0, series: rttSeries, legend: legend, height: 300,
        empty: 'no RTT sample (no ACK acknowledged a segment sent once)', xmax: d.span_s }));
      var tp = d.throughput, tps = [], tleg = [];
      [['client', '#1f77b4', 'client → server'], ['server', '#ff7f0e', 'server → client']].forEach(function (q) {
        var v = tp[q[0]];
        if (!v.length) return;
        tps.push({ type: 'step', x: v.map(function (_, k) { return tp.t_min + k * tp.bin_s; }), y: v, color: q[1], extendTo: tp.t_min + v.length * tp.bin_s });
        tleg.push([q[2], q[1]]);
        if (tp[q[0] + '_avg'] !== null) { tps.push({ type: 'hline', y: tp[q[0] + '_avg'], color: q[1], dash: [5, 4] }); tleg.push([q[2] + ' average ' + fmtBytes(tp[q[0] + '_avg'], true), q[1]]); }
      });
      openPlots.push(new Plot(grid, { id: 'throughput', title: 'throughput (goodput, ' + fmtS(tp.bin_s) + ' bins)', ylabel: 'payload per second', ykind: 'rate', ymin: 0,
        series: tps, legend: tleg, height: 300, empty: 'no payload sent' }));
      var w = s.window;
      var ws = [{ type: 'step', x: w.window.t, y: w.window.y, color: '#b8860b', width: 1.5, extendTo: d.span_s },
        { type: 'step', x: w.in_flight.t, y: w.in_flight.y, color: '#1f77b4' },
        { type: 'pts', x: w.zero_window, y: w.zero_window.map(function () { return 0; }), color: '#e91e63', marker: 'x', size: 5,
          info: function (k) { return 'zero window at ' + w.zero_window[k].toFixed(6) + ' s'; } }];
      openPlots.push(new Plot(grid, { id: 'window', title: peer + '\'s advertised window and the ' + who + '\'s bytes in flight', ylabel: 'bytes', ykind: 'bytes', ymin: 0,
        series: ws, legend: [['advertised window (scaled)', '#b8860b'], ['bytes in flight', '#1f77b4'], ['zero window', '#e91e63']], height: 300,
        empty: 'no ACK from the receiver' }));
    }
    dirSel.addEventListener('change', build);
    build();
  }

  function tsgPlot(parent, g, who, spanS) {
    var series = [];
    var ack = g.ack;
    series.push({ type: 'step', x: ack.t, y: ack.a, color: '#2ca02c', width: 1.2, extendTo: spanS, noFit: false });
    series.push({ type: 'step', x: ack.t, y: ack.w, color: '#c9a400', width: 1.2, noBounds: g.clipped, noFit: true, extendTo: spanS });
    var dd = g.data;
    series.push({ type: 'seg', x: dd.t, y0: dd.l, y1: dd.h, color: '#111', width: 1.3,
      info: function (k) { return 'frame ' + dd.f[k] + ' data\nt ' + dd.t[k].toFixed(6) + ' s\nseq ' + dd.l[k] + '–' + dd.h[k] + ' (' + (dd.h[k] - dd.l[k]) + ' B)'; } });
    var sk = g.sack;
    series.push({ type: 'seg', x: sk.t, y0: sk.l, y1: sk.h, color: '#9467bd', width: 3, alpha: 0.75,
      info: function (k) { return 'frame ' + sk.f[k] + ' SACK block\nt ' + sk.t[k].toFixed(6) + ' s\n' + sk.l[k] + '–' + sk.h[k]; } });
    var rx = g.retx;
    var counts = {};
    rx.c.forEach(function (c) { counts[c] = (counts[c] || 0) + 1; });
    Object.keys(RETX).forEach(function (cls) {
      var idx = [];
      rx.c.forEach(function (c, k) { if (c === cls) idx.push(k); });
      if (!idx.length) return;
      var sub = { t: idx.map(function (k) { return rx.t[k]; }), l: idx.map(function (k) { return rx.l[k]; }), h: idx.map(function (k) { return rx.h[k]; }), f: idx.map(function (k) { return rx.f[k]; }) };
      series.push({ type: 'seg', x: sub.t, y0: sub.l, y1: sub.h, color: RETX[cls][0], width: 3, mark: RETX[cls][1], cls: cls,
        info: function (k) { return 'frame ' + sub.f[k] + ' ' + RETX[cls][2] + '\nt ' + sub.t[k].toFixed(6) + ' s\nseq ' + sub.l[k] + '–' + sub.h[k] + ' (' + (sub.h[k] - sub.l[k]) + ' B)'; } });
    });
    [['zero_window', '#e91e63', 'x', 'zero window'], ['syn', '#2ca02c', '>', 'SYN'], ['fin', '#1f77b4', 'd', 'FIN'], ['rst', '#8b0000', '*', 'RST']].forEach(function (m) {
      var p = g[m[0]];
      if (!p.t.length) return;
      series.push({ type: 'pts', x: p.t, y: p.y, color: m[1], marker: m[2], size: m[0] === 'rst' ? 4 : 4,
        info: function (k) { return 'frame ' + p.f[k] + ' ' + m[3] + '\nt ' + p.t[k].toFixed(6) + ' s'; } });
    });
    var legend = [['data segment', '#111'], ['ACK', '#2ca02c'], ['ACK + advertised window' + (g.clipped ? ' (clipped)' : ''), '#c9a400'], ['SACK block', '#9467bd']];
    Object.keys(RETX).forEach(function (cls) { if (counts[cls]) legend.push([RETX[cls][1] + ': ' + RETX[cls][2] + ' × ' + counts[cls], RETX[cls][0]]); });
    var jump = el('select', { id: 'retx-jump' });
    jump.append(el('option', { value: '', text: rx.t.length ? 'zoom to a retransmission (' + rx.t.length + ')…' : 'no retransmission' }));
    var order = rx.t.map(function (_, k) { return k; });
    order.slice(0, 2000).forEach(function (k) {
      jump.append(el('option', { value: String(k), text: 'frame ' + rx.f[k] + ' · ' + rx.c[k].replace(/_/g, ' ') + ' · t ' + rx.t[k].toFixed(6) + ' s' }));
    });
    var plot = new Plot(parent, { id: 'tsg', title: 'time-sequence graph: data sent by the ' + who, ylabel: 'relative sequence number', ykind: 'bytes',
      series: series, legend: legend, height: 460, tools: [jump], ymax: g.clipped ? g.top * 1.1 : undefined, xmax: spanS,
      empty: 'no segment from this sender' });
    jump.addEventListener('change', function () {
      if (jump.value === '') return;
      var k = Number(jump.value), t = rx.t[k];
      var w = Math.max((plot.home.x1 - plot.home.x0) / 60, 0.002);
      plot.zoomTo(t - w, t + w);
    });
    return plot;
  }

  var ROUTINE = { truncated: 1, rtt_sample: 1 };
  function ladder(d) {
    var sec = el('div', { id: 'ladder' });
    detailSec.append(el('h3', { text: 'Ladder: every packet, with the states after it' }), sec);
    var only = el('input', { type: 'checkbox', id: 'ladder-interesting' });
    var LP = 200, lpage = 0, rows = d.ladder;
    var info = el('span');
    var prev = el('button', { text: '◀' }), next = el('button', { text: '▶' });
    sec.append(el('div', { cls: 'pager' }, el('label', null, only, ' only packets with a transition, an analysis flag or SYN/FIN/RST'), prev, info, next));
    var t = el('table', { cls: 'ladder' });
    sec.append(el('div', { cls: 'tablewrap' }, t));
    function interesting(r) {
      if (r[12].length || /[SFR]/.test(r[3])) return true;
      return r[9].split(' ').some(function (n) { return n && !ROUTINE[n]; });
    }
    function show() {
      rows = only.checked ? d.ladder.filter(interesting) : d.ladder;
      var pages = Math.max(1, Math.ceil(rows.length / LP));
      if (lpage >= pages) lpage = pages - 1;
      info.textContent = fmtInt(rows.length) + ' packets · page ' + (lpage + 1) + ' of ' + pages;
      prev.disabled = lpage === 0; next.disabled = lpage >= pages - 1;
      var frag = document.createDocumentFragment();
      frag.append(el('tr', null, el('th', { text: 'frame' }), el('th', { text: 't (s)', cls: 'num' }), el('th', { text: 'client' }), el('th', { text: '' }),
        el('th', { text: 'server' }), el('th', { text: 'len', cls: 'num' }), el('th', { text: 'seq / ack / win / sack' }), el('th', { text: 'analysis' }),
        el('th', { text: 'client state' }), el('th', { text: 'server state' }), el('th', { text: 'transitions' })));
      rows.slice(lpage * LP, (lpage + 1) * LP).forEach(function (r) {
        var nums = r[5] === null ? '' : 'seq ' + r[5] + (r[6] === null ? '' : ' ack ' + r[6]) + (r[7] === null || r[7] < 0 ? '' : ' win ' + r[7]) + (r[8] ? ' sack ' + r[8] : '');
        var an = el('td', { cls: 'mono', text: r[9] });
        if (/retransmission|tail_loss_probe/.test(r[9])) an.className = 'mono sev-error';
        frag.append(el('tr', { 'data-frame': String(r[0]) }, el('td', { cls: 'mono', text: String(r[0]) }), el('td', { cls: 'num', text: r[1].toFixed(6) }),
          el('td', { cls: 'mono', text: r[2] ? r[3] : '' }), el('td', { text: r[2] ? '──▶' : '◀──' }), el('td', { cls: 'mono', text: r[2] ? '' : r[3] }),
          el('td', { cls: 'num', text: String(r[4]) }), el('td', { cls: 'mono', text: nums }), an,
          el('td', { text: r[10] }), el('td', { text: r[11] }), el('td', { cls: 'evidence', text: r[12].join('\n') })));
      });
      t.replaceChildren(frag);
    }
    only.addEventListener('change', function () { lpage = 0; show(); });
    prev.addEventListener('click', function () { lpage--; show(); });
    next.addEventListener('click', function () { lpage++; show(); });
    show();
  }
})();
