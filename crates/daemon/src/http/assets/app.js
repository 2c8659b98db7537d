// pmr's web dashboard: the process list with live sparklines, state changes, one app's logs,
// its custom metrics and actions. Plain DOM code, no build step. Every string that comes from an
// app (names, log text, metric names, action names) goes through textContent, never through
// an HTML parser (tests/it/dashboard.rs checks that no such call is here).
'use strict';
(() => {
  const TOKEN_KEY = 'pmr-token';
  const SAMPLES = 60; // sparkline length: 2 minutes of the 2 s `monit` events
  const LOG_LINES = 500; // log lines kept in the page
  const REFRESH_MS = 5000; // full list (custom metrics, new apps) while the page is visible

  // The token comes in the fragment (never sent to the server nor logged); keep it for this
  // tab only and take it out of the address bar, the history and any bookmark made later.
  function takeToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      let t = m[1];
      try {
        t = decodeURIComponent(t);
      } catch (_) {
        // a malformed escape: the server will refuse the token as it is
      }
      sessionStorage.setItem(TOKEN_KEY, t);
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }
  const token = takeToken();
  // A new token pasted into this tab's address bar changes only the fragment: start over.
  window.addEventListener('hashchange', () => {
    if (/(?:^#|&)token=/.test(location.hash)) {
      takeToken();
      location.reload();
    }
  });

  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // ---- talking to the daemon ------------------------------------------------------------------

  class AuthError extends Error {}

  function headers(json) {
    const h = {};
    if (token) h.Authorization = 'Bearer ' + token;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  async function api(method, path, body) {
    const r = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      // an error page that is not JSON: the status says enough
    }
    if (r.status === 401) {
      const msg = (data && data.error) || 'unauthorized';
      showAuth(msg);
      throw new AuthError(msg);
    }
    if (!r.ok) throw new Error((data && data.error) || `HTTP ${r.status}`);
    return data;
  }

  let stopped = false; // after a 401: nothing more is sent

  function showAuth(detail) {
    stopped = true;
    if (sse) sse.abort();
    // A refused token is useless: forget it so that a fresh URL is needed.
    if (token && detail !== 'missing bearer token') sessionStorage.removeItem(TOKEN_KEY);
    $('main').hidden = true;
    $('auth-error').hidden = false;
    $('auth-detail').textContent = token ? `The server said: ${detail}.` : `No token given (the server said: ${detail}).`;
    setConn('not authorized');
  }

  function setConn(text) {
    $('conn').textContent = text;
  }

  function say(text) {
    $('message').textContent = text;
  }

  // ---- the process table ----------------------------------------------------------------------

  // pm_id -> { p: jlist entry, cpu: [], mem: [], row, cells }
  const procs = new Map();
  let selected = null; // pm_id whose details and logs are shown

  const ACTIONS = [
    ['restart', 'restart'],
    ['reload', 'reload'],
    ['stop', 'stop'],
    ['start', 'start'],
    ['delete', 'delete'],
  ];

  function fmtMem(b) {
    if (!(b > 0)) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) {
      b /= 1024;
      i++;
    }
    return `${b.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }

  function fmtCpu(c) {
    return `${Number(c || 0).toFixed(1)}%`;
  }

  // PM2's short uptime: 45s, 12m, 3h, 2D.
  function fmtUptime(p) {
    const env = p.pm2_env || {};
    if (env.status !== 'online' || !env.pm_uptime) return '0';
    const s = Math.max(0, Math.floor((Date.now() - env.pm_uptime) / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h`;
    return `${Math.floor(s / 86400)}D`;
  }

  function sparkline(label) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${SAMPLES - 1} 20`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const line = document.createElementNS(SVG, 'polyline');
    svg.append(line);
    return svg;
  }

  // Scaled to the largest sample, with a floor so that an idle app draws a flat line at the
  // bottom instead of magnified noise.
  function drawSpark(svg, samples, floor) {
    const max = Math.max(floor, ...samples);
    const off = SAMPLES - samples.length;
    const pts = samples.map((v, i) => `${off + i},${(20 - (v / max) * 19 - 0.5).toFixed(2)}`);
    svg.firstChild.setAttribute('points', pts.join(' '));
  }

  function pushSample(list, v) {
    list.push(Number(v) || 0);
    if (list.length > SAMPLES) list.splice(0, list.length - SAMPLES);
  }

  function makeRow(id) {
    const cells = {};
    const td = (key, ...kids) => (cells[key] = el('td', { 'data-testid': key }, ...kids));
    const nameBtn = el('button', { class: 'link', 'aria-pressed': 'false', onclick: () => select(id) });
    cells.nameBtn = nameBtn;
    cells.cpuText = el('span', { class: 'num' });
    cells.memText = el('span', { class: 'num' });
    cells.cpuSpark = sparkline('CPU, last two minutes');
    cells.memSpark = sparkline('memory, last two minutes');
    const acts = el('td', { class: 'actions' });
    const button = (testid, text, verb, onclick) => {
      const b = el('button', { 'data-testid': testid, text, onclick });
      b.dataset.verb = verb;
      return b;
    };
    for (const [action, label] of ACTIONS) {
      acts.append(button(`act-${action}`, label, action, () => act(id, action)));
    }
    acts.append(button('act-scale-down', '−1', 'one instance less of', () => scale(id, '-1')));
    acts.append(button('act-scale-up', '+1', 'one instance more of', () => scale(id, '+1')));
    cells.acts = acts;
    const row = el(
      'tr',
      { 'data-testid': 'app-row', 'data-id': String(id) },
      td('name', nameBtn),
      td('id'),
      td('status'),
      td('pid'),
      td('cpu', cells.cpuText, cells.cpuSpark),
      td('memory', cells.memText, cells.memSpark),
      td('restarts'),
      td('uptime'),
      acts
    );
    return { row, cells };
  }

  function updateRow(e) {
    const p = e.p;
    const env = p.pm2_env || {};
    const c = e.cells;
    e.row.dataset.name = p.name;
    e.row.dataset.status = env.status || '';
    if (c.nameBtn.textContent !== p.name) {
      c.nameBtn.textContent = p.name;
      c.nameBtn.setAttribute('aria-label', `${p.name} (id ${p.pm_id}): show logs and metrics`);
      for (const b of c.acts.querySelectorAll('button')) {
        b.setAttribute('aria-label', `${b.dataset.verb} ${p.name} (id ${p.pm_id})`);
      }
    }
    c.id.textContent = String(p.pm_id);
    c.status.textContent = env.status || '?';
    c.pid.textContent = String(p.pid || 0);
    c.cpuText.textContent = fmtCpu(p.monit && p.monit.cpu);
    c.memText.textContent = fmtMem(p.monit && p.monit.memory);
    c.restarts.textContent = String(env.restart_time || 0);
    c.uptime.textContent = fmtUptime(p);
    drawSpark(c.cpuSpark, e.cpu, 5);
    drawSpark(c.memSpark, e.mem, 1 << 20);
  }

  function setList(list) {
    const seen = new Set();
    for (const p of list) {
      seen.add(p.pm_id);
      let e = procs.get(p.pm_id);
      if (!e) {
        e = { p, cpu: [], mem: [], ...makeRow(p.pm_id) };
        procs.set(p.pm_id, e);
        // The list's figures are the first sample; `monit` events add one every 2 s.
        pushSample(e.cpu, p.monit && p.monit.cpu);
        pushSample(e.mem, p.monit && p.monit.memory);
      }
      e.p = p;
      updateRow(e);
    }
    for (const id of [...procs.keys()]) if (!seen.has(id)) removeProc(id);
    // Keep rows in pm_id order; moving a row that is already in place is a no-op.
    const body = $('app-rows');
    [...procs.keys()].sort((a, b) => a - b).forEach((id) => body.append(procs.get(id).row));
    $('empty').hidden = procs.size > 0;
    if (selected !== null) showDetail();
  }

  function removeProc(id) {
    const e = procs.get(id);
    if (!e) return;
    e.row.remove();
    procs.delete(id);
    if (selected === id) {
      selected = null;
      $('detail').hidden = true;
      restartStream();
    }
    $('empty').hidden = procs.size > 0;
  }

  // One list request at a time; a call during one asks for one more read after it (the one in
  // flight may predate what the caller wants to see, e.g. an action's effect).
  let refreshing = null;
  let again = false;
  function refresh() {
    if (stopped) return Promise.resolve();
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        try {
          setList(await api('GET', '/api/apps'));
          $('main').hidden = false;
        } catch (err) {
          if (!(err instanceof AuthError)) say(`Could not read the process list: ${err.message}`);
        }
      } while (again && !stopped);
      refreshing = null;
    })();
    return refreshing;
  }

  let soon = null;
  function refreshSoon() {
    if (soon) return;
    soon = setTimeout(() => {
      soon = null;
      refresh();
    }, 400);
  }

  // ---- actions --------------------------------------------------------------------------------

  function label(id) {
    const e = procs.get(id);
    return e ? `${e.p.name} (id ${id})` : `id ${id}`;
  }

  async function act(id, action) {
    const what = label(id);
    if (action === 'delete' && !confirm(`Delete ${what}? It is stopped and removed from the list.`)) return;
    say(`${action} ${what}…`);
    try {
      await api('POST', `/api/apps/${encodeURIComponent(id)}/${action}`, {});
      say(`${action} ${what}: done`);
    } catch (err) {
      if (!(err instanceof AuthError)) say(`${action} ${what}: ${err.message}`);
    }
    refresh();
  }

  async function scale(id, by) {
    const e = procs.get(id);
    if (!e) return;
    const name = e.p.name;
    say(`scale ${name} ${by}…`);
    try {
      await api('POST', `/api/apps/${encodeURIComponent(name)}/scale`, { instances: by });
      say(`scale ${name} ${by}: done`);
    } catch (err) {
      if (!(err instanceof AuthError)) say(`scale ${name} ${by}: ${err.message}`);
    }
    refresh();
  }

  async function trigger(id, action) {
    const out = $('trigger-result');
    const param = $('trigger-param').value;
    const body = { action };
    if (param !== '') body.param = param;
    out.textContent = `${action}…`;
    try {
      const r = await api('POST', `/api/apps/${encodeURIComponent(id)}/trigger`, body);
      out.textContent = (r.replies || [])
        .map((x) => `${x.pm_id}: ${x.ok ? JSON.stringify(x.data) : 'error: ' + x.error}`)
        .join('\n');
    } catch (err) {
      if (!(err instanceof AuthError)) out.textContent = `${action}: ${err.message}`;
    }
  }

  // ---- details: metrics, actions, logs --------------------------------------------------------

  function select(id) {
    if (selected === id) return;
    selected = id;
    for (const [pid, e] of procs) e.cells.nameBtn.setAttribute('aria-pressed', String(pid === id));
    $('logs').replaceChildren();
    $('trigger-result').textContent = '';
    showDetail();
    $('detail').hidden = false;
    loadLogTail(id);
  }

  function showDetail() {
    const e = procs.get(selected);
    if (!e) return;
    const env = e.p.pm2_env || {};
    $('detail-title').textContent = `${e.p.name} (id ${e.p.pm_id})`;
    const rows = Object.entries(env.axm_monitor || {}).map(([k, m]) => {
      let v = m !== null && typeof m === 'object' ? m.value : m;
      if (v !== null && typeof v === 'object') v = JSON.stringify(v);
      const unit = m !== null && typeof m === 'object' && m.unit ? ` ${m.unit}` : '';
      return el('tr', { 'data-testid': 'metric' }, el('th', { scope: 'row', text: k }), el('td', { text: `${v}${unit}` }));
    });
    $('metrics').replaceChildren(...rows);
    $('no-metrics').hidden = rows.length > 0;
    const names = (env.axm_actions || []).map((a) => a && a.action_name).filter((n) => typeof n === 'string');
    const known = [...$('triggers').children].map((b) => b.dataset.action);
    if (known.join('\0') !== names.join('\0')) {
      $('triggers').replaceChildren(
        ...names.map((n) => {
          const b = el('button', { 'data-testid': 'trigger', text: n, onclick: () => trigger(selected, n) });
          b.dataset.action = n;
          return b;
        })
      );
    }
    $('no-actions').hidden = names.length > 0;
  }

  async function loadLogTail(id) {
    $('log-state').textContent = '(loading)';
    try {
      const r = await api('GET', `/api/apps/${encodeURIComponent(id)}/logs?lines=100`);
      if (selected !== id) return;
      for (const l of r.lines || []) addLog(l);
    } catch (err) {
      if (!(err instanceof AuthError)) addLog({ stream: 'err', text: `(could not read the logs: ${err.message})` });
    }
    if (selected !== id) return;
    // Live lines only after the tail, so that the pane stays in order.
    restartStream();
  }

  function addLog(l) {
    const box = $('logs');
    const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const line = el('div', { class: l.stream === 'err' ? 'line err' : 'line', 'data-testid': 'log-line' });
    if (l.stream === 'err') line.append(el('span', { class: 'tag', text: 'err ' }));
    line.append(document.createTextNode(l.text));
    box.append(line);
    while (box.childElementCount > LOG_LINES) box.firstElementChild.remove();
    if (stick) box.scrollTop = box.scrollHeight;
  }

  // ---- the event stream -----------------------------------------------------------------------

  let sse = null; // AbortController of the open stream
  let backoff = 500;

  function restartStream() {
    if (sse) sse.abort();
    if (!stopped) stream();
  }

  // EventSource cannot send an Authorization header, so the stream is read with fetch.
  async function stream() {
    const ctl = new AbortController();
    sse = ctl;
    const logsOf = selected;
    const q = logsOf !== null ? `?logs=${encodeURIComponent(logsOf)}` : '';
    document.body.dataset.stream = 'connecting';
    try {
      const r = await fetch('/api/events' + q, { headers: headers(false), signal: ctl.signal, cache: 'no-store' });
      if (r.status === 401) {
        let d = null;
        try {
          d = await r.json();
        } catch (_) {
          // not JSON
        }
        showAuth((d && d.error) || 'unauthorized');
        return;
      }
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      setConn('live');
      backoff = 500;
      document.body.dataset.stream = logsOf !== null ? `live:${logsOf}` : 'live';
      $('log-state').textContent = logsOf !== null ? '(live)' : '';
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          dispatch(block, logsOf);
        }
      }
      throw new Error('stream ended');
    } catch (err) {
      if (ctl.signal.aborted || stopped) return;
      document.body.dataset.stream = 'down';
      setConn(`disconnected (${err.message}); retrying…`);
      $('log-state').textContent = '';
      setTimeout(() => {
        if (sse !== ctl || stopped) return;
        refresh().then(() => {
          if (sse === ctl && !stopped) stream();
        });
      }, backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  function dispatch(block, logsOf) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let d;
    try {
      d = JSON.parse(data.join('\n'));
    } catch (_) {
      return;
    }
    if (event === 'monit') onMonit(d);
    else if (event === 'state') onState(d);
    else if (event === 'log' && d.pm_id === logsOf && selected === logsOf) addLog(d);
    // The daemon drops lines rather than buffer without bound for a slow reader.
    else if (event === 'skipped' && selected === logsOf) addLog({ stream: 'err', text: `(${d.lines} lines skipped)` });
  }

  function onMonit(list) {
    for (const m of Array.isArray(list) ? list : []) {
      const e = procs.get(m.pm_id);
      if (!e) continue;
      e.p.monit = { cpu: m.cpu, memory: m.memory };
      pushSample(e.cpu, m.cpu);
      pushSample(e.mem, m.memory);
      updateRow(e);
    }
  }

  let stateEvents = 0;

  function onState(s) {
    // Counted for the test, which tells a live update from the periodic list read this way.
    document.body.dataset.stateEvents = String(++stateEvents);
    const e = procs.get(s.pm_id);
    if (s.status === 'deleted') {
      removeProc(s.pm_id);
      return;
    }
    if (!e) {
      refreshSoon(); // a new app or instance: the list has what a state event lacks
      return;
    }
    const env = e.p.pm2_env || (e.p.pm2_env = {});
    if (s.status === 'online' && env.status !== 'online' && s.at) env.pm_uptime = s.at;
    env.status = s.status;
    if (s.pid !== undefined) e.p.pid = s.pid;
    if (s.restart_time !== undefined) env.restart_time = s.restart_time;
    updateRow(e);
    refreshSoon();
  }

  // ---- start ----------------------------------------------------------------------------------

  async function main() {
    await refresh();
    if (stopped) return;
    restartStream();
    setInterval(() => {
      if (stopped) return;
      for (const e of procs.values()) e.cells.uptime.textContent = fmtUptime(e.p);
    }, 1000);
    setInterval(() => {
      if (!stopped && !document.hidden) refresh();
    }, REFRESH_MS);
  }

  main();
})();
