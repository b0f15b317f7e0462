import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const app = await NestFactory.create(AppModule);
// Ctrl-C or SIGTERM: requests in flight finish, new ones get 503, the pool closes.
app.enableShutdownHooks();
await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
console.log(`Tutorial app listening on ${await app.getUrl()}`);
