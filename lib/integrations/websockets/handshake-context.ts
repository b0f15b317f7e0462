import type { ContextType, ExecutionContext, Type } from '@nestjs/common';
import type { TenantSocket } from './handshake-resolvers.js';

type WsArgumentsHost = ReturnType<ExecutionContext['switchToWs']>;
type HttpArgumentsHost = ReturnType<ExecutionContext['switchToHttp']>;
type RpcArgumentsHost = ReturnType<ExecutionContext['switchToRpc']>;

/**
 * The `ExecutionContext` `tenancy.authorize` gets at a socket's handshake, shaped as Nest shapes
 * a gateway message's: type `'ws'`, `switchToWs().getClient()` (and `getArgs()[0]`) the socket;
 * its data is the handshake, its pattern `'connection'`. No gateway handler runs yet, so
 * `getClass()` is the adapter and `getHandler()` the handshake resolver.
 */
export class HandshakeContext implements ExecutionContext {
  readonly #args: [TenantSocket, TenantSocket['handshake'], string];

  constructor(
    socket: TenantSocket,
    private readonly cls: Type,
    private readonly handler: (...args: never[]) => unknown,
  ) {
    this.#args = [socket, socket.handshake, 'connection'];
  }

  getType<T extends string = ContextType>(): T {
    return 'ws' as T;
  }
  getClass<T = unknown>(): Type<T> {
    return this.cls as Type<T>;
  }
  getHandler(): (...args: never[]) => unknown {
    return this.handler;
  }
  getArgs<T extends unknown[] = unknown[]>(): T {
    return this.#args as unknown as T;
  }
  getArgByIndex<T = unknown>(index: number): T {
    return this.#args[index] as T;
  }
  switchToWs(): WsArgumentsHost {
    const [client, data, pattern] = this.#args;
    return {
      getClient: <T>() => client as T,
      getData: <T>() => data as T,
      getPattern: () => pattern,
    };
  }
  switchToHttp(): HttpArgumentsHost {
    const [client, data] = this.#args;
    return {
      getRequest: <T>() => client as T,
      getResponse: <T>() => data as T,
      getNext: <T>() => undefined as T,
    };
  }
  switchToRpc(): RpcArgumentsHost {
    const [client, data] = this.#args;
    return { getData: <T>() => data as T, getContext: <T>() => client as T };
  }
}
