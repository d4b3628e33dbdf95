// Live fleet view: the server pushes a page of the fleet (sorted by risk, filtered) at most
// twice a second; this replaces the table rows in one go. All text goes in via textContent,
// never as HTML.
(function () {
  const rows = document.getElementById('rows');
  const status = document.getElementById('f-status');
  const line = document.getElementById('f-line');
  const live = document.getElementById('live');
  let page = 0;
  let source = null;

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function render(s) {
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
      cell(tr, r.line);
      cell(tr, r.profile || '', 'profile');
      const badge = document.createElement('span');
      badge.className = 'badge ' + r.status;
      badge.textContent = r.status;
      cell(tr, '').appendChild(badge);
      cell(tr, r.probability == null ? '' : r.probability.toFixed(3), 'risk');
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
      cell(tr, r.last_update || '', 'muted');
      frag.appendChild(tr);
    }
    rows.replaceChildren(frag);
    // The other models' column only while a row on the page has something to show in it.
    document.getElementById('fleet').dataset.insights = s.insights ? 'yes' : 'no';
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
  connect();
})();
