// The what-if page. The profile selector shows a profile's fields at once (the "Show fields"
// button does the same without JavaScript). With JavaScript, each number gets a slider over
// the sensor's typical span, and the verdict, the risk across each input's span and the
// advice follow the values: 250 ms after the last change the page asks /api/whatif (same
// model, windows and rules as the services); an older answer arriving late is dropped. All
// text goes in via textContent, never as HTML.
(function () {
  const pick = document.getElementById('profile');
  if (pick) pick.addEventListener('change', () => pick.form.submit());
  const form = document.getElementById('whatif');
  const live = document.getElementById('live');
  if (!form || !live || !window.fetch) return;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = id => document.getElementById(id);
  const profileInput = form.querySelector('input[name=profile]');
  const profile = profileInput ? profileInput.value : 'milling';
  let timer = null;
  let seq = 0;
  let inflight = null;
  let lastAdvice = null;

  document.body.classList.add('js');
  live.hidden = false;

  function numberField(name) { return $(name); }

  for (const slider of form.querySelectorAll('input.slider')) {
    const input = numberField(slider.dataset.for);
    if (input && input.value !== '') slider.value = input.value;
    slider.addEventListener('input', () => { input.value = slider.value; schedule(); });
    input.addEventListener('input', () => {
      const v = parseFloat(input.value.replace(',', '.'));
      if (Number.isFinite(v)) slider.value = String(v);
      schedule();
    });
  }
  for (const el of form.querySelectorAll('select, input#product_type')) {
    el.addEventListener('input', schedule);
    el.addEventListener('change', schedule);
  }

  function gather() {
    const values = {};
    const attributes = {};
    for (const field of form.querySelectorAll('.field')) {
      const name = field.dataset.name;
      const el = $(name);
      if (!el) continue;
      if (el.tagName === 'SELECT' || name === 'product_type') attributes[name] = el.value;
      else values[name] = el.value;
    }
    return { profile, values, attributes };
  }

  function schedule() {
    clearTimeout(timer);
    live.dataset.state = 'pending';
    $('live-busy').hidden = false;
    timer = setTimeout(ask, 250);
  }

  async function ask() {
    const mine = ++seq;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    live.dataset.state = 'pending';
    try {
      const r = await fetch('/api/whatif', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(gather()),
        signal: inflight.signal,
        credentials: 'same-origin',
      });
      const answer = r.headers.get('content-type')?.includes('json') ? await r.json() : { failed: await r.text() };
      if (mine !== seq) return;
      render(answer);
    } catch (e) {
      if (e.name === 'AbortError' || mine !== seq) return;
      $('live-error').textContent = 'The dashboard did not answer: ' + e.message;
    }
    if (mine === seq) {
      live.dataset.state = 'ready';
      live.dataset.seq = String(mine);
      $('live-busy').hidden = true;
    }
  }

  function list(ul, items, text, empty) {
    const frag = document.createDocumentFragment();
    for (const item of items) {
      const li = document.createElement('li');
      li.textContent = text(item);
      if (item.code) li.className = item.code;
      frag.appendChild(li);
    }
    if (!items.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = empty;
      frag.appendChild(li);
    }
    ul.replaceChildren(frag);
  }

  function fieldErrors(errors) {
    for (const field of form.querySelectorAll('.field')) {
      const name = field.dataset.name;
      let span = $('live-error-' + name) || $('error-' + name);
      const msg = errors[name];
      field.classList.toggle('invalid', !!msg);
      if (msg) {
        if (!span) {
          span = document.createElement('span');
          span.className = 'error live-error';
          span.id = 'live-error-' + name;
          field.appendChild(span);
        }
        span.textContent = msg;
      } else if (span) {
        span.remove();
      }
    }
  }

  function render(a) {
    $('live-error').textContent = a.failed || a.refused || '';
    fieldErrors(a.errors || {});
    const v = a.verdict;
    live.classList.toggle('stale', !v);
    if (v) {
      const status = $('live-status');
      status.className = 'badge ' + v.status;
      status.textContent = v.status_text;
      $('live-probability').textContent = v.probability.toFixed(3);
      $('live-health').textContent = v.health.toFixed(1);
      $('live-risk').textContent = v.risk.toFixed(2);
      const gauge = $('live-gauge');
      gauge.className = 'fill ' + v.status;
      gauge.style.width = Math.round(v.risk * 100) + '%';
      $('live-note').textContent = v.no_model || '';
      // A rules-only verdict has no probability to show.
      $('live-figures').hidden = !!v.no_model;
      $('live-gauge').parentElement.hidden = !!v.no_model;
      const dl = $('live-insights');
      const frag = document.createDocumentFragment();
      for (const b of v.insights || []) {
        const dt = document.createElement('dt');
        dt.textContent = b.label;
        const dd = document.createElement('dd');
        dd.className = b.kind + ' ' + b.tone;
        dd.id = 'live-' + b.kind;
        dd.title = b.title;
        dd.textContent = b.long;
        frag.appendChild(dt);
        frag.appendChild(dd);
      }
      dl.replaceChildren(frag);
      list($('live-actions'), v.actions, x => x.text, 'none: keep monitoring');
      list($('live-factors'), v.factors, x => x.feature + ' (+' + x.contribution.toFixed(3) + ')', 'none');
    }
    lastAdvice = a.advice || null;
    renderAdvice(lastAdvice);
    for (const s of a.sensitivity || []) drawSweep(s, lastAdvice);
  }

  function renderAdvice(adv) {
    const box = $('advice');
    box.hidden = !adv;
    if (!adv) return;
    $('advice-text').textContent = adv.text.charAt(0).toUpperCase() + adv.text.slice(1) + '.';
    list($('advice-changes'), adv.changes, c => c.label + ': ' + fmt(c.from) + ' → ' + c.to_text, 'no change');
    $('advice-apply').hidden = !adv.changes.length;
    $('advice-why').textContent =
      'Minimises downtime cost × risk + the cost of the change + its energy cost, over ' +
      adv.control_labels.join(' and ') + ' within their bounds, never raising the risk (cost ' +
      Math.round(adv.cost_before) + ' → ' + Math.round(adv.cost_after) + ').';
  }

  function fmt(x) {
    return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en-US') : String(Math.round(x * 100) / 100);
  }

  $('advice-apply').addEventListener('click', () => {
    if (!lastAdvice) return;
    for (const c of lastAdvice.changes) {
      const input = numberField(c.sensor);
      if (!input) continue;
      input.value = String(c.to);
      const slider = $(c.sensor + '-slider');
      if (slider) slider.value = String(c.to);
    }
    schedule();
  });

  function drawSweep(s, adv) {
    const svg = $('sens-' + s.sensor);
    if (!svg || !s.points.length) return;
    const lo = parseFloat(svg.dataset.lo);
    const hi = parseFloat(svg.dataset.hi);
    const x = v => 2 + 156 * (v - lo) / ((hi - lo) || 1);
    const y = r => 38 - 36 * Math.max(0, Math.min(1, r));
    const el = (name, attrs) => {
      const e = document.createElementNS(SVG, name);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      return e;
    };
    const line = s.points.map(p => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ');
    const parts = [
      el('line', { x1: 0, x2: 160, y1: y(0.5), y2: y(0.5), class: 'half' }),
      el('polygon', { points: '2,38 ' + line + ' 158,38', class: 'area' }),
      el('polyline', { points: line, class: 'curve' }),
    ];
    // The risk now, read off the curve at the nearest point.
    const near = s.points.reduce((a, b) => Math.abs(b[0] - s.current) < Math.abs(a[0] - s.current) ? b : a);
    parts.push(el('circle', { cx: x(Math.max(lo, Math.min(hi, s.current))), cy: y(near[1]), r: 3, class: 'now' }));
    const change = adv && adv.changes.find(c => c.sensor === s.sensor);
    if (change) {
      const at = s.points.reduce((a, b) => Math.abs(b[0] - change.to) < Math.abs(a[0] - change.to) ? b : a);
      parts.push(el('circle', { cx: x(change.to), cy: y(at[1]), r: 3, class: 'advised' }));
    }
    const title = el('title', {});
    const top = s.points.reduce((a, b) => b[1] > a[1] ? b : a);
    title.textContent = 'risk ' + near[1].toFixed(2) + ' now; highest ' + top[1].toFixed(2) + ' at ' + fmt(top[0]);
    parts.push(title);
    svg.replaceChildren(...parts);
    svg.dataset.points = String(s.points.length);
  }

  ask();
})();
