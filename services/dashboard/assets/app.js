// Live fleet view: the server pushes a page of the fleet (sorted by risk, filtered) at most
// twice a second; this replaces the table rows in one go. "Last heard" counts on every second
// from the server's own figure (no clock parsing, no skew). All text goes in via textContent,
// never as HTML.
(function () {
  const rows = document.getElementById('rows');
  const status = document.getElementById('f-status');
  const line = document.getElementById('f-line');
  const live = document.getElementById('live');
  const table = document.getElementById('fleet');
  const SVG = 'http://www.w3.org/2000/svg';
  let page = 0;
  let source = null;
  let received = Date.now();

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function ago(secs) {
    const s = Math.max(0, secs);
    if (s < 1) return 'just now';
    if (s < 120) return Math.floor(s) + ' s ago';
    if (s < 7200) return Math.floor(s / 60) + ' min ago';
    if (s < 172800) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' days ago';
  }

  function sparkPoints(values) {
    const n = Math.max(values.length, 2) - 1;
    return values.map((v, i) => (100 * i / n).toFixed(1) + ',' + (23 - 22 * Math.max(0, Math.min(1, v))).toFixed(1)).join(' ');
  }

  function spark(values, status) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark ' + status);
    svg.setAttribute('viewBox', '0 0 100 24');
    svg.setAttribute('preserveAspectRatio', 'none');
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', sparkPoints(values));
    svg.appendChild(line);
    return svg;
  }

  function hour(h) {
    for (const k of ['were_at_risk', 'stayed_healthy', 'peak_at_risk', 'fired', 'acknowledged', 'ended']) {
      const el = document.getElementById(k.replace(/_/g, '-'));
      if (el) el.textContent = h[k];
    }
    const svg = document.getElementById('hour-bars');
    const most = Math.max(1, ...h.minutes.map(m => m.at_risk + m.healthy));
    const w = 240 / Math.max(1, h.minutes.length);
    const bars = [];
    h.minutes.forEach((m, i) => {
      for (const [cls, n] of [['all', m.at_risk + m.healthy], ['risky', m.at_risk]]) {
        const r = document.createElementNS(SVG, 'rect');
        const height = 38 * n / most;
        r.setAttribute('class', cls);
        r.setAttribute('x', (i * w).toFixed(1));
        r.setAttribute('y', (40 - height).toFixed(1));
        r.setAttribute('width', Math.max(0.5, w - 0.5).toFixed(1));
        r.setAttribute('height', height.toFixed(1));
        bars.push(r);
      }
    });
    svg.replaceChildren(...bars);
  }

  function tick() {
    const elapsed = (Date.now() - received) / 1000;
    for (const t of rows.querySelectorAll('time[data-age]')) {
      t.textContent = ago(parseFloat(t.dataset.age) + elapsed);
    }
  }

  function render(s) {
    received = Date.now();
    document.getElementById('machines').textContent = s.machines;
    document.getElementById('at-risk').textContent = s.at_risk;
    document.getElementById('healthy').textContent = s.healthy;
    document.getElementById('page').textContent = 'page ' + (s.page + 1) + ' of ' + s.pages;
    page = s.page;
    const known = new Set(Array.from(line.options).map(o => o.value));
    for (const l of s.lines) {
      if (!known.has(l)) { const o = document.createElement('option'); o.value = l; o.textContent = l; line.appendChild(o); }
    }
    const frag = document.createDocumentFragment();
    for (const r of s.rows) {
      const tr = document.createElement('tr');
      tr.dataset.machine = r.machine_id;
      const a = document.createElement('a');
      a.href = '/machine/' + encodeURIComponent(r.machine_id);
      a.textContent = r.machine_id;
      cell(tr, '').appendChild(a);
      cell(tr, r.line, 'line');
      cell(tr, r.criticality == null ? '' : String(r.criticality), 'criticality');
      cell(tr, r.profile || '', 'profile');
      const badge = document.createElement('span');
      badge.className = 'badge ' + r.status;
      badge.textContent = r.status;
      cell(tr, '').appendChild(badge);
      cell(tr, r.probability == null ? '' : r.probability.toFixed(3), 'risk');
      cell(tr, '', 'trend').appendChild(spark(r.spark || [], r.status));
      cell(tr, r.health == null ? '' : r.health.toFixed(1));
      const insights = cell(tr, '', 'insights');
      for (const b of r.insights || []) {
        const span = document.createElement('span');
        span.className = 'badge ins ' + b.kind + (b.tone ? ' ' + b.tone : '');
        span.title = b.title;
        span.textContent = b.text;
        insights.appendChild(span);
        insights.appendChild(document.createTextNode(' '));
      }
      const readings = cell(tr, '', 'readings');
      for (const x of r.readings || []) {
        const span = document.createElement('span');
        span.className = 'reading';
        span.title = x.name;
        span.textContent = x.label + ': ' + x.value;
        readings.appendChild(span);
        readings.appendChild(document.createTextNode(' '));
      }
      const when = cell(tr, '', 'muted ago');
      if (r.last_update) {
        const t = document.createElement('time');
        t.dateTime = r.last_update;
        t.title = r.heard_at;
        t.dataset.age = String(r.age_s);
        t.textContent = r.ago;
        when.appendChild(t);
      }
      frag.appendChild(tr);
    }
    rows.replaceChildren(frag);
    // Optional columns only while a row on the page has something to show in them.
    table.dataset.insights = s.insights ? 'yes' : 'no';
    table.dataset.criticality = s.criticality ? 'yes' : 'no';
    table.dataset.lines = s.lines.length ? 'yes' : 'no';
    line.parentElement.hidden = !s.lines.length;
    table.dataset.now = s.now;
    hour(s.hour);
    live.textContent = 'live';
  }

  function connect() {
    if (source) source.close();
    const q = new URLSearchParams({ status: status.value, line: line.value, page: String(page) });
    source = new EventSource('/events?' + q.toString());
    source.addEventListener('fleet', e => render(JSON.parse(e.data)));
    source.onerror = () => { live.textContent = 'reconnecting…'; };
  }

  status.addEventListener('change', () => { page = 0; connect(); });
  line.addEventListener('change', () => { page = 0; connect(); });
  document.getElementById('prev').addEventListener('click', () => { page = Math.max(0, page - 1); connect(); });
  document.getElementById('next').addEventListener('click', () => { page = page + 1; connect(); });
  setInterval(tick, 1000);
  connect();
})();
