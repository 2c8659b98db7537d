// LINES_PER_S lines a second (default 2,000), one console.log (one write) each, in 10 ms steps.
const rate = Number(process.env.LINES_PER_S || 2000);
const per = Math.max(1, Math.round(rate / 100));
let n = 0;
setInterval(() => {
  for (let i = 0; i < per; i++) console.log(`line ${n++} of a steady app, about sixty bytes long`);
}, 10);
