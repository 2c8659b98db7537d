// Plain Node cluster, the reference for pmr's and PM2's cluster mode: a primary forks
// $WORKERS workers of $APP (Node's default scheduling: round-robin through the primary), each
// seeing `node $APP $ARGS` as its command line.
const cluster = require('cluster');
if (cluster.isPrimary) {
  for (let i = 0; i < Number(process.env.WORKERS || 2); i++) cluster.fork();
} else {
  const args = (process.env.ARGS || '').split(' ').filter(Boolean);
  process.argv = [process.argv[0], process.env.APP, ...args];
  require(process.env.APP);
}
