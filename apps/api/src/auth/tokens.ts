import { createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';

export const JWT_ISSUER = 'backplane';
export const JWT_AUDIENCE = 'backplane-api';
/** The only accepted algorithm: a token naming any other (including `none`) is refused. */
export const JWT_ALG = 'HS256';
const ACCESS_TYP = 'at+jwt';
const MFA_TYP = 'mfa+jwt';

export type TokenFailure = 'expired' | 'invalid' | 'wrong_audience' | 'wrong_type';

export class TokenError extends Error {
  constructor(readonly reason: TokenFailure) {
    super(`token ${reason}`);
    this.name = 'TokenError';
  }
}

export interface AccessClaims {
  readonly userId: string;
  readonly sessionId: string;
}

/** Random secrets presented as bearer strings: `<kind>_<base64url(32 bytes)>`. */
export function newSecret(kind: 'bpk' | 'bpr' | 'bps' | 'bpg' | 'bpe' | 'bpi'): string {
  return `${kind}_${randomBytes(32).toString('base64url')}`;
}

/** Seconds of clock skew accepted on `exp`/`iat`. */
const CLOCK_TOLERANCE_S = 5;
/** Verified access tokens remembered per process. */
const VERIFIED_TOKENS_MAX = 20_000;

/**
 * Signs and checks access tokens, and hashes high-entropy secrets (API keys, refresh
 * tokens, gateway credentials, one-time tokens) with HMAC-SHA256 under keys derived from
 * the signing key: fast enough for every request, useless to someone holding only a
 * database dump.
 */
export class TokenService {
  /** Imported once: a raw Uint8Array would be re-imported by jose on every call. */
  private readonly jwtKey: KeyObject;
  private readonly hashKey: Buffer;

  constructor(
    signingKey: string,
    private readonly accessTtlSeconds: number,
  ) {
    const ikm = Buffer.from(signingKey, 'utf8');
    this.jwtKey = createSecretKey(Buffer.from(hkdfSync('sha256', ikm, 'backplane', 'jwt-hs256', 32)));
    this.hashKey = Buffer.from(hkdfSync('sha256', ikm, 'backplane', 'secret-hash', 32));
  }

  hash(secret: string): string {
    return createHmac('sha256', this.hashKey).update(secret).digest('base64url');
  }

  get accessTtl(): number {
    return this.accessTtlSeconds;
  }

  signAccess(claims: AccessClaims): Promise<string> {
    return new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: JWT_ALG, typ: ACCESS_TYP })
      .setSubject(claims.userId)
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.accessTtlSeconds}s`)
      .sign(this.jwtKey);
  }

  /** Short-lived proof that the password was right, for the second login step. */
  signMfa(userId: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: JWT_ALG, typ: MFA_TYP })
      .setSubject(userId)
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(this.jwtKey);
  }

  /**
   * Access tokens that verified, until they expire: the same string verifies the same way
   * until then, and the signature check (~0.1 ms) is the largest CPU cost of a cached request
   * (ADR 0076). Revocation is the session check's job, as before.
   */
  private readonly verified = new Map<string, { claims: AccessClaims; until: number }>();

  async verifyAccess(token: string): Promise<AccessClaims> {
    const hit = this.verified.get(token);
    if (hit) {
      if (Date.now() < hit.until) return hit.claims;
      this.verified.delete(token);
    }
    const payload = await this.verify(token, ACCESS_TYP);
    if (typeof payload.sid !== 'string') throw new TokenError('invalid');
    const claims = { userId: payload.sub!, sessionId: payload.sid };
    // jwtVerify accepts up to CLOCK_TOLERANCE_S after `exp`; the cache stops at `exp`.
    if (typeof payload.exp === 'number') {
      if (this.verified.size >= VERIFIED_TOKENS_MAX) {
        const oldest = this.verified.keys().next();
        if (!oldest.done) this.verified.delete(oldest.value);
      }
      this.verified.set(token, { claims, until: payload.exp * 1000 });
    }
    return claims;
  }

  async verifyMfa(token: string): Promise<string> {
    return (await this.verify(token, MFA_TYP)).sub!;
  }

  private async verify(token: string, typ: string) {
    try {
      const { payload } = await jwtVerify(token, this.jwtKey, {
        algorithms: [JWT_ALG],
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
        typ,
        requiredClaims: ['exp', 'iat', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      if (typeof payload.sub !== 'string' || !/^[0-9a-f-]{36}$/.test(payload.sub)) throw new TokenError('invalid');
      return payload;
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof errors.JWTExpired) throw new TokenError('expired');
      if (err instanceof errors.JWTClaimValidationFailed) {
        if (err.claim === 'aud') throw new TokenError('wrong_audience');
        if (err.claim === 'typ') throw new TokenError('wrong_type');
      }
      throw new TokenError('invalid');
    }
  }
}
