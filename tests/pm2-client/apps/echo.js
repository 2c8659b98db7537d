// Fixture of library.js: says who it is on stdout (the bus's `log:out`), and answers every IPC
// message (PM2's `sendDataToProcessId` packet: {id, topic, data}) with a `process:msg`.
const args = process.argv.slice(2);
console.log(`lib-app ready pid=${process.pid} args=${JSON.stringify(args)} LIB_VAR=${process.env.LIB_VAR || ''}`);

process.on('message', (packet) => {
  const data = packet && packet.data;
  console.log(`lib-app got ${JSON.stringify(data)}`);
  process.send({ type: 'process:msg', data: { reply: data, topic: packet && packet.topic, pid: process.pid } });
});

// Stay up until stopped.
setInterval(() => {}, 1 << 30);
