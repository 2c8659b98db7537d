// Writes BURST_LINES (default 200000) numbered lines of exactly 100 bytes to stdout as fast as
// it can, then stays idle (so the process manager does not restart it and write them again).
const total = Number(process.env.BURST_LINES || 200000);
const pad = 'x'.repeat(100 - 9 - 1); // "NNNNNNNN " + pad + "\n" = 100 bytes
const batch = 1000;
let i = 0;
function write() {
  while (i < total) {
    let chunk = '';
    const end = Math.min(i + batch, total);
    for (; i < end; i++) chunk += String(i).padStart(8, '0') + ' ' + pad + '\n';
    if (!process.stdout.write(chunk)) { process.stdout.once('drain', write); return; }
  }
}
write();
setInterval(() => {}, 1 << 30);
