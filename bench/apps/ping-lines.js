// Every PING_MS (default 100) ms, one line holding the time it is written (ms since the epoch,
// to the µs), then idle in between: a quiet app's single line, for the log latency figure.
const every = Number(process.env.PING_MS || 100);
let n = 0;
setInterval(() => {
  console.log(`ping ${n++} ${(performance.timeOrigin + performance.now()).toFixed(3)}`);
}, every);
