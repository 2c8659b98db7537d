// Exits with code 1 after 100 ms. If CRASH_LOG is set, appends "start <ms>" and "exit <ms>"
// (epoch milliseconds) to it, so the suite can see the delays between a crash and the next start.
// With CRASH_FIRST_MS, the first run (no "<CRASH_LOG>.first" marker yet) lives that long before
// exiting: a crash loop that begins after a healthy start.
const fs = require('fs');
const log = process.env.CRASH_LOG;
let life = 100;
if (log && process.env.CRASH_FIRST_MS && !fs.existsSync(log + '.first')) {
  fs.writeFileSync(log + '.first', '');
  life = Number(process.env.CRASH_FIRST_MS);
}
if (log) fs.appendFileSync(log, `start ${Date.now()}\n`);
setTimeout(() => {
  if (log) fs.appendFileSync(log, `exit ${Date.now()}\n`);
  process.exit(1);
}, life);
