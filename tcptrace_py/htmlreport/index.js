/* tcptrace-py batch index: one row per capture, linking its report. Text via textContent. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var app = document.getElementById('app');
  function el(tag, props, text) {
    var e = document.createElement(tag);
    for (var k in (props || {})) e.setAttribute(k, props[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  var header = el('header', { 'class': 'top' });
  header.append(el('h1', null, D.title), el('div', { 'class': 'sub' }, D.generator + ' · ' + D.captures.length + ' captures'));
  var main = el('main');
  var t = el('table', { id: 'index' });
  var head = el('tr');
  ['capture', 'connections', 'errors', 'warnings', 'info', 'report'].forEach(function (h) { head.append(el('th', null, h)); });
  t.append(head);
  D.captures.forEach(function (c) {
    var tr = el('tr');
    var sev = c.findings || {};
    tr.append(el('td', { 'class': 'mono' }, c.name), el('td', { 'class': 'num' }, c.connections === null ? '-' : String(c.connections)),
      el('td', { 'class': 'num sev-error' }, String(sev.error || 0)), el('td', { 'class': 'num sev-warning' }, String(sev.warning || 0)),
      el('td', { 'class': 'num' }, String(sev.info || 0)));
    var cell = el('td');
    if (c.href) {
      var a = el('a', null, 'open report');
      a.href = './' + encodeURIComponent(c.href);  /* always a file beside this page */
      cell.append(a);
    } else cell.textContent = 'failed: ' + (c.error || '');
    tr.append(cell);
    t.append(tr);
  });
  main.append(t);
  app.append(header, main);
})();
