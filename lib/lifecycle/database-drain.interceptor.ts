import {
  HttpException,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable, finalize } from 'rxjs';
import { DatabaseShuttingDownError } from '../errors.js';
import { DrainController } from './drain-controller.js';

/**
 * Admits each request as in-flight work, so graceful shutdown waits for it, and refuses requests
 * that arrive once shutdown has begun with 503 (`DatabaseShuttingDownError`). Registered globally
 * by `DatabaseModule` unless `shutdown.refuseRequests` is `false`.
 */
@Injectable()
export class DatabaseDrainInterceptor implements NestInterceptor {
  constructor(private readonly drain: DrainController) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    let leave: () => void;
    try {
      leave = this.drain.enter();
    } catch (err) {
      if (ctx.getType() === 'http' && err instanceof DatabaseShuttingDownError) {
        throw new HttpException({ statusCode: 503, error: err.name, message: err.message }, 503, {
          cause: err,
        });
      }
      throw err;
    }
    return new Observable((subscriber) =>
      this.drain.runAdmitted(() => next.handle().pipe(finalize(leave)).subscribe(subscriber)),
    );
  }
}
