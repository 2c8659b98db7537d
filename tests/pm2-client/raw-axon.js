#!/usr/bin/env node
// A raw client of PM2's daemon RPC (axon req/rep over AMP on `<home>/rpc.sock`), without the
// pm2 package: a request is the frame [j:{type: 'call', method, args}, s:<id>], the answer
// [j:{args: [...]} or {error, stack}, s:<id>]; [j:{type: 'methods'}, s:<id>] lists the methods.
//
//   node raw-axon.js [--home DIR] --call METHOD [ARGS_JSON]   one call, prints the answer
//   node raw-axon.js [--home DIR] --bench N [METHOD]          N sequential round trips
//                                                             (default getMonitorData):
//                                                             {method, n, median_us, p99_us, ...}
//   node raw-axon.js [--home DIR] --bad [--strict]            malformed input, one case per
//                                                             connection, each followed by a
//                                                             ping on a new connection
//
// The home defaults to $PM2_HOME. --bad prints one JSON line per case:
// {case, outcome: reply|closed|silent, reply?, ms, ping_after: {ok, ...}} and a summary.
// Without --strict it only records (exit 0 unless it cannot connect at all); with --strict it
// exits 1 unless every case got an answer or a closed connection (never silence) and the daemon
// answered a ping after every case, and the two answers axon-rpc defines are as PM2 gives them
// (unknown method, methods).
'use strict';

const net = require('net');
const path = require('path');
const { encode, Parser } = require('./amp');

const argv = process.argv.slice(2);
function opt(name) {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}
const home = opt('--home') || process.env.PM2_HOME;
if (!home) {
  console.error('raw-axon: give --home DIR or set PM2_HOME');
  process.exit(2);
}
const SOCK = path.join(home, 'rpc.sock');
const CASE_TIMEOUT = Number(process.env.RAW_AXON_TIMEOUT_MS || 3000);

/** One connection: frames as they come, and whether the peer closed. */
function connect() {
  return new Promise((resolve, reject) => {
    const sock = net.connect(SOCK);
    const parser = new Parser();
    const c = { sock, frames: [], closed: false, waiters: [] };
    const wake = () => { for (const w of c.waiters.splice(0)) w(); };
    sock.on('data', (chunk) => {
      for (const f of parser.push(chunk)) c.frames.push(f);
      wake();
    });
    sock.on('close', () => { c.closed = true; wake(); });
    sock.on('error', (e) => { c.error = e.code || e.message; });
    sock.once('connect', () => resolve(c));
    sock.once('error', reject);
  });
}

/** The next frame, or 'closed', or 'silent' after `ms`. */
function next(c, ms = CASE_TIMEOUT) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { done(); resolve({ outcome: 'silent' }); }, ms);
    const check = () => {
      if (c.frames.length > 0) { clearTimeout(timer); done(); resolve({ outcome: 'reply', frame: c.frames.shift() }); return true; }
      if (c.closed) { clearTimeout(timer); done(); resolve({ outcome: 'closed' }); return true; }
      return false;
    };
    const waiter = () => { if (!check()) c.waiters.push(waiter); };
    const done = () => { const i = c.waiters.indexOf(waiter); if (i !== -1) c.waiters.splice(i, 1); };
    waiter();
  });
}

let ids = 0;
const callFrame = (method, args, version = 1) => encode([{ type: 'call', method, args }, `raw:${ids++}`], version);

async function call(method, args) {
  const c = await connect();
  c.sock.write(callFrame(method, args));
  const r = await next(c);
  c.sock.destroy();
  return r;
}

async function pingAfter() {
  try {
    const r = await call('ping', [{}]);
    const body = r.frame && r.frame.args[0];
    const ok = r.outcome === 'reply' && body && Array.isArray(body.args) && body.args[0] && body.args[0].msg === 'pong';
    return ok ? { ok, outcome: r.outcome, reply: body } :
      { ok: false, outcome: r.outcome, reply: body, frame: r.frame && { version: r.frame.version, argc: r.frame.args.length, head_hex: r.frame.head } };
  } catch (e) {
    return { ok: false, error: e.code || e.message };
  }
}

