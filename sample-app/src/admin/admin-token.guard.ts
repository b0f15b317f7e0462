import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { AppConfig } from '../app-config.js';
import { bearerToken } from '../auth/bearer-token.js';

/** Lets a request through only with `Authorization: Bearer <ADMIN_TOKEN>`; otherwise 401. */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  readonly #expected: Buffer;

  constructor(config: AppConfig) {
    this.#expected = digest(config.adminToken);
  }

  canActivate(ctx: ExecutionContext): boolean {
    const { headers } = ctx
      .switchToHttp()
      .getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    const token = bearerToken(headers);
    // Compare digests, so the comparison takes the same time whatever the token's length.
    if (token === undefined || !timingSafeEqual(digest(token), this.#expected)) {
      throw new UnauthorizedException(
        'The admin API needs "Authorization: Bearer <token>" with the ADMIN_TOKEN of this server.',
      );
    }
    return true;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
