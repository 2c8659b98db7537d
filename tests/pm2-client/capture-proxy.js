#!/usr/bin/env node
// A recording proxy between a PM2 client and a daemon, for finding out what goes over the wire:
//
//   node capture-proxy.js <listen-dir> <upstream-rpc.sock> <upstream-pub.sock> <log.jsonl>
//
// listens on <listen-dir>/rpc.sock and <listen-dir>/pub.sock, forwards every connection to the
// upstream sockets unchanged, and appends every AMP frame, decoded, to the log as one JSON line
// {t, chan: rpc|pub, conn, dir: c2s|s2c, version, args}. Prints `ready` once both are bound;
// stops on SIGTERM/SIGINT. To put it in front of real PM2, start PM2's daemon with
// PM2_DAEMON_RPC_PORT=<dir>/real-rpc.sock PM2_DAEMON_PUB_PORT=<dir>/real-pub.sock (PM2 reads
// these from the environment) and point the client at <dir> as PM2_HOME.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { Parser } = require('./amp');

const [dir, upRpc, upPub, logFile] = process.argv.slice(2);
if (!logFile) {
  console.error('usage: capture-proxy.js <listen-dir> <upstream-rpc.sock> <upstream-pub.sock> <log.jsonl>');
  process.exit(2);
}

const log = fs.openSync(logFile, 'a');
let conns = 0;

function record(entry) {
  fs.writeSync(log, JSON.stringify({ t: Date.now(), ...entry }) + '\n');
}

function serve(chan, upstream) {
  const file = path.join(dir, `${chan}.sock`);
  try { fs.unlinkSync(file); } catch (e) { /* not there */ }
  const server = net.createServer((client) => {
    const conn = ++conns;
    record({ chan, conn, event: 'connect' });
    const up = net.connect(upstream);
    const parsers = { c2s: new Parser(), s2c: new Parser() };
    const relay = (from, to, dirn) => {
      from.on('data', (chunk) => {
        for (const f of parsers[dirn].push(chunk)) record({ chan, conn, dir: dirn, version: f.version, args: f.args });
        to.write(chunk);
      });
      // CAPTURE_DELAY_CLOSE_MS: pass the daemon's closing on to the client that much later (to
      // see what a client does when the daemon lets it close first).
      const delay = dirn === 's2c' ? Number(process.env.CAPTURE_DELAY_CLOSE_MS || 0) : 0;
      const later = (f) => (delay > 0 ? setTimeout(f, delay) : f());
      from.on('end', () => { record({ chan, conn, dir: dirn, event: 'end' }); later(() => to.end()); });
      from.on('error', (e) => { record({ chan, conn, dir: dirn, event: 'error', error: e.code || e.message }); later(() => to.destroy()); });
      from.on('close', () => later(() => to.destroy()));
    };
    relay(client, up, 'c2s');
    relay(up, client, 's2c');
  });
  return new Promise((resolve) => server.listen(file, () => resolve(server)));
}

Promise.all([serve('rpc', upRpc), serve('pub', upPub)]).then((servers) => {
  process.stdout.write('ready\n');
  const stop = () => { for (const s of servers) s.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
});
