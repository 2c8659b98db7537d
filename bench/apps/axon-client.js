// A raw client of PM2's daemon protocol (AMP frames by hand, no `pm2` package), for the
// protocol figures: the same bytes reach PM2 and pmr, and neither side's JSON parsing in the
// `pm2` package is counted.
//   node axon-client.js rtt <home> <n>          n sequential getMonitorData round trips:
//                                                prints {"median_us", "p99_us", "bytes"}
//   node axon-client.js subscribe <home> <k> <ms>  k bus subscribers for ms: prints
//                                                {"messages": [per subscriber]}
const net = require('net');
const path = require('path');
const [mode, home, a, b] = process.argv.slice(2);

// The tests' AMP encoder (one frame of strings and JSON values).
const { encode: frame } = require(path.join(__dirname, '../../tests/pm2-client/amp.js'));

// Calls back with each whole message's byte length. Chunks are kept as they come and only the
// length fields are read across them, so a long message costs no copying here.
function reader(onMessage) {
  let chunks = [];
  let have = 0;
  const byteAt = (i) => {
    for (const c of chunks) {
      if (i < c.length) return c[i];
      i -= c.length;
    }
    return undefined;
  };
  const u32At = (i) => ((byteAt(i) << 24) | (byteAt(i + 1) << 16) | (byteAt(i + 2) << 8) | byteAt(i + 3)) >>> 0;
  // The length of the first whole message, or 0 if it is not all there yet.
  const whole = () => {
    if (have < 1) return 0;
    const argc = byteAt(0) & 0xf;
    let off = 1;
    for (let i = 0; i < argc; i++) {
      if (have < off + 4) return 0;
      off += 4 + u32At(off);
    }
    return have >= off ? off : 0;
  };
  return (chunk) => {
    chunks.push(chunk);
    have += chunk.length;
    for (let n = whole(); n > 0; n = whole()) {
      onMessage(n);
      // Drop the message's bytes.
      let drop = n;
      while (drop > 0) {
        if (chunks[0].length <= drop) {
          drop -= chunks[0].length;
          chunks.shift();
        } else {
          chunks[0] = chunks[0].subarray(drop);
          drop = 0;
        }
      }
      have -= n;
    }
  };
}

if (mode === 'rtt') {
  const n = Number(a);
  const sock = net.connect(path.join(home, 'rpc.sock'));
  const times = [];
  let bytes = 0;
  let t0;
  const send = () => {
    t0 = process.hrtime.bigint();
    sock.write(frame([{ type: 'call', method: 'getMonitorData', args: [{}] }, 'bench:' + times.length]));
  };
  sock.on('connect', send);
  sock.on('data', reader((len) => {
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
    bytes = len;
    if (times.length < n) return send();
    sock.end();
    times.sort((x, y) => x - y);
    const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
    console.log(JSON.stringify({ median_us: q(0.5), p99_us: q(0.99), bytes }));
  }));
} else if (mode === 'subscribe') {
  const k = Number(a);
  const counts = new Array(k).fill(0);
  const socks = [];
  let connected = 0;
  for (let i = 0; i < k; i++) {
    const s = net.connect(path.join(home, 'pub.sock'));
    s.on('connect', () => {
      if (++connected === k) console.log('ready');
    });
    s.on('data', reader(() => counts[i]++));
    socks.push(s);
  }
  setTimeout(() => {
    socks.forEach((s) => s.destroy());
    console.log(JSON.stringify({ messages: counts }));
  }, Number(b));
} else {
  console.error('usage: axon-client.js rtt <home> <n> | subscribe <home> <k> <ms>');
  process.exit(2);
}
