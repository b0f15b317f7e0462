import {
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable } from 'rxjs';
import { toHttpError } from '../observability/http-errors.js';
import { DrainController } from '../connection/drain-controller.js';

/**
 * Admits each request as in-flight work, so graceful shutdown waits for it, and refuses requests
 * that arrive once shutdown has begun with 503 (`DatabaseShuttingDownError`) and
 * `Connection: close`. Registered globally by `DatabaseModule`: apps never mount it themselves.
 * Exported for advanced setups only; not part of the stable API.
 */
@Injectable()
export class DatabaseDrainInterceptor implements NestInterceptor {
  constructor(private readonly drain: DrainController) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    let leave: () => void;
    try {
      leave = this.drain.enter();
    } catch (err) {
      if (ctx.getType() !== 'http') throw err;
      closeConnectionAfterReply(ctx.switchToHttp().getResponse());
      throw toHttpError(err);
    }
    // As `finalize(leave)` would, without an operator per request: the request leaves when the
    // response completes, fails or is unsubscribed.
    return new Observable((subscriber) => {
      subscriber.add(leave);
      return this.drain.runAdmitted(() => next.handle().subscribe(subscriber));
    });
  }
}

/**
 * A keep-alive client that keeps sending on its connection would get 503s for ever, and the
 * HTTP server, which waits for its connections to end, would never close: ask the client to
 * reconnect (to another instance) instead. Works with Express (a Node response) and Fastify
 * (a reply wrapping one).
 */
function closeConnectionAfterReply(response: unknown): void {
  const raw = (response as { raw?: unknown } | undefined)?.raw ?? response;
  const node = raw as { setHeader?: (name: string, value: string) => void; headersSent?: boolean };
  if (typeof node?.setHeader === 'function' && !node.headersSent) {
    node.setHeader('Connection', 'close');
  }
}
