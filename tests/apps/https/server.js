// One app, two listeners: HTTPS on PORT (test-only self-signed cert in this folder) and plain
// HTTP on the Unix socket SOCKET_PATH (as apps behind a local nginx do).
const fs = require('fs');
const https = require('https');
const http = require('http');
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
  // A process stopped by a signal leaves its socket file behind (Node unlinks it only on
  // server.close()): remove a stale one, as any app listening on a path must.
  try {
    fs.unlinkSync(process.env.SOCKET_PATH);
  } catch {}
  http.createServer(app).listen(process.env.SOCKET_PATH, () =>
    console.log(`http on ${process.env.SOCKET_PATH}`));
}
