"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
require("reflect-metadata");
const core_1 = require("@nestjs/core");
const app_module_1 = require("./app.module");
async function bootstrap() {
    const app = await core_1.NestFactory.create(app_module_1.AppModule, { logger: ['error', 'warn'] });
    app.enableShutdownHooks();
    const port = Number(process.env.PORT || 3000);
    await app.listen(port, '127.0.0.1');
    console.log(`nest listening on ${port} (NODE_ENV=${process.env.NODE_ENV})`);
}
bootstrap();
//# sourceMappingURL=main.js.map
