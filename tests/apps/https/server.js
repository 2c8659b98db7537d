// One app, two listeners: HTTPS on PORT (test-only self-signed cert in this folder) and plain
// HTTP on the Unix socket SOCKET_PATH (as apps behind a local nginx do).
const fs = require('fs');
const https = require('https');
const http = require('http');
const net = require('net');
const path = require('path');
const express = require('express');

const app = express();
app.get('/', (req, res) => res.json({ pid: process.pid, app: 'https', secure: req.secure }));

const tls = {
  key: fs.readFileSync(path.join(__dirname, 'test-key.pem')),
  cert: fs.readFileSync(path.join(__dirname, 'test-cert.pem')),
};
const port = Number(process.env.PORT || 3443);
https.createServer(tls, app).listen(port, '127.0.0.1', () => console.log(`https on ${port}`));
if (process.env.SOCKET_PATH) {
  const sock = process.env.SOCKET_PATH;
  const server = http.createServer(app);
  // A process stopped by a signal leaves its socket file behind (Node unlinks it only on
  // server.close()): if nobody answers on the path, the file is stale; remove it and retry.
  // (Unlinking unconditionally would delete a live socket: another cluster worker's.)
  server.on('error', (err) => {
    if (err.code !== 'EADDRINUSE') throw err;
    const probe = net.connect(sock);
    probe.on('connect', () => {
      throw err;
    });
    probe.on('error', () => {
      fs.rmSync(sock, { force: true });
      server.listen(sock);
    });
  });
  server.listen(sock, () => console.log(`http on ${sock}`));
}
