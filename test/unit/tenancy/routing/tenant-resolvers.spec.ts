import type { ExecutionContext } from '@nestjs/common';
import { InvalidOptionsError } from '../../../../lib/shared/errors.js';
import { resolveTenancyOptions } from '../../../../lib/tenancy/tenancy-options.js';
import {
  describeResolver,
  fromHeader,
  fromPathParam,
  fromQuery,
  fromSubdomain,
  fromUser,
} from '../../../../lib/tenancy/routing/tenant-resolvers.js';

// The part of an HTTP ExecutionContext a resolver reads (Nest's own ExecutionContextHost would
// load @nestjs/core into every mutation-testing run).
const http = (req: object) =>
  ({
    getType: () => 'http',
    switchToHttp: () => ({ getRequest: () => req }),
  }) as unknown as ExecutionContext;

// A GraphQL resolver's context: its arguments are (root, args, context, info), or (reference,
// context, info) for a federation reference resolver; the HTTP request is the context's `req`.
const graphql = (...args: unknown[]) =>
  ({
    getType: () => 'graphql',
    getArgs: () => args,
    switchToHttp: () => ({ getRequest: () => args[0] }),
  }) as unknown as ExecutionContext;

describe('tenant resolvers', () => {
  it('read the request of a GraphQL resolver from its context, never the root or parent value', () => {
    const req = { headers: { 'x-tenant-id': 'acme' }, query: { t: 'q' }, user: { tenantId: 'u' } };
    const parent = { headers: { 'x-tenant-id': 'evil' }, query: { t: 'evil' }, user: {} };
    expect(fromHeader('x-tenant-id')(graphql(parent, {}, { req }, {}))).toBe('acme');
    expect(fromQuery('t')(graphql(parent, {}, { req }, {}))).toBe('q');
    expect(fromUser()(graphql(parent, {}, { req }, {}))).toBe('u');
    expect(fromHeader('x-tenant-id')(graphql(parent, { req: parent }, { req }, {}))).toBe('acme');
    expect(fromHeader('x-tenant-id')(graphql(parent, { req }, {}))).toBe('acme');
    expect(fromHeader('x-tenant-id')(graphql(parent, {}, {}, {}))).toBeUndefined();
    expect(fromHeader('x-tenant-id')(graphql(parent, {}, undefined, {}))).toBeUndefined();
  });

  it('fromSubdomain reads the host case-insensitively', () => {
    expect(fromSubdomain()(http({ hostname: 'Acme.example.com' }))).toBe('acme');
    expect(fromSubdomain()(http({ headers: { host: 'ACME.Example.COM:3000' } }))).toBe('acme');
  });

  it('fromHeader reads a header case-insensitively, first value of a list', () => {
    expect(fromHeader('X-Tenant-Id')(http({ headers: { 'x-tenant-id': 'acme' } }))).toBe('acme');
    expect(fromHeader('x-tenant-id')(http({ headers: { 'x-tenant-id': ['a', 'b'] } }))).toBe('a');
    expect(fromHeader('x-tenant-id')(http({ headers: {} }))).toBeUndefined();
    expect(fromHeader('x-tenant-id')(http({ headers: { 'x-tenant-id': '' } }))).toBeUndefined();
  });

  it('fromSubdomain takes the first label of a host with enough labels', () => {
    expect(fromSubdomain()(http({ hostname: 'acme.app.example' }))).toBe('acme');
    expect(fromSubdomain()(http({ headers: { host: 'acme.app.example:8080' } }))).toBe('acme');
    expect(fromSubdomain()(http({ hostname: 'example.com' }))).toBeUndefined();
    expect(fromSubdomain(2)(http({ hostname: 'acme.localhost' }))).toBe('acme');
    expect(fromSubdomain(1)(http({ headers: { host: 'acme:3000' } }))).toBe('acme');
  });

  it('fromSubdomain names no tenant for a missing host or an empty first label', () => {
    expect(fromSubdomain(1)(http({ headers: {} }))).toBeUndefined();
    expect(fromSubdomain()(http({ hostname: '.app.example' }))).toBeUndefined();
  });

  it('fromPathParam and fromQuery read route and query parameters', () => {
    expect(fromPathParam('tenant')(http({ params: { tenant: 'acme' } }))).toBe('acme');
    expect(fromQuery('tenant')(http({ query: { tenant: 'acme' } }))).toBe('acme');
    expect(fromQuery('tenant')(http({ query: { tenant: { nested: 1 } } }))).toBeUndefined();
  });
});

describe('tenant resolvers in a microservice handler', () => {
  // Nest's RPC ExecutionContext answers switchToHttp().getRequest() with the message's payload.
  const rpc = (payload: object) =>
    ({
      getType: () => 'rpc',
      switchToHttp: () => ({ getRequest: () => payload }),
    }) as unknown as ExecutionContext;

  it('never read a tenant from the payload, which the sender writes', () => {
    const hostile = {
      headers: { 'x-tenant-id': 'victim', host: 'victim.example.com' },
      hostname: 'victim.example.com',
      params: { tenant: 'victim' },
      query: { tenant: 'victim' },
      user: { tenantId: 'victim' },
    };
    expect(fromHeader('x-tenant-id')(rpc(hostile))).toBeUndefined();
    expect(fromSubdomain()(rpc(hostile))).toBeUndefined();
    expect(fromPathParam('tenant')(rpc(hostile))).toBeUndefined();
    expect(fromQuery('tenant')(rpc(hostile))).toBeUndefined();
    expect(fromUser()(rpc(hostile))).toBeUndefined();
  });
});

