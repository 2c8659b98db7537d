// Demo: a hello-world HTTP server. In cluster mode every worker shares PORT.
const http = require('http');
const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => {
    res.end(`hello from worker ${process.env.NODE_APP_INSTANCE} (pid ${process.pid})\n`);
  })
  .listen(port, '127.0.0.1', () => console.log(`worker ${process.env.NODE_APP_INSTANCE} listening on ${port}`));
process.on('SIGINT', () => process.exit(0));
