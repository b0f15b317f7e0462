import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createTestDatabase, type TestDatabase } from 'nestjs-pg-tenancy/testing';
import { AppModule } from '../src/app.module.js';

let database: TestDatabase;
let app: INestApplication;
let url: string;

beforeAll(async () => {
  // A new database for this file: on DATABASE_URL's server when it is set, otherwise on an
  // embedded PostgreSQL of its own, which drop() stops.
  database = await createTestDatabase();
  // src/database.ts reads DATABASE_URL when the module starts.
  process.env.DATABASE_URL = database.url;
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication();
  await app.listen(0, '127.0.0.1'); // applies the migrations, as in production
  url = await app.getUrl();
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

/** Sends a request to the app; answers its status and JSON body. */
async function call(method: string, path: string, headers = {}, body?: object) {
  const res = await fetch(url + path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body && JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

/** Creates a tenant through the app's POST /tenants; answers the tenant's API key. */
async function createTenant(id: string): Promise<string> {
  const { body } = await call('POST', '/tenants', {}, { id });
  return (body as { apiKey: string }).apiKey;
}

it("serves each tenant its own projects, and only with that tenant's key", async () => {
  const acme = { 'x-tenant-id': 'acme', 'x-api-key': await createTenant('acme') };
  const globex = { 'x-tenant-id': 'globex', 'x-api-key': await createTenant('globex') };

  await call('POST', '/projects', acme, { name: 'Rocket skates' });
  expect((await call('GET', '/projects', acme)).body).toMatchObject([{ name: 'Rocket skates' }]);
  expect((await call('GET', '/projects', globex)).body).toEqual([]);

  const wrongKey = { ...acme, 'x-api-key': globex['x-api-key'] };
  expect(await call('GET', '/projects', wrongKey)).toMatchObject({ status: 403 });
});
