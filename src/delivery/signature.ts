import { createHmac, randomBytes } from 'node:crypto';

// Standard Webhooks (https://www.standardwebhooks.com/): the secret is "whsec_" and the
// standard base64 of the key. Only standard base64 with padding is accepted, not base64url:
// receivers decode the secret with the reference libraries, which read standard base64 only.
const SECRET_PREFIX = 'whsec_';
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

// Signing runs once per delivery with a handful of distinct secrets, so decoded keys are
// kept; the cap only stops a stream of distinct secrets from growing the map without bound.
const MAX_CACHED_KEYS = 1000;
const keyCache = new Map<string, Buffer>();

/** The key of a well-formed secret, or null. */
function decodeSecret(secret: string): Buffer | null {
  if (!secret.startsWith(SECRET_PREFIX)) return null;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!STRICT_BASE64.test(encoded)) return null;
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) return null;
  // Non-zero bits in the last character's unused low bits would give two spellings of one key.
  return key.toString('base64') === encoded ? key : null;
}

function keyOf(secret: string): Buffer {
  let key = keyCache.get(secret);
  if (key === undefined) {
    const decoded = decodeSecret(secret);
    // The secret itself is never put into the message: messages end up in logs.
    if (decoded === null) throw new Error('invalid webhook secret: expected "whsec_" and the base64 of 24 to 64 bytes');
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear();
    keyCache.set(secret, decoded);
    key = decoded;
  }
  return key;
}

/** `whsec_` followed by strict, padded, standard base64 of 24 to 64 bytes. */
export function isValidSecret(secret: string): boolean {
  return keyCache.has(secret) || decodeSecret(secret) !== null;
}

/** A fresh secret holding 32 random bytes. */
export function generateSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

/**
 * The `webhook-signature` header value: "v1," and the base64 HMAC-SHA256 of
 * "<msgId>.<timestampSeconds>.<body>". Throws on a malformed secret (validated at save time).
 */
export function signPayload(secret: string, msgId: string, timestampSeconds: number, body: string): string {
  if (!Number.isSafeInteger(timestampSeconds)) throw new Error('webhook timestamp must be a whole number of seconds');
  const hmac = createHmac('sha256', keyOf(secret));
  hmac.update(`${msgId}.${timestampSeconds}.`, 'utf8');
  hmac.update(body, 'utf8');
  return `v1,${hmac.digest('base64')}`;
}
