// hello.js for socket passing: serves on the socket pmr passes on fd 3 (LISTEN_FDS, the
// systemd convention), so a fork-mode reload hands the same socket to the new process.
const http = require('http');
if (process.env.LISTEN_FDS !== '1') { console.error('LISTEN_FDS is not set'); process.exit(2); }
const pid = String(process.pid);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-pid': pid });
  res.end('hello world\n');
}).listen({ fd: 3 });
