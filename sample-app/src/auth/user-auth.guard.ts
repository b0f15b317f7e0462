import {
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { bearerToken } from './bearer-token.js';
import { SessionTokens, type SessionUser } from './session-tokens.js';

/**
 * Lets a request through only with `Authorization: Bearer <session token>` (see
 * `POST /admin/tenants/:id/sessions`), and sets `request.user`. Guards run before the tenant
 * interceptor, so `fromUser('tenant')` and `tenancy.authorize` see the user.
 */
@Injectable()
export class UserAuthGuard implements CanActivate {
  constructor(private readonly tokens: SessionTokens) {}

  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<{
      headers: Record<string, string | string[] | undefined>;
      user?: SessionUser;
    }>();
    const token = bearerToken(req.headers);
    const user = token === undefined ? undefined : this.tokens.verify(token);
    if (!user) {
      throw new UnauthorizedException(
        'Sign in: send "Authorization: Bearer <session token>"; an operator opens a session with POST /admin/tenants/<tenant>/sessions.',
      );
    }
    req.user = user;
    return true;
  }
}
