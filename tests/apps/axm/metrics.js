// Custom metrics and actions through the real @pm2/io, as an app written for PM2 would.
const io = require('@pm2/io');

const users = io.metric({ name: 'Realtime users', unit: 'users' });
users.set(42);
const done = io.counter({ name: 'Jobs done' });
done.inc();
done.inc();
io.metric({ name: 'Mode', value: () => 'busy' });

io.action('hello', (reply) => reply({ hello: 'world', pid: process.pid }));
io.action('echo', (param, reply) => reply({ got: param }));
// Registered and never answered: `trigger` must time out, not hang.
io.action('never', () => {});
// `process:exception` and `human:event`, as an app reports an error or an event.
io.action('fail', (reply) => {
  io.notifyError(new Error('reported on purpose'));
  reply('reported');
});
io.emit('started', { at: Date.now() });
// A scoped action (streams, then ends), as PM2 Plus runs them: @pm2/io's action service has
// it, its public object does not.
const { ServiceManager } = require('@pm2/io/build/main/serviceManager');
ServiceManager.get('actions').scopedAction('count', (opts, res) => {
  res.send('one');
  res.send('two');
  res.end({ upto: opts.upto || 2 });
});

// When the app first reports (the message @pm2/io sends, by hand, at once): the test measures
// how soon `describe` shows it.
process.send({ type: 'axm:monitor', data: { 'First report': { value: Date.now(), unit: 'ms' } } });

setInterval(() => {}, 1000);
