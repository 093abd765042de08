// qodbridge live session console. Plain JavaScript, no framework, no build
// step. Data from outside (session ids, devices, error messages) is only
// ever written with textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const tbody = document.querySelector('#sessions tbody');
  const rows = new Map();      // sessionId → {tr, row}
  const results = new Map();   // requestId → li
  const pending = new Map();   // requestId → {action, sessionId, form}
  let selected = '';
  let limit = 0;
  let canSubmit = false;

  const el = (tag, props, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k in e && typeof v !== 'string') e[k] = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  };

  const show = (node, text) => {
    node.textContent = text || '';
    node.hidden = !text;
  };

  const fmtTime = (iso) => {
    if (!iso) return null;
    const d = new Date(iso);
    if (isNaN(d)) return null;
    return el('time', { datetime: iso, title: d.toISOString(), text: d.toLocaleTimeString() });
  };

  // "how long ago" a status arrived, from the view's receivedAt; refreshed
  // by the ticker below.
  const agoText = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  };
  const fmtAgo = (iso) => {
    if (!iso || isNaN(new Date(iso))) return '';
    const e = el('span', { class: 'ago', text: ' · ' + agoText(iso), title: 'received ' + new Date(iso).toISOString() });
    e.dataset.received = iso;
    return e;
  };
  setInterval(() => {
    for (const e of document.querySelectorAll('.ago')) e.textContent = ' · ' + agoText(e.dataset.received);
  }, 10000);

  const badge = (status) => el('span', { class: 'badge badge-' + (status || 'none'), text: status || '—' });

  // --- connection ---------------------------------------------------------
  const setConn = (state, text) => {
    $('conn').className = 'conn conn-' + state;
    $('conn-text').textContent = text;
  };

  // --- sessions table -----------------------------------------------------
  const updateEmpty = () => {
    const n = rows.size;
    $('empty').hidden = n > 0;
    $('sessions').hidden = n === 0;
    $('count').textContent = n ? '(' + n.toLocaleString() + ')' : '';
  };

  const actionButtons = (id) => {
    const extend = el('button', { type: 'button', class: 'secondary extend', text: 'Extend' });
    extend.setAttribute('aria-label', 'Extend session ' + id);
    extend.addEventListener('click', () => { select(id); $('x-seconds').focus(); });
    const del = el('button', { type: 'button', class: 'danger delete', text: 'Delete' });
    del.setAttribute('aria-label', 'Delete session ' + id);
    let timer = 0;
    del.addEventListener('click', () => {
      if (!del.classList.contains('armed')) {
        del.classList.add('armed');
        del.textContent = 'Confirm delete';
        timer = setTimeout(() => { del.classList.remove('armed'); del.textContent = 'Delete'; }, 5000);
        return;
      }
      clearTimeout(timer);
      del.classList.remove('armed');
      del.textContent = 'Delete';
      submit('delete', { sessionId: id }, { sessionId: id, errorNode: $('page-error') });
    });
    for (const b of [extend, del]) b.disabled = !canSubmit;
    return [extend, del];
  };

  const renderRow = (row) => {
    let entry = rows.get(row.sessionId);
    const isNew = !entry;
    if (isNew) {
      const tr = el('tr');
      tr.dataset.sessionId = row.sessionId;
      const open = el('button', { type: 'button', text: row.sessionId, title: row.sessionId });
      open.setAttribute('aria-label', 'Show the history of session ' + row.sessionId);
      open.addEventListener('click', () => select(row.sessionId));
      tr.append(
        el('td', { class: 'sid', 'data-label': 'Session' }, open),
        el('td', { class: 'device', 'data-label': 'Device' }),
        el('td', { class: 'status', 'data-label': 'Status' }),
        el('td', { class: 'info', 'data-label': 'Info' }),
        el('td', { class: 'time', 'data-label': 'Last change' }),
        el('td', { class: 'actions' }, ...actionButtons(row.sessionId)),
      );
      tr.addEventListener('click', (ev) => {
        if (ev.target.closest('button')) return;
        select(row.sessionId);
      });
      entry = { tr, row };
      rows.set(row.sessionId, entry);
    }
    const { tr } = entry;
    const changed = isNew || entry.row.qosStatus !== row.qosStatus || entry.row.statusInfo !== row.statusInfo;
    entry.row = row;
    tr.dataset.status = row.qosStatus || '';
    tr.dataset.statusInfo = row.statusInfo || '';
    tr.querySelector('.device').textContent = row.device || '—';
    tr.querySelector('.status').replaceChildren(badge(row.qosStatus));
    tr.querySelector('.info').textContent = row.statusInfo || '';
    tr.querySelector('.time').replaceChildren(fmtTime(row.time) || '', fmtAgo(row.received));
    tr.classList.toggle('selected', row.sessionId === selected);
    return { tr, changed };
  };

  const upsertRow = (row, flash) => {
    const { tr, changed } = renderRow(row);
    if (changed) {
      if (tbody.firstChild !== tr) tbody.prepend(tr); // most recently updated first
      if (flash) { tr.classList.remove('flash'); void tr.offsetWidth; tr.classList.add('flash'); }
      if (flash && row.sessionId === selected) loadHistory(selected);
    }
    updateEmpty();
  };

  const removeRow = (id) => {
    const entry = rows.get(id);
    if (entry) { entry.tr.remove(); rows.delete(id); }
    updateEmpty();
  };

  const setTruncated = (on) => {
    show($('truncated'), on ? 'Showing only the ' + limit.toLocaleString() + ' most recently updated sessions; older ones are left out.' : '');
  };

  // --- details and history ------------------------------------------------
  let historySeq = 0;
  const loadHistory = async (id) => {
    const seq = ++historySeq;
    $('d-loading').hidden = false;
    show($('d-error'), '');
    try {
      const resp = await fetch('/ui/api/sessions/' + encodeURIComponent(id) + '/history', { headers: { Accept: 'application/json' } });
      const body = await resp.json().catch(() => ({}));
      if (seq !== historySeq) return;
      if (!resp.ok) throw new Error(body.detail || ('HTTP ' + resp.status));
      const list = $('history');
      list.replaceChildren();
      if (!body.history.length) list.append(el('li', { class: 'muted', text: 'No stored statuses for this session.' }));
      for (const s of body.history) {
        list.append(el('li', {}, fmtTime(s.time) || '', ' ', badge(s.qosStatus), s.statusInfo ? ' ' + s.statusInfo : ''));
      }
    } catch (err) {
      if (seq === historySeq) show($('d-error'), 'Could not load the history: ' + err.message);
    } finally {
      if (seq === historySeq) $('d-loading').hidden = true;
    }
  };

  const select = (id) => {
    selected = id;
    for (const [sid, { tr }] of rows) tr.classList.toggle('selected', sid === id);
    $('d-id').textContent = id;
    $('details').hidden = false;
    $('history').replaceChildren();
    loadHistory(id);
  };

  $('d-close').addEventListener('click', () => {
    selected = '';
    $('details').hidden = true;
    for (const { tr } of rows.values()) tr.classList.remove('selected');
  });

  // --- results ------------------------------------------------------------
  const resultItem = (r) => {
    const li = el('li');
    li.dataset.requestId = r.requestId;
    const state = r.pending ? 'pending' : (r.ok ? 'ok' : 'error');
    li.dataset.state = state;
    const label = r.pending ? 'pending' : (r.ok ? 'ok ' + r.status : 'failed ' + r.status);
    const line = el('div', { class: 'line' },
      el('span', { class: 'badge badge-' + state, text: label }),
      el('strong', { text: r.action || 'command' }),
      r.sessionId ? el('code', { text: r.sessionId }) : null,
      el('span', { class: 'when' }, fmtTime(r.time) || ''),
    );
    li.append(line, el('div', { class: 'muted rid', text: 'requestId ' + r.requestId }));
    if (r.error) {
      li.append(el('p', { class: 'msg error', text: [r.error.code, r.error.message].filter(Boolean).join(': ') }));
    }
    return li;
  };

  const addResult = (r) => {
    const li = resultItem(r);
    const old = results.get(r.requestId);
    if (old) old.replaceWith(li); else $('results').prepend(li);
    results.set(r.requestId, li);
    while (results.size > 200) {
      const last = $('results').lastElementChild;
      results.delete(last.dataset.requestId);
      last.remove();
    }
    $('results-empty').hidden = results.size > 0;
  };

  const onResult = (r) => {
    const p = pending.get(r.requestId);
    if (p) {
      pending.delete(r.requestId);
      // Announce the outcome of this page's own commands only: results
      // from elsewhere would keep a screen reader talking.
      $('announce').textContent = p.action + (r.ok ? ' done (' + r.status + ')' : ' failed (' + r.status + ')');
      if (!r.ok && p.errorNode) {
        show(p.errorNode, p.action + ' failed: ' + (r.error ? [r.error.code, r.error.message].filter(Boolean).join(': ') : 'status ' + r.status));
      }
    }
    addResult(r);
  };

  // --- commands -----------------------------------------------------------
  const submit = async (action, body, ctx) => {
    show(ctx.errorNode, '');
    show($('page-error'), '');
    try {
      const resp = await fetch('/ui/api/commands/' + action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      });
      const answer = await resp.json().catch(() => ({}));
      if (resp.status !== 202) {
        const field = answer.field ? ' (' + answer.field + ')' : '';
        throw new Error((answer.detail || 'HTTP ' + resp.status) + field);
      }
      pending.set(answer.requestId, { action, errorNode: ctx.errorNode });
      if (!results.has(answer.requestId)) {
        addResult({ requestId: answer.requestId, action, pending: true, sessionId: ctx.sessionId || '' });
      }
      return true;
    } catch (err) {
      show(ctx.errorNode, action + ' was not sent: ' + err.message);
      return false;
    }
  };

  $('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    for (const input of form.querySelectorAll('input')) input.removeAttribute('aria-invalid');
    const bad = [...form.querySelectorAll('input')].find((i) => !i.checkValidity());
    if (bad) {
      bad.setAttribute('aria-invalid', 'true');
      const label = form.querySelector('label[for="' + bad.id + '"]').textContent;
      show($('c-error'), label + ': ' + bad.validationMessage);
      bad.focus();
      return;
    }
    const btn = $('c-submit');
    btn.disabled = true;
    await submit('create', {
      session: {
        device: { phoneNumber: $('c-phone').value.trim() },
        applicationServer: { ipv4Address: $('c-ipv4').value.trim() },
        qosProfile: $('c-profile').value,
        duration: Number($('c-duration').value),
      },
    }, { errorNode: $('c-error') });
    btn.disabled = !canSubmit;
  });

  $('extend-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('x-seconds');
    if (!selected) return;
    if (!input.checkValidity()) {
      input.setAttribute('aria-invalid', 'true');
      show($('d-error'), 'Additional seconds: ' + input.validationMessage);
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    submit('extend', { sessionId: selected, requestedAdditionalDuration: Number(input.value) }, { sessionId: selected, errorNode: $('d-error') });
  });

  const setCanSubmit = (on) => {
    canSubmit = on;
    for (const b of document.querySelectorAll('#create-form button, #extend-form button, td.actions button')) b.disabled = !on;
  };

  // --- the event stream ---------------------------------------------------
  const events = new EventSource('/ui/events');
  events.addEventListener('open', () => setConn('live', 'live'));
  events.addEventListener('error', () => {
    if (events.readyState === EventSource.CLOSED) {
      setConn('closed', 'disconnected — reload the page (signed out?)');
    } else {
      setConn('reconnecting', 'reconnecting…');
    }
  });
  events.addEventListener('snapshot', (e) => {
    const s = JSON.parse(e.data);
    limit = s.limit;
    setCanSubmit(s.canSubmit);
    show($('notice'), s.notice || '');
    show($('feed-error'), s.feed && !s.feed.ok ? 'Not receiving updates from the broker: ' + s.feed.error : '');
    $('logout').hidden = !s.login;
    tbody.replaceChildren();
    rows.clear();
    for (const row of s.sessions.slice().reverse()) upsertRow(row, false);
    setTruncated(s.truncated);
    $('results').replaceChildren();
    results.clear();
    for (const r of s.results) onResult(r);
    for (const [id, p] of pending) {
      if (!results.has(id)) addResult({ requestId: id, action: p.action, pending: true });
    }
    $('results-empty').hidden = results.size > 0;
    updateEmpty();
    if (selected && rows.has(selected)) select(selected);
  });
  events.addEventListener('session', (e) => upsertRow(JSON.parse(e.data), true));
  events.addEventListener('result', (e) => onResult(JSON.parse(e.data)));
  events.addEventListener('evict', (e) => {
    removeRow(JSON.parse(e.data).sessionId);
    setTruncated(true);
  });
  events.addEventListener('feed', (e) => {
    const f = JSON.parse(e.data);
    show($('feed-error'), f.ok ? '' : 'Not receiving updates from the broker: ' + f.error);
  });
})();