const bad = [
  {
    name: 'declared length larger than the data, then close',
    async run(c) {
      const f = Buffer.alloc(1 + 4 + 10);
      f[0] = 0x12;
      f.writeUInt32BE(1000, 1);
      f.write('j:{"type":', 5);
      c.sock.write(f);
      const early = await next(c, 300);
      if (early.outcome !== 'silent') return early;
      c.sock.end();
      const r = await next(c);
      // Nothing can come back for a frame that never completed; what matters is that the
      // daemon lets go of the connection once this side has closed it.
      return r.outcome === 'silent' ? { outcome: 'silent', note: 'half-closed by us; the daemon kept its side open' } : { ...r, note: 'half-closed by us first' };
    },
    strictOk: (r) => r.outcome === 'closed',
  },
  {
    name: 'header version 2',
    async run(c) {
      c.sock.write(callFrame('ping', [{}], 2));
      return next(c);
    },
    strictOk: (r) => r.outcome !== 'silent',
  },
  {
    name: 'header argc 0, then a ping on the same connection',
    async run(c) {
      c.sock.write(Buffer.from([0x10]));
      c.sock.write(callFrame('ping', [{}]));
      return next(c);
    },
    strictOk: (r) => r.outcome !== 'silent',
  },
  {
    name: 'unknown method',
    async run(c) {
      c.sock.write(callFrame('noSuchMethod', [{}]));
      return next(c);
    },
    strictOk: (r) => r.outcome === 'reply' && r.frame.args[0] && r.frame.args[0].error === 'method "noSuchMethod" does not exist',
  },
  {
    name: 'call without args',
    async run(c) {
      c.sock.write(encode([{ type: 'call', method: 'ping' }, `raw:${ids++}`]));
      return next(c);
    },
    strictOk: (r) => r.outcome === 'closed' || (r.outcome === 'reply' && r.frame.args[0] && typeof r.frame.args[0].error === 'string'),
  },
  {
    name: 'methods discovery',
    async run(c) {
      c.sock.write(encode([{ type: 'methods' }, `raw:${ids++}`]));
      return next(c);
    },
    strictOk: (r) => r.outcome === 'reply' && r.frame.args[0] && typeof r.frame.args[0].methods === 'object' &&
      r.frame.args[0].methods !== null && 'ping' in r.frame.args[0].methods,
  },
  {
    // Last: PM2's daemon throws on it (see the capture notes).
    name: 'j: argument that is not JSON',
    async run(c) {
      c.sock.write(encode([Buffer.from('j:{"type":"call","method":'), `raw:${ids++}`]));
      return next(c);
    },
    strictOk: (r) => r.outcome === 'closed' || (r.outcome === 'reply' && r.frame.args[0] && typeof r.frame.args[0].error === 'string'),
  },
];

function brief(r) {
  const out = { outcome: r.outcome };
  if (r.frame) {
    const body = r.frame.args[0];
    out.reply = body && body.methods ? { methods: Object.keys(body.methods).length + ' methods', ping: body.methods.ping } :
      body && body.stack ? { error: body.error, stack: String(body.stack).split('\n')[0] } : body;
    out.id = r.frame.args[1];
    out.version = r.frame.version;
    if (r.frame.version !== 1 || r.frame.args.length !== 2) out.head_hex = r.frame.head;
  }
  if (r.note) out.note = r.note;
  return out;
}

async function runBad(strict) {
  const first = await pingAfter();
  if (!first.ok) {
    console.log(JSON.stringify({ case: 'ping before', ok: false, ...first }));
    process.exitCode = 1;
    return;
  }
  const failures = [];
  for (const b of bad) {
    const t0 = Date.now();
    let r;
    try {
      const c = await connect();
      r = await b.run(c);
      c.sock.destroy();
    } catch (e) {
      r = { outcome: 'connect failed', error: e.code || e.message };
    }
    const ms = Date.now() - t0;
    const ping = await pingAfter();
    const ok = b.strictOk(r) && ping.ok;
    if (!ok) failures.push(b.name);
    console.log(JSON.stringify({ case: b.name, ...brief(r), ms, ping_after: ping, strict_ok: ok }));
  }
  console.log(JSON.stringify({ summary: true, cases: bad.length, not_as_expected: failures }));
  if (strict && failures.length > 0) process.exitCode = 1;
}

async function runBench(n, method) {
  const c = await connect();
  const times = [];
  for (let i = 0; i < n + 5; i++) {
    const t0 = process.hrtime.bigint();
    c.sock.write(callFrame(method, [{}]));
    const r = await next(c, 10000);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (r.outcome !== 'reply' || !r.frame.args[0] || 'error' in r.frame.args[0]) {
      console.log(JSON.stringify({ method, error: brief(r) }));
      process.exitCode = 1;
      c.sock.destroy();
      return;
    }
    if (i >= 5) times.push(us);
  }
  c.sock.end();
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(JSON.stringify({
    method, n, median_us: Math.round(at(0.5)), p99_us: Math.round(at(0.99)),
    mean_us: Math.round(mean), min_us: Math.round(times[0]), max_us: Math.round(times[times.length - 1]),
  }));
}

async function main() {
  if (argv.includes('--bad')) return runBad(argv.includes('--strict'));
  if (argv.includes('--bench')) {
    const n = Number(opt('--bench'));
    const i = argv.indexOf('--bench');
    const method = argv[i + 2] && !argv[i + 2].startsWith('--') ? argv[i + 2] : 'getMonitorData';
    if (!(n > 0)) throw new Error('--bench N: N must be a positive number');
    return runBench(n, method);
  }
  const method = opt('--call');
  if (method) {
    const raw = argv[argv.indexOf('--call') + 2];
    const r = await call(method, raw ? JSON.parse(raw) : [{}]);
    console.log(JSON.stringify(brief(r)));
    if (r.outcome !== 'reply') process.exitCode = 1;
    return;
  }
  console.error('raw-axon: give --call METHOD [ARGS_JSON], --bench N [METHOD] or --bad [--strict]');
  process.exitCode = 2;
}

main().catch((e) => {
  console.log(JSON.stringify({ error: e.code || e.message }));
  process.exitCode = 1;
});
