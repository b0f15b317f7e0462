// The GraphQL integration's channel (nestjs-pg-tenancy/graphql): Apollo on the serving app with
// `transformSchema: tenantSchema`, each operation a mutation over HTTP with `x-tenant-id`. The
// mutation's own resolver writes; a field resolver below it (`read`, run by graphql-js after the
// mutation returned, outside the interceptor's async context) pauses and reads, so a field that
// lost its operation's tenant shows. A refusal is a GraphQL error whose `extensions` name the
// typed error and its HTTP status.
import 'reflect-metadata';
import { Inject } from '@nestjs/common';
import { ApolloDriver } from '@nestjs/apollo';
import {
  Args,
  Field,
  GraphQLModule,
  Int,
  Mutation,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { FuzzWork } from '../app.mjs';

const MUTATION =
  'mutation Fuzz($op: Int!, $intended: String, $pause: Int!) ' +
  '{ fuzz(op: $op, intended: $intended, pause: $pause) { op read } }';

class FuzzResult {}

class FuzzResolver {
  constructor(work) {
    this.work = work;
  }

  async fuzz(op, intended, pause) {
    await this.work.write(op, intended ?? null, 'graphql');
    return { op, pause };
  }

  async read(result) {
    await this.work.read(result.op, result.pause);
    return true;
  }

  ping() {
    return 'pong';
  }
}

let decorated = false;
function decorate(lib) {
  if (decorated) return;
  decorated = true;
  // What TypeScript's emitDecoratorMetadata would record, which @nestjs/graphql reads.
  Reflect.defineMetadata('design:type', Number, FuzzResult.prototype, 'op');
  Reflect.defineMetadata(
    'design:paramtypes',
    [Number, String, Number],
    FuzzResolver.prototype,
    'fuzz',
  );
  Reflect.defineMetadata('design:paramtypes', [Object], FuzzResolver.prototype, 'read');
  ObjectType()(FuzzResult);
  Field(() => Int)(FuzzResult.prototype, 'op');
  Resolver(() => FuzzResult)(FuzzResolver);
  Inject(FuzzWork)(FuzzResolver, undefined, 0);
  const proto = FuzzResolver.prototype;
  const method = (name) => Object.getOwnPropertyDescriptor(proto, name);
  Mutation(() => FuzzResult)(proto, 'fuzz', method('fuzz'));
  Args('op', { type: () => Int })(proto, 'fuzz', 0);
  Args('intended', { type: () => String, nullable: true })(proto, 'fuzz', 1);
  Args('pause', { type: () => Int })(proto, 'fuzz', 2);
  ResolveField('read', () => Boolean)(proto, 'read', method('read'));
  Parent()(proto, 'read', 0);
  // A schema needs a query; this one needs no tenant.
  Query(() => String)(proto, 'ping', method('ping'));
  lib.NoTenant()(proto, 'ping', method('ping'));
}

export default async function graphqlChannel({ lib, entry }) {
  const { tenantSchema } = await entry();
  decorate(lib);
  let url;
  return {
    name: 'graphql',
    weight: 2,
    module: {
      imports: [
        GraphQLModule.forRoot({
          driver: ApolloDriver,
          autoSchemaFile: true,
          transformSchema: tenantSchema,
        }),
      ],
      providers: [FuzzResolver],
    },
    async start(ctx) {
      url = `${ctx.url}/graphql`;
    },
    async send(op) {
      const headers = { 'content-type': 'application/json' };
      if (op.tenant !== undefined) headers['x-tenant-id'] = op.tenant;
      const variables = { op: op.id, intended: op.intended, pause: op.pause };
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query: MUTATION, variables }),
      });
      const body = await response.json().catch(() => ({}));
      if (body.data?.fuzz?.read === true && !body.errors) return;
      const error = body.errors?.[0];
      throw {
        name: error?.extensions?.error ?? `GraphQL ${error?.extensions?.code ?? response.status}`,
        message: String(error?.message ?? JSON.stringify(body)),
        status: error?.extensions?.status,
      };
    },
  };
}
