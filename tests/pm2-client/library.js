#!/usr/bin/env node
// Acceptance script: a program that uses the real `pm2` npm package as a library
// (`require('pm2')`), as third-party tools do, against whatever daemon answers on
// `$PM2_HOME/rpc.sock` and `$PM2_HOME/pub.sock` (PM2's own, or pmr's).
//
//   PM2_MODULE=/path/to/node_modules/pm2 PM2_HOME=/some/home PM2_DISABLE_VERSION_CHECK=1 \
//     node tests/pm2-client/library.js
//
// Knobs: LIB_EXPECT_EXISTING_DAEMON=1 (fail `connect` if the client had to spawn a daemon),
// LIB_STEP_TIMEOUT_MS (one callback or one polled condition; default 20000),
// LIB_WATCHDOG_MS (the whole run; default 60000), LIB_EXIT_GRACE_MS (how long after
// `disconnect` the process may still be alive; default 8000), LIB_ALLOW_PM2_RECONNECT_LOOP=1
// (only for runs against real PM2: on killMe PM2 7.0.4's daemon drops the connections and
// SIGQUITs the client at once; when the drop wins the race, as in most runs, the client's axon
// sockets retry forever and the process never ends by itself; with the knob that is reported and
// the script exits 0 once the grace period is over).
//
// Prints one JSON line per step, {step, ok, detail}, then {summary, passed, failed}; exits 0
// only if every step passed. Every callback must come exactly once; the script ends by itself
// once disconnected (the watchdog is unref'd and only fires if something keeps it alive).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const PM2_MODULE = process.env.PM2_MODULE;
const STEP_TIMEOUT = Number(process.env.LIB_STEP_TIMEOUT_MS || 20000);
const WATCHDOG = Number(process.env.LIB_WATCHDOG_MS || 60000);
const EXPECT_EXISTING = process.env.LIB_EXPECT_EXISTING_DAEMON === '1';
const EXIT_GRACE = Number(process.env.LIB_EXIT_GRACE_MS || 8000);
const ALLOW_RECONNECT_LOOP = process.env.LIB_ALLOW_PM2_RECONNECT_LOOP === '1';

const results = [];
let current = 'start';
let finished = false;

function report(step, ok, detail) {
  results.push({ step, ok: !!ok });
  process.stdout.write(JSON.stringify({ step, ok: !!ok, detail: detail === undefined ? null : detail }) + '\n');
}

// A private directory for the apps, removed at exit.
const appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm2-library-'));
for (const f of fs.readdirSync(path.join(__dirname, 'apps')))
  fs.copyFileSync(path.join(__dirname, 'apps', f), path.join(appDir, f));
const SCRIPT = path.join(appDir, 'echo.js');