describe('resolver hints', () => {
  it('tells a client how to name its tenant', () => {
    expect(describeResolver(fromHeader('X-Tenant-Id'))).toBe('send the "x-tenant-id" header');
    expect(describeResolver(fromSubdomain())).toBe('use the tenant subdomain');
    expect(describeResolver(fromPathParam('tenant'))).toBe(
      'put the tenant in the ":tenant" path segment',
    );
    expect(describeResolver(fromQuery('t'))).toBe('pass the "t" query parameter');
    expect(describeResolver(() => 'acme')).toBe('the request must identify a tenant');
  });
});

describe('tenancy options', () => {
  it('fills defaults', () => {
    const options = resolveTenancyOptions({});
    expect(options).toMatchObject({
      schemaPrefix: 'tenant_',
      registrySchema: 'tenancy',
      migrationConcurrency: 4,
      required: true,
      interceptor: true,
      failOnMigrationError: true,
    });
    expect(options.idPattern.test('acme_2')).toBe(true);
    expect(options.idPattern.test('Acme')).toBe(false);
    expect(options.idPattern.test('a'.repeat(41))).toBe(false);
    expect(options.resolver(http({ headers: { 'x-tenant-id': 't1' } }))).toBe('t1');
  });

  it.each([
    [{ schemaPrefix: 'bad-prefix' }, /schemaPrefix/],
    [{ schemaPrefix: 'p'.repeat(63) }, /no room/],
    [{ migrationConcurrency: 0 }, /positive integer/],
    [{ resolver: 'x-tenant-id' }, /resolver must be a function/],
    [{ registrySchema: 'bad schema' }, /Invalid registry schema name/],
    [{ idPattern: /^[a-z]+$/g }, /has the "g" or "y" flag/],
    [{ idPattern: /^[a-z]+$/y }, /has the "g" or "y" flag/],
    [{ schemaPrefix: 'pg_' }, /reserves for system schemas/],
    [{ schemaPrefix: 'pg_tenant_' }, /reserves for system schemas/],
    [{ registrySchema: 'pg_registry' }, /reserves for system schemas/],
    [{ registrySchema: 'r'.repeat(53) }, /channel .* would be 64 bytes/],
    [{ migrationConcurrency: 'four' }, /received the string "four"/],
    [{ pollIntervalMs: '20.5' }, /received the string "20\.5"/],
    [{ required: 'no' }, /tenancy.required must be true or false, received the string "no"/],
  ])('rejects %o', (options, message) => {
    expect(() => resolveTenancyOptions(options as never)).toThrow(message);
  });

  it('reads numbers and booleans given as strings, as environment variables give them', () => {
    const options = resolveTenancyOptions({
      migrationConcurrency: '8',
      pollIntervalMs: '250',
      required: 'false',
    } as never);
    expect(options).toMatchObject({
      migrationConcurrency: 8,
      pollIntervalMs: 250,
      required: false,
    });
    expect(resolveTenancyOptions({ registrySchema: 'r'.repeat(52) }).registrySchema).toHaveLength(
      52,
    );
  });

  it('accepts an empty schemaPrefix (the schema is the tenant id) and the smallest limits', () => {
    expect(
      resolveTenancyOptions({ schemaPrefix: '', pollIntervalMs: 100, migrationConcurrency: 1 }),
    ).toMatchObject({ schemaPrefix: '', pollIntervalMs: 100, migrationConcurrency: 1 });
  });

  it('fills the cache and polling defaults', () => {
    expect(resolveTenancyOptions({})).toMatchObject({
      negativeCacheMs: 5_000,
      pollIntervalMs: 1_000,
    });
  });

  it.each([
    [
      { idPattern: '^[a-z]+$' },
      'tenancy.idPattern must be a RegExp, received the string "^[a-z]+$".',
    ],
    [
      { pollIntervalMs: 99 },
      'tenancy.pollIntervalMs must be an integer of at least 100 (a number, or a string of digits), received 99.',
    ],
    [
      { pollIntervalMs: 150.5 },
      'tenancy.pollIntervalMs must be an integer of at least 100 (a number, or a string of digits), received 150.5.',
    ],
    [
      { migrationConcurrency: 1.5 },
      'tenancy.migrationConcurrency must be a positive integer (a number, or a string of digits), received 1.5.',
    ],
  ])('rejects %o, saying what is expected', (options, message) => {
    expect(() => resolveTenancyOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolveTenancyOptions(options as never)).toThrow(message);
  });

  it('throws typed errors', () => {
    expect(() => resolveTenancyOptions({ schemaPrefix: '1x' })).toThrow(InvalidOptionsError);
  });
});
