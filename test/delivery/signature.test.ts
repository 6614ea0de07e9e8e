import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateSecret, isValidSecret, signPayload } from '../../src/delivery/signature.js';

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

function headersFor(id: string, timestamp: number, signature: string): Record<string, string> {
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
}

describe('signPayload', () => {
  const now = Math.floor(Date.now() / 1000);

  it('is verified by the Standard Webhooks reference library', () => {
    const body = JSON.stringify({ action: 'flag.created', name: 'say "hi" ✓ 🚀' });
    const signature = signPayload(SECRET, 'msg_1', now, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(SECRET).verify(body, headersFor('msg_1', now, signature))).toEqual(JSON.parse(body));
  });

  it('signs "<id>.<timestamp>.<body>" with the base64-decoded key', () => {
    const key = Buffer.alloc(32, 7);
    const expected = createHmac('sha256', key).update(`msg_2.${now}.{}`).digest('base64');
    expect(signPayload(SECRET, 'msg_2', now, '{}')).toBe(`v1,${expected}`);
  });

  it('signs an empty body (body-less POST)', () => {
    const signature = signPayload(SECRET, 'msg_3', now, '');
    const key = Buffer.alloc(32, 7);
    expect(signature).toBe(`v1,${createHmac('sha256', key).update(`msg_3.${now}.`).digest('base64')}`);
  });

  it('fails verification with another secret, another body, id or timestamp', () => {
    const body = '{"a":1}';
    const signature = signPayload(SECRET, 'msg_4', now, body);
    const other = generateSecret();
    expect(() => new Webhook(other).verify(body, headersFor('msg_4', now, signature))).toThrow();
    const verifier = new Webhook(SECRET);
    expect(() => verifier.verify('{"a":2}', headersFor('msg_4', now, signature))).toThrow();
    expect(() => verifier.verify(body, headersFor('msg_5', now, signature))).toThrow();
    expect(() => verifier.verify(body, headersFor('msg_4', now - 1, signature))).toThrow();
  });

  it('gives the same signature on repeated calls (cached key) and differs per secret', () => {
    const a = signPayload(SECRET, 'id', now, 'x');
    expect(signPayload(SECRET, 'id', now, 'x')).toBe(a);
    expect(signPayload(generateSecret(), 'id', now, 'x')).not.toBe(a);
  });

  it('refuses a malformed secret without echoing it', () => {
    expect(() => signPayload('whsec_not-base64!!', 'id', now, 'x')).toThrow(/invalid webhook secret/);
    try {
      signPayload('whsec_c2VjcmV0', 'id', now, 'x');
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('c2VjcmV0');
    }
  });

  it('refuses a timestamp that is not whole seconds', () => {
    expect(() => signPayload(SECRET, 'id', 1.5, 'x')).toThrow(/whole number/);
  });
});

describe('isValidSecret', () => {
  const base64Of = (bytes: number): string => Buffer.alloc(bytes, 0xfb).toString('base64');

  it.each([24, 25, 26, 32, 48, 63, 64])('accepts whsec_ + base64 of %i bytes', (bytes) => {
    expect(isValidSecret(`whsec_${base64Of(bytes)}`)).toBe(true);
  });

  it('accepts generated secrets', () => {
    const secret = generateSecret();
    expect(isValidSecret(secret)).toBe(true);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
  });

  it.each([
    ['too short (23 bytes)', `whsec_${base64Of(23)}`],
    ['too long (65 bytes)', `whsec_${base64Of(65)}`],
    ['no prefix', base64Of(32)],
    ['wrong prefix case', `WHSEC_${base64Of(32)}`],
    ['empty key', 'whsec_'],
    ['base64url alphabet', `whsec_${Buffer.alloc(32, 0xfb).toString('base64url')}=`],
    ['missing padding', `whsec_${base64Of(25).replace(/=+$/, '')}`],
    ['extra padding', `whsec_${base64Of(32)}=`],
    ['whitespace inside', `whsec_${base64Of(16)} ${base64Of(16)}`],
    ['trailing newline', `whsec_${base64Of(32)}\n`],
    ['non-zero padding bits', `whsec_${base64Of(32).slice(0, -2)}x=`],
    ['padding in the middle', `whsec_${base64Of(13)}${base64Of(13)}`],
  ])('refuses %s', (_label, secret) => {
    expect(isValidSecret(secret)).toBe(false);
  });
});
