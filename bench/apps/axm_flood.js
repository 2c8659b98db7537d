// Sends @pm2/io metrics messages 10,000 times a second (100 every 10 ms), each carrying the
// time it was sent, as a broken metrics loop would.
let n = 0;
setInterval(() => {
  for (let i = 0; i < 100; i++) {
    n++;
    process.send({
      type: 'axm:monitor',
      data: { sent: { historic: true, unit: 'ms', value: Date.now() }, count: { value: n } },
    });
  }
}, 10);
