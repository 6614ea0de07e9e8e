import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { InFlightLimit } from '../../src/delivery/in-flight-limit.js';
import { REDIS_URL } from '../support/env.js';

const redis = new Redis(REDIS_URL);
const prefixes: string[] = [];
let prefix: string;
beforeEach(() => {
  prefix = `mozhno-test-limit-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
});
afterAll(async () => {
  for (const used of prefixes) {
    const keys = await redis.keys(`${used}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

describe('InFlightLimit', () => {
  it('grants at most `cap` slots per integration; other integrations are unaffected', async () => {
    const limit = new InFlightLimit(redis, prefix, 2, 60_000);
    expect(await limit.tryAcquire(1, 'a')).toBe(true);
    expect(await limit.tryAcquire(1, 'b')).toBe(true);
    expect(await limit.tryAcquire(1, 'c')).toBe(false);
    expect(await limit.tryAcquire(2, 'c')).toBe(true);
    expect(await limit.inFlight(1)).toBe(2);
    // A holder asking again (a job taken up after a stall) keeps its slot rather than needing a second one.
    expect(await limit.tryAcquire(1, 'a')).toBe(true);
    expect(await limit.inFlight(1)).toBe(2);
  });

  it('wakes parked jobs oldest first, one per release', async () => {
    const limit = new InFlightLimit(redis, prefix, 1, 60_000);
    expect(await limit.tryAcquire(7, 'first')).toBe(true);
    for (const job of ['p1', 'p2', 'p3']) {
      expect(await limit.tryAcquire(7, job)).toBe(false);
      expect(await limit.park(7, job)).toBe('parked');
    }
    expect(await limit.release(7, 'first')).toBe('p1');
    expect(await limit.inFlight(7)).toBe(0);
    expect(await limit.nextParked(7)).toBe('p2');
    expect(await limit.release(7, 'nobody')).toBe('p3');
    expect(await limit.release(7, 'nobody')).toBeNull();
  });

  it('answers retry instead of parking when a slot came free in between, so no wake-up is lost', async () => {
    const limit = new InFlightLimit(redis, prefix, 1, 60_000);
    expect(await limit.tryAcquire(3, 'holder')).toBe(true);
    expect(await limit.tryAcquire(3, 'late')).toBe(false);
    expect(await limit.release(3, 'holder')).toBeNull(); // nobody parked yet
    expect(await limit.park(3, 'late')).toBe('retry');
    expect(await limit.nextParked(3)).toBeNull();
  });

  it('frees the slot of a holder that died once its lease runs out', async () => {
    const limit = new InFlightLimit(redis, prefix, 1, 200);
    expect(await limit.tryAcquire(9, 'crashed')).toBe(true);
    expect(await limit.tryAcquire(9, 'next')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await limit.inFlight(9)).toBe(0);
    expect(await limit.tryAcquire(9, 'next')).toBe(true);
  });
});
