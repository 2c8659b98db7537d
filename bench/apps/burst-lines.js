// Writes BURST_LINES (default 200000) numbered lines of exactly 100 bytes to stdout, one
// console.log (so one write() on the pipe) per line, as most apps log; then stays idle.
const total = Number(process.env.BURST_LINES || 200000);
const pad = 'x'.repeat(100 - 9 - 1); // "NNNNNNNN " + pad + "\n" = 100 bytes
for (let i = 0; i < total; i++) console.log(String(i).padStart(8, '0') + ' ' + pad);
setInterval(() => {}, 1 << 30);
