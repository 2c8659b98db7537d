// Shaped like Nitro's node-server preset output (.output/server/index.mjs): an ESM entry that
// builds an h3 app and listens on PORT/HOST (NITRO_PORT/NITRO_HOST first, as Nitro reads them).
import { createServer } from 'node:http';
import { createApp, createRouter, defineEventHandler, toNodeListener } from 'h3';

const app = createApp();
const router = createRouter();
router.get('/', defineEventHandler(() => ({ pid: process.pid, app: 'nitro' })));
app.use(router);

const port = Number(process.env.NITRO_PORT || process.env.PORT || 3000);
const host = process.env.NITRO_HOST || process.env.HOST || '127.0.0.1';
createServer(toNodeListener(app)).listen(port, host, () => {
  console.log(`Listening on http://${host}:${port}`);
});
