import { createHmac, timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../app-config.js';

/** Who a session token speaks for: one user, in one tenant. */
export interface SessionUser {
  /** The user's id in the shared `accounts.users` table. */
  readonly id: number;
  readonly email: string;
  /** The tenant this session was opened for; `fromUser('tenant')` routes the request there. */
  readonly tenant: string;
}

interface Claims {
  sub: number;
  email: string;
  tenant: string;
  exp: number;
}

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
const TTL_SECONDS = 12 * 60 * 60;

/**
 * Signed session tokens (compact JWTs, HS256), so the tenant a request enters comes from a
 * principal the server issued, not from a header the client chose. A real app would use its
 * identity provider's tokens (passport-jwt, an OIDC library); this keeps the sample free of
 * dependencies.
 */
@Injectable()
export class SessionTokens {
  readonly #secret: string;

  constructor(config: AppConfig) {
    this.#secret = config.sessionSecret;
  }

  issue(user: SessionUser, now = Date.now()): { token: string; expiresAt: Date } {
    const exp = Math.floor(now / 1000) + TTL_SECONDS;
    const claims: Claims = { sub: user.id, email: user.email, tenant: user.tenant, exp };
    const body = `${HEADER}.${base64url(JSON.stringify(claims))}`;
    return { token: `${body}.${this.#sign(body)}`, expiresAt: new Date(exp * 1000) };
  }

  /** The user a token speaks for, or `undefined` when it is malformed, forged or expired. */
  verify(token: string, now = Date.now()): SessionUser | undefined {
    const [header, payload, signature, extra] = token.split('.');
    if (header !== HEADER || !payload || !signature || extra !== undefined) return undefined;
    const expected = Buffer.from(this.#sign(`${header}.${payload}`));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return undefined;
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) return undefined;
    return { id: claims.sub, email: claims.email, tenant: claims.tenant };
  }

  #sign(body: string): string {
    return createHmac('sha256', this.#secret).update(body).digest('base64url');
  }
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
