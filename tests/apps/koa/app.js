const Koa = require('koa');

const app = new Koa();
app.use(async (ctx) => {
  ctx.body = { pid: process.pid, app: 'koa' };
});
const port = Number(process.env.PORT || 3000);
app.listen(port, '127.0.0.1', () => console.log(`koa listening on ${port}`));
