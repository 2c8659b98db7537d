// The demo that README's first command runs: a Node.js HTTP app in cluster mode (one worker
// per CPU, one shared port) and a Python worker in fork mode.
const path = require('path');

module.exports = {
  apps: [
    {
      name: 'web',
      script: path.join(__dirname, 'server.js'),
      exec_mode: 'cluster',
      instances: 'max',
      env: { PORT: process.env.DEMO_PORT || 3000 },
    },
    {
      name: 'heartbeat',
      script: path.join(__dirname, 'worker.py'),
      exp_backoff_restart_delay: 100,
    },
  ],
};