process.on('exit', (code) => {
  try { fs.rmSync(appDir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
  const failed = results.filter((r) => !r.ok).map((r) => r.step);
  if (!finished)
    failed.push(`finished (stopped during ${current})`);
  const passed = results.filter((r) => r.ok).length;
  process.stdout.write(JSON.stringify({ summary: true, passed, failed }) + '\n');
  if (failed.length > 0 && code === 0) process.exitCode = 1;
});

function fatal(step, detail) {
  report(step, false, detail);
  process.exit(1);
}

setTimeout(() => fatal('watchdog', `the run took more than ${WATCHDOG} ms (during ${current})`), WATCHDOG).unref();

if (!PM2_MODULE) fatal('setup', 'PM2_MODULE (the path of node_modules/pm2) is not set');
if (!process.env.PM2_HOME) fatal('setup', 'PM2_HOME is not set');
// The client resolves scripts and the apps' cwd from its own cwd: make that the private dir.
process.chdir(appDir);
const pm2 = require(PM2_MODULE);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Calls `invoke(cb)`; resolves with the callback's arguments. A second call of the callback
 * is a failure of its own; no call within STEP_TIMEOUT ends the run. */
function cb(step, invoke) {
  current = step;
  return new Promise((resolve) => {
    let calls = 0;
    const timer = setTimeout(() => fatal(step, `no callback within ${STEP_TIMEOUT} ms`), STEP_TIMEOUT);
    invoke((...args) => {
      calls += 1;
      if (calls === 1) {
        clearTimeout(timer);
        resolve(args);
      } else {
        report(`${step} (callback called ${calls} times)`, false, args.map(show));
      }
    });
  });
}

function show(v) {
  if (v instanceof Error) return { error: v.message };
  return v;
}

/** Polls `probe()` (an async function returning {ok, detail}) until ok or STEP_TIMEOUT. */
async function poll(what, probe) {
  const deadline = Date.now() + STEP_TIMEOUT;
  for (;;) {
    const r = await probe();
    if (r.ok) return r;
    if (Date.now() > deadline)
      return { ok: false, detail: { timeout: `${what}: not within ${STEP_TIMEOUT} ms`, last: r.detail } };
    await sleep(100);
  }
}

async function list(step) {
  const [err, procs] = await cb(step, (k) => pm2.list(k));
  if (err) throw new Error(`${step}: ${err.message || err}`);
  return procs;
}

async function byName(step, name) {
  return (await list(step)).filter((p) => p.name === name);
}

/** What PM2 clients read from a process of `list`/`describe`; [] when all is well. */
function shapeProblems(p, name) {
  const bad = [];
  const e = p.pm2_env || {};
  const isInt = Number.isInteger;
  if (p.name !== name) bad.push(`name ${p.name}`);
  if (!isInt(p.pm_id)) bad.push(`pm_id ${p.pm_id}`);
  if (typeof p.pid !== 'number') bad.push(`pid ${p.pid}`);
  if (typeof p.pm2_env !== 'object') return bad.concat('no pm2_env');
  if (e.name !== name) bad.push(`pm2_env.name ${e.name}`);
  if (e.pm_id !== p.pm_id) bad.push(`pm2_env.pm_id ${e.pm_id}`);
  if (typeof e.status !== 'string') bad.push(`pm2_env.status ${e.status}`);
  if (e.pm_exec_path !== SCRIPT) bad.push(`pm2_env.pm_exec_path ${e.pm_exec_path}`);
  if (!isInt(e.restart_time)) bad.push(`pm2_env.restart_time ${e.restart_time}`);
  if (!isInt(e.unstable_restarts)) bad.push(`pm2_env.unstable_restarts ${e.unstable_restarts}`);
  if (typeof e.created_at !== 'number') bad.push(`pm2_env.created_at ${e.created_at}`);
  if (!['fork_mode', 'cluster_mode'].includes(e.exec_mode)) bad.push(`pm2_env.exec_mode ${e.exec_mode}`);
  if (typeof e.namespace !== 'string') bad.push(`pm2_env.namespace ${e.namespace}`);
  if (typeof e.env !== 'object' || e.env === null) bad.push('pm2_env.env');
  if ('versioning' in e && e.versioning !== null && typeof e.versioning !== 'object')
    bad.push(`pm2_env.versioning ${e.versioning}`);
  if (!p.monit || typeof p.monit.memory !== 'number' || typeof p.monit.cpu !== 'number')
    bad.push(`monit ${JSON.stringify(p.monit)}`);
  if (e.status === 'online') {
    if (!(p.pid > 0)) bad.push(`online with pid ${p.pid}`);
    if (typeof e.pm_uptime !== 'number') bad.push(`pm2_env.pm_uptime ${e.pm_uptime}`);
  }
  return bad;
}

/** A pm_id on the bus: a number, or PM2's `_old_<id>` for the outgoing worker of a cluster reload. */
function isPmId(id) {
  return Number.isInteger(id) || /^_old_\d+$/.test(id);
}

/** What restart/reload/stop/delete answer (PM2's `_operate` list), without the env maps. */
function opReply(ret) {
  if (!Array.isArray(ret)) return ret;
  return ret.map((x) => ({ name: x.name, pm_id: x.pm_id, status: x.status, restart_time: x.restart_time,
    pm2_env: x.pm2_env ? Object.keys(x.pm2_env) : x.pm2_env }));
}

function brief(p) {
  const e = p.pm2_env || {};
  return { name: p.name, pm_id: p.pm_id, pid: p.pid, status: e.status, restart_time: e.restart_time, exec_mode: e.exec_mode };
}

/** Waits for the one process `name` to satisfy `f` (and to have PM2's shape). */
async function waitProc(step, name, what, f) {
  return poll(`${name} ${what}`, async () => {
    const ps = await byName(step, name);
    if (ps.length !== 1) return { ok: false, detail: `${ps.length} processes named ${name}` };
    const bad = shapeProblems(ps[0], name);
    const ok = f(ps[0]) && bad.length === 0;
    return { ok, detail: ok ? brief(ps[0]) : { proc: brief(ps[0]), shape: bad }, proc: ps[0] };
  });
}

// What the bus delivered, per topic.
const bus = { 'process:event': [], 'log:out': [], 'process:msg': [] };

async function waitBus(topic, what, f) {
  return poll(`${topic} ${what}`, async () => {
    const m = bus[topic].find(f);
    return m ? { ok: true, detail: m } : { ok: false, detail: `${bus[topic].length} ${topic} messages, none ${what}` };
  });
}

function trimEvent(p) {
  const pr = p.process || {};
  return { event: p.event, manually: p.manually, at: p.at, process: { name: pr.name, pm_id: pr.pm_id, status: pr.status } };
}

let sigquits = 0;
process.on('SIGQUIT', () => { sigquits += 1; });

async function main() {
  // connect: the daemon is expected to be running already (pmr's, or a PM2 the caller started).
  {
    const [err, meta] = await cb('connect', (k) => pm2.connect(k));
    const fresh = meta && meta.new_pm2_instance;
    report('connect', !err && !(EXPECT_EXISTING && fresh !== false),
      err ? show(err) : { new_pm2_instance: fresh, expected_existing: EXPECT_EXISTING });
  }

  {
    const procs = await list('list');
    const ours = Array.isArray(procs) ? procs.filter((p) => p.name && p.name.startsWith('lib-')) : null;
    report('list', Array.isArray(procs) && ours.length === 0, { count: Array.isArray(procs) ? procs.length : typeof procs });
  }

  {
    const [err, sub] = await cb('launchBus', (k) => pm2.launchBus(k));
    if (!err && sub) {
      for (const topic of Object.keys(bus)) sub.on(topic, (packet) => bus[topic].push(packet));
    }
    report('launchBus', !err && sub && typeof sub.on === 'function', err ? show(err) : null);
  }

  // start with a script path and options: one instance (PM2 makes that cluster mode for node).
  {
    const [err, procs] = await cb('start(script)', (k) => pm2.start(SCRIPT, { name: 'lib-cluster', instances: 1 }, k));
    const r = err ? { ok: false, detail: show(err) } : await waitProc('start(script)', 'lib-cluster', 'online', (p) => p.pm2_env.status === 'online');
    const shaped = Array.isArray(procs) && procs.length === 1 && procs[0].pm2_env && procs[0].pm2_env.name === 'lib-cluster';
    report('start(script)', r.ok && shaped, { reply: Array.isArray(procs) ? procs.map(brief) : procs, now: r.detail });
  }
  {
    const on = await waitBus('process:event', 'online of lib-cluster', (p) => p.event === 'online' && p.process && p.process.name === 'lib-cluster');
    const st = await waitBus('process:event', 'start of lib-cluster (manually)',
      (p) => p.event === 'start' && p.manually === true && p.process && p.process.name === 'lib-cluster');
    report('bus process:event start', on.ok && st.ok, { online: on.ok ? trimEvent(on.detail) : on.detail, start: st.ok ? trimEvent(st.detail) : st.detail });
  }

  // start with a configuration object: args and env must reach the app.
  const conf = { name: 'lib-fork', script: SCRIPT, args: ['--alpha', 'beta'], env: { LIB_VAR: 'hello' } };
  {
    const [err, procs] = await cb('start(config)', (k) => pm2.start(conf, k));
    const r = err ? { ok: false, detail: show(err) } : await waitProc('start(config)', 'lib-fork', 'online', (p) => p.pm2_env.status === 'online');
    let ok = r.ok && Array.isArray(procs) && procs.length === 1 && procs[0].pm2_env && procs[0].pm2_env.name === 'lib-fork';
    const detail = { reply: Array.isArray(procs) ? procs.map(brief) : procs, now: r.detail };
    if (r.proc) {
      const e = r.proc.pm2_env;
      detail.args = e.args;
      detail.LIB_VAR = e.env && e.env.LIB_VAR;
      ok = ok && JSON.stringify(e.args) === JSON.stringify(conf.args) && e.env.LIB_VAR === 'hello';
    }
    report('start(config)', ok, detail);
  }
  {
    const st = await waitBus('process:event', 'start of lib-fork (manually)',
      (p) => p.event === 'start' && p.manually === true && p.process && p.process.name === 'lib-fork');
    report('bus process:event start(config)', st.ok, st.ok ? trimEvent(st.detail) : st.detail);
  }
  {
    const r = await waitBus('log:out', 'from lib-fork with its args and env',
      (p) => p.process && p.process.name === 'lib-fork' && typeof p.data === 'string' &&
        p.data.includes('args=["--alpha","beta"] LIB_VAR=hello'));
    const p = r.detail || {};
    const ok = r.ok && Number.isInteger(p.process.pm_id) && typeof p.at === 'number';
    report('bus log:out', ok, r.ok ? { process: p.process, at: p.at, data: p.data } : r.detail);
  }

  let fork;
  {
    const [err, procs] = await cb('describe', (k) => pm2.describe('lib-fork', k));
    const p = Array.isArray(procs) && procs.length === 1 ? procs[0] : null;
    const bad = p ? shapeProblems(p, 'lib-fork') : ['not exactly one process'];
    const ok = !err && p && bad.length === 0 && p.pm2_env.status === 'online' && p.pm2_env.restart_time === 0 &&
      p.pm2_env.unstable_restarts === 0;
    fork = p;
    report('describe', ok, err ? show(err) : { proc: p && brief(p), shape: bad });
  }
  if (!fork) fatal('describe', 'cannot go on without lib-fork');

  // restart counts (restart_time + 1), gives a new pid, and the bus tells.
  {
    const t0 = Date.now();
    const [err, ret] = await cb('restart', (k) => pm2.restart('lib-fork', k));
    const r = err ? { ok: false, detail: show(err) } : await waitProc('restart', 'lib-fork', 'restarted',
      (p) => p.pm2_env.status === 'online' && p.pm2_env.restart_time === fork.pm2_env.restart_time + 1 && p.pid !== fork.pid);
    const shaped = Array.isArray(ret) && ret.length === 1 && ret[0].name === 'lib-fork' && ret[0].pm_id === fork.pm_id;
    report('restart', r.ok && shaped, { reply: opReply(ret), now: r.detail });
    const ev = await waitBus('process:event', 'restart of lib-fork (manually)',
      (p) => p.event === 'restart' && p.manually === true && p.process && p.process.name === 'lib-fork' && p.at >= t0);
    const on = await waitBus('process:event', 'online of lib-fork after the restart',
      (p) => p.event === 'online' && p.process && p.process.name === 'lib-fork' && p.at >= t0);
    report('bus process:event restart', ev.ok && on.ok, { restart: ev.ok ? trimEvent(ev.detail) : ev.detail, online: on.ok ? trimEvent(on.detail) : on.detail });
  }

  // reload of the cluster-mode app: a new pid, restart_time + 1.
  {
    const before = (await byName('reload', 'lib-cluster'))[0];
    const t0 = Date.now();
    const [err, ret] = await cb('reload', (k) => pm2.reload('lib-cluster', k));
    const r = err || !before ? { ok: false, detail: err ? show(err) : 'lib-cluster is gone' } : await waitProc('reload', 'lib-cluster', 'reloaded',
      (p) => p.pm2_env.status === 'online' && p.pid !== before.pid && p.pm2_env.restart_time === before.pm2_env.restart_time + 1);
    // PM2 answers with the outgoing worker (pm_id `_old_0`, status stopped).
    const shaped = Array.isArray(ret) && ret.length === 1 && ret[0].name === 'lib-cluster';
    report('reload', r.ok && shaped, { reply: opReply(ret), now: r.detail });
    const ev = await waitBus('process:event', 'reload of lib-cluster (manually)',
      (p) => p.event === 'reload' && p.manually === true && p.process && p.process.name === 'lib-cluster' && p.at >= t0);
    const on = await waitBus('process:event', 'online of lib-cluster after the reload',
      (p) => p.event === 'online' && p.process && p.process.name === 'lib-cluster' && p.at >= t0);
    report('bus process:event reload', ev.ok && on.ok, { reload: ev.ok ? trimEvent(ev.detail) : ev.detail, online: on.ok ? trimEvent(on.detail) : on.detail });
  }

  // sendDataToProcessId: the app answers with process.send({type: 'process:msg', data}).
  {
    const id = fork.pm_id;
    const nonce = `n${process.pid}-${Date.now()}`;
    const [err, res] = await cb('sendDataToProcessId', (k) =>
      pm2.sendDataToProcessId(id, { topic: 'process:msg', data: { ping: nonce } }, k));
    report('sendDataToProcessId', !err && res && res.success === true, err ? show(err) : res);
    const r = await waitBus('process:msg', 'answering the ping', (p) => p.data && p.data.reply && p.data.reply.ping === nonce);
    const p = r.detail || {};
    const ok = r.ok && p.process && p.process.name === 'lib-fork' && p.process.pm_id === id && typeof p.at === 'number' &&
      p.data.topic === 'process:msg';
    report('bus process:msg', ok, r.ok ? { process: p.process, at: p.at, data: p.data } : r.detail);
  }

  // stop: status stopped, and the bus says so.
  {
    const t0 = Date.now();
    const [err, ret] = await cb('stop', (k) => pm2.stop('lib-fork', k));
    const r = err ? { ok: false, detail: show(err) } : await waitProc('stop', 'lib-fork', 'stopped', (p) => p.pm2_env.status === 'stopped');
    const shaped = Array.isArray(ret) && ret.length === 1 && ret[0].name === 'lib-fork' && ret[0].status === 'stopped';
    report('stop', r.ok && shaped, { reply: opReply(ret), now: r.detail });
    const ev = await waitBus('process:event', 'stop of lib-fork (manually)',
      (p) => p.event === 'stop' && p.manually === true && p.process && p.process.name === 'lib-fork' && p.at >= t0);
    const ex = await waitBus('process:event', 'exit of lib-fork',
      (p) => p.event === 'exit' && p.process && p.process.name === 'lib-fork' && p.at >= t0);
    report('bus process:event stop', ev.ok && ex.ok, { stop: ev.ok ? trimEvent(ev.detail) : ev.detail, exit: ex.ok ? trimEvent(ex.detail) : ex.detail });
  }

  // delete: both apps gone from the list.
  for (const name of ['lib-fork', 'lib-cluster']) {
    const [err, ret] = await cb(`delete ${name}`, (k) => pm2.delete(name, k));
    const r = err ? { ok: false, detail: show(err) } : await poll(`${name} deleted`, async () => {
      const n = (await byName(`delete ${name}`, name)).length;
      return { ok: n === 0, detail: `${n} left` };
    });
    const shaped = Array.isArray(ret) && ret.length === 1 && ret[0].name === name;
    report(`delete ${name}`, r.ok && shaped, { reply: opReply(ret), now: r.detail });
  }

  // Every process:event has what bus consumers read.
  {
    const bad = bus['process:event'].filter((p) => !(p && typeof p.event === 'string' && typeof p.manually === 'boolean' &&
      typeof p.at === 'number' && p.process && typeof p.process.name === 'string' && isPmId(p.process.pm_id)));
    const seen = bus['process:event'].map((p) => `${p.process && p.process.name}:${p.event}${p.manually ? '(m)' : ''}`);
    report('bus process:event shape', bus['process:event'].length > 0 && bad.length === 0, { seen, bad: bad.slice(0, 3) });
  }

  // killDaemon: the daemon stops the apps, closes, and SIGQUITs this process (PM2's Client waits
  // for that signal, or 3 s).
  {
    const t0 = Date.now();
    const [err, res] = await cb('killDaemon', (k) => pm2.killDaemon(k));
    const ms = Date.now() - t0;
    report('killDaemon', !err && res && res.success === true && sigquits === 1,
      { reply: err ? show(err) : res, sigquit: sigquits, ms });
  }

  {
    const [err] = await cb('disconnect', (k) => pm2.disconnect(k));
    // After killDaemon the sockets are closed already: PM2 answers with an error then.
    report('disconnect', true, err ? show(err) : null);
  }
  current = 'exiting';
  finished = true;
  // Nothing may be left to keep this process alive now (PM2's axon sockets reconnect forever
  // when the daemon closed the connection before the client did).
  setTimeout(() => {
    const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    if (ALLOW_RECONNECT_LOOP) {
      report('exits by itself', true, { tolerated: 'LIB_ALLOW_PM2_RECONNECT_LOOP=1', still_active: left });
      process.exit(0);
    }
    fatal('exits by itself', { after_ms: EXIT_GRACE, still_active: left });
  }, EXIT_GRACE).unref();
}

main().catch((e) => fatal(current, `exception: ${e.stack || e}`));
