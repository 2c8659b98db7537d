const fastify = require('fastify')();

fastify.get('/', async () => ({ pid: process.pid, app: 'fastify' }));
// The object form of listen, as Fastify 4's docs write it.
fastify
  .listen({ port: Number(process.env.PORT || 3000), host: '127.0.0.1' })
  .then((address) => console.log(`fastify listening on ${address}`))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
