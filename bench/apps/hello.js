// Hello-world HTTP server on 127.0.0.1:$PORT. The x-pid header lets the suite see which
// process answered (to tell a real cluster from fork instances fighting over one port).
const http = require('http');
const port = Number(process.env.PORT);
if (!port) { console.error('PORT is not set'); process.exit(2); }
const pid = String(process.pid);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-pid': pid });
  res.end('hello world\n');
}).listen(port, '127.0.0.1');
