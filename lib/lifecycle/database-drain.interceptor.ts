import {
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable, finalize } from 'rxjs';
import { toHttpError } from '../observability/http-errors.js';
import { DrainController } from './drain-controller.js';

/**
 * Admits each request as in-flight work, so graceful shutdown waits for it, and refuses requests
 * that arrive once shutdown has begun with 503 (`DatabaseShuttingDownError`). Registered globally
 * by `DatabaseModule`.
 */
@Injectable()
export class DatabaseDrainInterceptor implements NestInterceptor {
  constructor(private readonly drain: DrainController) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    let leave: () => void;
    try {
      leave = this.drain.enter();
    } catch (err) {
      throw ctx.getType() === 'http' ? toHttpError(err) : err;
    }
    return new Observable((subscriber) =>
      this.drain.runAdmitted(() => next.handle().pipe(finalize(leave)).subscribe(subscriber)),
    );
  }
}
