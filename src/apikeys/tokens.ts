import { createHash, randomBytes } from 'node:crypto';

const TOKEN_PREFIX = 'mzk_';

/** A new API token: 32 random bytes, base64url, with a recognisable prefix for secret scanners. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** Tokens are stored only as this hash. A fast hash is right here: the input has 256 bits of entropy. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The part of a token that may be shown again to help tell keys apart. */
export function tokenPrefix(token: string): string {
  return token.slice(0, TOKEN_PREFIX.length + 6);
}

export function looksLikeToken(value: string): boolean {
  return /^[A-Za-z0-9_\-.~+/]+=*$/.test(value) && value.length <= 200;
}
