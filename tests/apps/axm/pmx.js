// The older agent, pmx 1.x, as apps written for PM2 before @pm2/io use it.
const pmx = require('pmx').init();
pmx.probe().metric({ name: 'Old metric', value: () => 7 });
pmx.action('ping', (reply) => reply({ pong: true }));
pmx.action('echo', (param, reply) => reply({ param }));
setInterval(() => {}, 1000);
