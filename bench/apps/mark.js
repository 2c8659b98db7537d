// Writes "pid start-time-ms" to $MARK as soon as it runs (the bench's "new process online"),
// then idles.
require('fs').writeFileSync(process.env.MARK, process.pid + ' ' + Date.now());
setInterval(() => {}, 1 << 30);
