// Prints "ready" and stays idle; with EXIT_AFTER_MS, exits with EXIT_CODE (default 0) that long
// after. For the container runtime figures (`pmr runtime` / `pm2-runtime`).
console.log('ready');
const after = Number(process.env.EXIT_AFTER_MS);
if (after) setTimeout(() => process.exit(Number(process.env.EXIT_CODE || 0)), after);
else setInterval(() => {}, 1 << 30);
