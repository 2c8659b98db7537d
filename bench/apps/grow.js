// Grows its memory by GROW_MB_S megabytes a second (default 50), in 100 ms steps of buffers
// filled (so the pages are resident) and kept; stops growing at GROW_MAX_MB (default 400) so a
// test that fails never eats the machine.
const perStep = Number(process.env.GROW_MB_S || 50) / 10;
const max = Number(process.env.GROW_MAX_MB || 400);
const kept = [];
let mb = 0;
setInterval(() => {
  if (mb + perStep > max) return;
  const b = Buffer.alloc(Math.round(perStep * 1024 * 1024));
  b.fill(1);
  kept.push(b);
  mb += perStep;
}, 100);
