// The aws-csm-bridge web view (served at GET / on the admin listener; src/admin/web/web-view.ts).
// Live updates come once a second over Server-Sent Events (/web/events); EventSource reconnects
// by itself when the bridge restarts. Every string from a datagram (ClientId, error messages,
// request ids) is attacker-controlled: the DOM is built with createElement and textContent only,
// never innerHTML, and the page's Content-Security-Policy allows no inline script.
'use strict';
(() => {
  /** Recent calls the page keeps (the bridge sends at most 50 new ones a second). */
  const MAX_FEED = 200;
  /** Points per chart: 15 minutes of 5 s slots, plus the one being filled. */
  const MAX_POINTS = 181;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(digits));
  const fmtMs = (v) => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const time = (ms) => new Date(ms).toLocaleTimeString();

  const state = {
    init: null,
    rows: [],
    clientRows: [],
    stats: null,
    feed: [], // newest first
    sort: { key: 'rate', desc: true },
    group: 'client',
    filter: '',
    selection: '', // '' = all calls, else a row key
    selectionLabel: 'all calls',
    series: null, // { t, callsPerSec, ... }
    picked: null, // the recent call shown in the waterfall (its seq)
    dirty: false,
  };

  // ---- live updates --------------------------------------------------------------------------
  const status = $('status');
  const setStatus = (cls, text) => {
    status.className = `status ${cls}`;
    status.textContent = text;
  };
  const events = new EventSource('/web/events');
  events.onopen = () => setStatus('live', 'live');
  events.onerror = () => setStatus('down', 'reconnecting…');
  events.addEventListener('init', (e) => {
    const m = JSON.parse(e.data);
    const restarted = state.init !== null && state.init.stats.startedAt !== m.stats.startedAt;
    state.init = m;
    state.feed = [];
    if (restarted) state.picked = null;
    for (const li of feedItems.values()) li.remove();
    feedItems.clear();
    take(m);
    loadHistory();
    loadPolicies();
  });
  events.addEventListener('update', (e) => take(JSON.parse(e.data)));

  function take(m) {
    state.rows = m.rows;
    state.clientRows = m.clientRows;
    state.stats = m.stats;
    // A page that just connected may get calls its first event had already: kept once.
    for (const c of m.recent) if (!state.feed.length || c.seq > state.feed[0].seq) state.feed.unshift(c);
    if (state.feed.length > MAX_FEED) state.feed.length = MAX_FEED;
    for (const [seq, traceId] of m.joined) {
      const c = state.feed.find((x) => x.seq === seq);
      if (c) c.traceId = traceId;
    }
    addPoint(state.selection === '' ? m.total : (rowsOf(m).find((r) => r.key === state.selection) || {}).point);
    schedule();
  }
  const rowsOf = (m) => (state.group === 'client' ? m.clientRows : m.rows);

  // Rendering waits for the next frame and happens at most once per update, however many arrive.
  function schedule() {
    if (state.dirty) return;
    state.dirty = true;
    requestAnimationFrame(() => {
      state.dirty = false;
      render();
    });
  }

  function render() {
    renderHeader();
    renderTable();
    renderCharts();
    renderFeed();
    renderHealth();
  }

  // ---- header --------------------------------------------------------------------------------
  function renderHeader() {
    const s = state.stats;
    $('version').textContent = state.init ? state.init.version : '';
    const total = state.rows.reduce((a, r) => a + r.rate, 0);
    $('summary').textContent = s ? `started ${new Date(s.startedAt).toLocaleString()} · ${fmt(total)} calls/s · ${s.datagrams.received} datagrams · ${s.spans.created} spans` : '';
  }

  // ---- the table -----------------------------------------------------------------------------
  document.querySelectorAll('#rows th[data-sort]').forEach((th) =>
    th.addEventListener('click', () => {
      const key = th.dataset.sort;
      state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : key !== 'name' && key !== 'clientId' };
      renderTable();
    }),
  );
  $('filter').addEventListener('input', (e) => {
    state.filter = e.target.value.toLowerCase();
    renderTable();
  });
  $('group').addEventListener('change', (e) => {
    state.group = e.target.value;
    select('', 'all calls');
    renderTable();
  });
  $('select-all').addEventListener('click', () => select('', 'all calls'));

  function renderTable() {
    const { key, desc } = state.sort;
    const f = state.filter;
    const rows = (state.group === 'client' ? state.clientRows : state.rows)
      .map((r) => ({ ...r, errorPct: r.calls ? (100 * r.errors) / r.calls : 0, lastErrorText: r.lastError ? r.lastError.text : '' }))
      .filter((r) => !f || `${r.clientId || ''} ${r.name} ${r.lastErrorText}`.toLowerCase().includes(f));
    const val = (r) => (key === 'lastError' ? r.lastErrorText : r[key] === null ? -1 : r[key] || (typeof r[key] === 'string' ? '' : 0));
    rows.sort((a, b) => {
      const x = val(a);
      const y = val(b);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return desc ? -c : c;
    });
    document.querySelectorAll('#rows th[data-sort]').forEach((th) => {
      th.classList.toggle('sorted', th.dataset.sort === key);
      th.classList.toggle('desc', th.dataset.sort === key && desc);
    });
    $('rows').classList.toggle('per-api', state.group !== 'client');
    const body = el('tbody');
    for (const r of rows) {
      const tr = el('tr');
      tr.dataset.key = r.key;
      if (r.key === state.selection) tr.className = 'selected';
      tr.append(
        el('td', 'client', r.clientId === null ? '' : r.clientId),
        el('td', 'api', r.name),
        el('td', 'num', fmt(r.rate)),
        el('td', 'num', r.calls),
        el('td', 'num', fmtMs(r.p50)),
        el('td', 'num', fmtMs(r.p99)),
        el('td', r.errors ? 'num bad' : 'num', fmt(r.errorPct)),
        el('td', 'num', r.retries),
        el('td', r.throttles ? 'num warn' : 'num', r.throttles),
        el('td', 'err', r.lastErrorText),
      );
      tr.dataset.label = r.clientId === null ? r.name : `${r.clientId} · ${r.name}`;
      body.append(tr);
    }
    $('rows').tBodies[0].replaceWith(body);
  }

  $('rows').addEventListener('click', (e) => {
    const tr = e.target.closest('tbody tr');
    if (tr) select(tr.dataset.key, tr.dataset.label);
  });

  function select(key, label) {
    state.selection = key;
    state.selectionLabel = label;
    $('selection').textContent = label;
    loadHistory();
    renderTable();
  }

  // ---- charts (uPlot) ------------------------------------------------------------------------
  const charts = [];
  let chartWidth = 0;
  const CHARTS = [
    { title: 'calls/s', series: [['calls/s', 'callsPerSec', '#2563eb']] },
    { title: 'latency ms', series: [['p50', 'p50', '#16a34a'], ['p99', 'p99', '#d97706']] },
    { title: 'per second', series: [['errors', 'errorsPerSec', '#dc2626'], ['retries', 'retriesPerSec', '#7c3aed'], ['throttles', 'throttlesPerSec', '#ea580c']] },
  ];
  const FIELD_OF_POINT = { callsPerSec: 1, errorsPerSec: 2, retriesPerSec: 3, throttlesPerSec: 4, p50: 5, p99: 6 };

  function loadHistory() {
    const key = state.selection;
    fetch(`/web/history?key=${encodeURIComponent(key)}`)
      .then((r) => (r.ok ? r.json() : null))
      .then((s) => {
        if (key !== state.selection) return;
        state.series = s;
        renderCharts();
      })
      .catch(() => {});
  }

  // The update's point for the selection: replaces the last point while its slot is being filled.
  function addPoint(p) {
    const s = state.series;
    if (!s || !p) return;
    const n = s.t.length;
    const last = n ? s.t[n - 1] : -1;
    if (p[0] < last) return;
    if (p[0] === last) for (const k of ['t', ...Object.keys(FIELD_OF_POINT)]) s[k].pop();
    s.t.push(p[0]);
    for (const [k, i] of Object.entries(FIELD_OF_POINT)) s[k].push(p[i]);
    if (s.t.length > MAX_POINTS) for (const k of ['t', ...Object.keys(FIELD_OF_POINT)]) s[k].shift();
  }

  function renderCharts() {
    const s = state.series;
    if (!s || typeof uPlot === 'undefined') return;
    const box = $('charts');
    // Measured only when the charts are made or the window resized: reading a size after the
    // table changed would make the browser lay out the whole page again on every update.
    if (chartWidth === 0) chartWidth = Math.max(260, Math.floor((box.clientWidth - 24) / CHARTS.length));
    const width = chartWidth;
    CHARTS.forEach((c, i) => {
      const data = [s.t, ...c.series.map(([, k]) => s[k])];
      if (!charts[i]) {
        const holder = el('div', 'chart');
        holder.dataset.chart = c.title;
        box.append(holder);
        charts[i] = new uPlot(
          {
            title: c.title,
            width,
            height: 150,
            scales: { x: { time: true } },
            series: [{}, ...c.series.map(([label, , stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
            axes: [{}, { size: 50 }],
            legend: { live: false },
          },
          data,
          holder,
        );
      } else {
        charts[i].setData(data);
        if (charts[i].width !== width) charts[i].setSize({ width, height: 150 });
      }
    });
  }
  window.addEventListener('resize', () => {
    chartWidth = 0;
    renderCharts();
  });

  // ---- recent calls and the waterfall --------------------------------------------------------
  // The feed's items are made once per call (at most 50 new ones an update), newest first.
  const feedList = $('feed');
  const feedItems = new Map(); // seq → li
  feedList.addEventListener('click', (e) => {
    const li = e.target.closest('li[data-seq]');
    if (!li) return;
    state.picked = Number(li.dataset.seq);
    renderFeed();
  });
  function feedItem(c) {
    const li = el('li', c.error ? 'call bad' : c.attemptCount > 1 ? 'call retried' : 'call');
    li.dataset.seq = String(c.seq);
    li.append(
      el('span', 'when', time(c.at)),
      el('span', 'client', c.clientId),
      el('span', 'api', c.name),
      el('span', 'num', `${c.attemptCount} attempt${c.attemptCount === 1 ? '' : 's'}`),
      el('span', 'num', `${fmtMs(c.latencyMs)} ms`),
      el('span', 'outcome', c.error ? `${c.errorType || 'error'}${c.status ? ` ${c.status}` : ''}` : c.status ? String(c.status) : 'ok'),
    );
    return li;
  }
  function renderFeed() {
    const keep = new Set(state.feed.map((c) => c.seq));
    for (const [seq, li] of feedItems) {
      if (!keep.has(seq)) {
        li.remove();
        feedItems.delete(seq);
      }
    }
    let next = feedList.firstChild;
    for (const c of state.feed) {
      let li = feedItems.get(c.seq);
      if (!li) {
        li = feedItem(c);
        feedItems.set(c.seq, li);
        feedList.insertBefore(li, next);
      } else next = li.nextSibling;
      if (c.traceId && !li.querySelector('.joined')) li.append(el('span', 'joined', 'trace'));
      li.classList.toggle('picked', c.seq === state.picked);
    }
    const picked = state.feed.find((c) => c.seq === state.picked);
    if (picked) renderWaterfall(picked);
  }

  function renderWaterfall(c) {
    const box = el('div');
    box.id = 'waterfall';
    const head = el('div', 'wf-head');
    head.append(
      el('strong', null, c.name),
      el('span', 'client', c.clientId),
      el('span', null, `${c.attemptCount} attempt${c.attemptCount === 1 ? '' : 's'} · ${fmtMs(c.latencyMs)} ms · ${c.error ? `failed: ${c.errorType || ''}` : 'succeeded'}`),
    );
    box.append(head);
    if (c.message) box.append(el('div', 'wf-message', c.message));
    if (c.traceId) {
      const t = el('div', 'wf-trace');
      t.append(el('span', null, 'joined into the application trace '));
      const tpl = state.init && state.init.traceUrlTemplate;
      if (tpl && /^[0-9a-f]{32}$/.test(c.traceId)) {
        const a = el('a', null, c.traceId);
        a.href = tpl.split('{traceId}').join(c.traceId);
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        t.append(a);
      } else t.append(el('code', null, c.traceId));
      box.append(t);
    }
    // The time axis: the call's span, widened to its attempts.
    const start = Math.min(c.startMs, ...c.attempts.map((a) => a.startMs));
    const end = Math.max(c.endMs, ...c.attempts.map((a) => a.endMs), start + 1);
    const pct = (ms) => `${((100 * (ms - start)) / (end - start)).toFixed(2)}%`;
    const axis = el('div', 'wf-axis');
    axis.append(el('span', null, '0 ms'), el('span', null, `${(end - start).toFixed(0)} ms`));
    box.append(axis);
    c.attempts.forEach((a, i) => {
      if (i > 0) {
        const prev = c.attempts[i - 1];
        const gap = a.startMs - prev.endMs;
        const row = el('div', 'wf-row wf-backoff');
        row.append(el('div', 'wf-label muted', `backoff ${fmtMs(Math.max(0, gap))} ms`));
        const track = el('div', 'wf-track');
        const g = el('div', 'wf-gap');
        g.style.left = pct(Math.min(prev.endMs, a.startMs));
        g.style.width = pct(start + Math.max(0, gap));
        g.title = `${gap} ms between attempt ${i} and ${i + 1}`;
        track.append(g);
        row.append(track);
        box.append(row);
      }
      const bad = a.errorType || (a.status && a.status >= 400);
      const row = el('div', 'wf-row');
      const label = el('div', 'wf-label');
      label.append(el('strong', null, `#${i + 1}`), el('span', bad ? 'bad' : 'ok', a.status ? String(a.status) : a.errorType ? '' : 'ok'));
      if (a.errorType) label.append(el('span', 'bad', a.errorType));
      if (a.ambiguous) label.append(el('span', 'ambiguous', 'csm.match.ambiguous'));
      row.append(label);
      const track = el('div', 'wf-track');
      const bar = el('div', bad ? 'wf-attempt bad' : 'wf-attempt');
      bar.style.left = pct(a.startMs);
      bar.style.width = pct(start + Math.max(a.endMs - a.startMs, 0));
      bar.title = `${a.endMs - a.startMs} ms`;
      track.append(bar);
      row.append(track);
      box.append(row);
      const detail = el('div', 'wf-detail');
      detail.append(el('span', null, `${fmtMs(a.endMs - a.startMs)} ms`));
      if (a.requestId) detail.append(el('span', 'rid', `request id ${a.requestId}`));
      if (a.extendedRequestId) detail.append(el('span', 'rid', `id-2 ${a.extendedRequestId}`));
      if (a.message) detail.append(el('span', 'bad', a.message));
      box.append(detail);
    });
    if (c.attemptsCut) box.append(el('p', 'muted', `${c.attemptsCut} more attempts not shown`));
    if (c.missingAttempts) box.append(el('p', 'muted', `${c.missingAttempts} attempts counted by the SDK never arrived`));
    $('waterfall').replaceWith(box);
  }

  // ---- policies ------------------------------------------------------------------------------
  let policies = [];
  function loadPolicies() {
    fetch('/policy')
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((all) => {
        policies = all.clients || [];
        const sel = $('policy-select');
        const was = sel.value;
        const opts = policies.map((p) => {
          const o = el('option', null, p.label);
          o.value = p.label;
          return o;
        });
        sel.replaceChildren(...opts);
        if (policies.some((p) => p.label === was)) sel.value = was;
        showPolicy();
      })
      .catch((e) => ($('policy-note').textContent = `no policy: ${e.message}`));
  }
  function showPolicy() {
    const p = policies.find((x) => x.label === $('policy-select').value);
    $('policy-text').textContent = p ? JSON.stringify(p.policy, null, 2) : 'no application observed yet';
    $('policy-note').textContent = p && p.unmapped.length ? `${p.unmapped.length} calls without a known IAM action (see GET /policy)` : '';
  }
  $('policy-select').addEventListener('change', showPolicy);
  $('refresh-policy').addEventListener('click', loadPolicies);
  $('copy-policy').addEventListener('click', () => {
    const text = $('policy-text').textContent;
    const done = () => ($('policy-note').textContent = 'copied');
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => copyBySelection());
    else copyBySelection();
    function copyBySelection() {
      const range = document.createRange();
      range.selectNodeContents($('policy-text'));
      const s = window.getSelection();
      s.removeAllRanges();
      s.addRange(range);
      if (document.execCommand('copy')) done();
    }
  });

  // ---- health --------------------------------------------------------------------------------
  function renderHealth() {
    const s = state.stats;
    if (!s) return;
    const grid = el('div');
    grid.id = 'health-grid';
    const card = (title, items) => {
      const c = el('div', 'card');
      c.append(el('h3', null, title));
      const dl = el('dl');
      for (const [k, v, cls] of items) {
        const dd = el('dd', cls || (typeof v === 'number' && v > 0 && /drop|lost|fail|reject|error|overflow|evict|refused|slow|shed|cut|timed/i.test(k) ? 'bad' : ''), v);
        dd.dataset.counter = k;
        dl.append(el('dt', null, k), dd);
      }
      c.append(dl);
      return c;
    };
    const exportState = (sig) => {
      const err = s.lastExportError[sig];
      const ok = s.lastExportOkAt[sig];
      if (err && (!ok || err.at > ok)) return [`${sig}`, `failing since ${time(err.at)}: ${err.message}`, 'bad'];
      return [`${sig}`, ok ? `ok, last sent ${time(ok)}` : 'nothing sent yet', ''];
    };
    const r = s.datagrams.rejected;
    grid.append(
      card('export', [
        exportState('traces'),
        exportState('metrics'),
        ['spans exported', s.spans.exported],
        ['spans queued', s.spans.queued],
        ['spans lost (failed)', s.spans.failed],
        ['spans lost (dropped)', s.spans.dropped],
        ['send attempts failed (retried)', s.spans.failedAttempts],
        ['metric exports lost', s.metricExports.lost],
      ]),
      card('spool', [
        ['queued spans', s.spool.queuedSpans],
        ['queued bytes', s.spool.queuedBytes],
        ['on disk bytes', s.spool.onDiskBytes],
        ['dropped spans (full)', s.spool.droppedSpans],
        ['dropped metric exports', s.spool.droppedMetricExports],
        ['lost spans at shutdown', s.spool.lostSpans],
        ['disk errors', s.spool.diskErrors],
        ['TLS errors', s.spool.tlsErrors],
      ]),
      card('datagrams', [
        ['received', s.datagrams.received],
        ['accepted', s.datagrams.accepted],
        ...Object.entries(r).map(([k, v]) => [`rejected ${k}`, v]),
        ['dropped source_not_allowed', s.datagrams.dropped.source_not_allowed],
        ['kernel dropped', s.datagrams.kernelDropped],
      ]),
      card('correlation', [
        ['orphaned ttl_expired', s.correlation.orphaned.ttl_expired],
        ['orphaned buffer_full', s.correlation.orphaned.buffer_full],
        ['orphaned shutdown', s.correlation.orphaned.shutdown],
        ['calls incomplete', s.correlation.callsIncomplete],
        ['attempts missing', s.correlation.missingAttempts],
        ['ambiguous attempts', s.correlation.joint.ambiguousAttempts],
        ['pending attempts', s.correlation.pendingAttempts],
        ['memory sheds', s.memory.sheds],
        ['shed attempts', s.memory.shedAttempts],
        ['shed calls', s.memory.shedCalls],
        ['internal errors', s.internalErrors],
      ]),
      card('bounds', [
        ['metric points overflowed', s.metricPoints.overflowed],
        ['metric points rejected', s.metricPoints.rejected],
        ['lost metric exports at shutdown', s.spool.lostMetricExports],
        ['clients overflowed', s.clients.overflowed],
        ['clients evicted', s.clients.evicted],
        ['policy subjects dropped', s.policy.droppedSubjects],
        ['policy calls dropped', s.policy.droppedCalls],
        ['policy scopes dropped', s.policy.droppedScopes],
        ['policy denials dropped', s.policy.droppedDenials],
        ['policy file errors', s.policy.fileErrors],
        ['app spans refused (full)', s.appSpans.refused],
        ...Object.entries(s.appSpans.rejected).map(([k, v]) => [`app span requests rejected ${k}`, v]),
        ['join waiting full', s.join.waitingFull],
      ]),
      card('admin listener and this page', [
        ['viewers', s.web.viewers],
        ['viewers refused', s.web.viewersRefused],
        ['slow viewers dropped', s.web.slowViewersDropped],
        ...Object.entries(s.admin || {}).map(([k, v]) => [`admin ${k}`, v]),
        ['RSS MiB', fmt(s.memory.rssBytes / 1048576)],
      ]),
    );
    $('health-grid').replaceWith(grid);
    const details = $('stats-json').parentElement;
    if (details.open) $('stats-json').textContent = JSON.stringify(s, null, 2);
  }
  $('stats-json').parentElement.addEventListener('toggle', renderHealth);
})();
