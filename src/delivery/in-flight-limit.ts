import type { RedisConnection } from './queue.js';

/**
 * At most `cap` deliveries of one integration in flight across every worker
 * process (SPEC §6), kept in Redis:
 *
 * - `<prefix>:inflight:<integration>` is a sorted set of the jobs holding a slot,
 *   scored by when their lease runs out, so a worker killed mid-delivery frees its
 *   slot after the lease instead of never;
 * - `<prefix>:parked:<integration>` lists the jobs waiting for a slot, oldest
 *   first. A waiting job sits in BullMQ's delayed set, holding no worker slot;
 *   whoever releases a slot wakes the oldest one.
 *
 * Parking is two steps (the job is moved to delayed, then listed) and the second
 * step re-checks for a free slot atomically, so a release that happened in
 * between is never missed.
 */
export class InFlightLimit {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly cap: number,
    private readonly leaseMs: number,
  ) {
    defineScripts(redis);
  }

  private get commands(): LimitCommands {
    return this.redis as unknown as LimitCommands;
  }

  /** Takes a slot for `holder` (a job id) if one is free. */
  async tryAcquire(integrationId: number, holder: string): Promise<boolean> {
    const taken = await this.commands.mozhnoAcquire(this.inflightKey(integrationId), Date.now(), this.leaseMs, this.cap, holder);
    return taken === 1;
  }

  /**
   * Lists a job (already moved to delayed) as waiting. Answers 'retry' instead when
   * a slot came free since `tryAcquire`: the caller then wakes the job itself.
   */
  async park(integrationId: number, holder: string): Promise<'parked' | 'retry'> {
    const parked = await this.commands.mozhnoPark(
      this.inflightKey(integrationId),
      this.parkedKey(integrationId),
      Date.now(),
      this.cap,
      holder,
    );
    return parked === 1 ? 'parked' : 'retry';
  }

  /** Frees the slot; answers the oldest waiting job to wake, if any. */
  async release(integrationId: number, holder: string): Promise<string | null> {
    return this.commands.mozhnoRelease(this.inflightKey(integrationId), this.parkedKey(integrationId), holder);
  }

  /** The next waiting job, when the one `release` answered could not be woken (gone, or woken already). */
  async nextParked(integrationId: number): Promise<string | null> {
    return this.redis.lpop(this.parkedKey(integrationId));
  }

  /** How many deliveries of the integration hold a slot now (expired leases not counted). */
  async inFlight(integrationId: number): Promise<number> {
    return this.redis.zcount(this.inflightKey(integrationId), Date.now(), '+inf');
  }

  private inflightKey(integrationId: number): string {
    return `${this.prefix}:inflight:${integrationId}`;
  }

  private parkedKey(integrationId: number): string {
    return `${this.prefix}:parked:${integrationId}`;
  }
}

interface LimitCommands {
  mozhnoAcquire(inflight: string, now: number, leaseMs: number, cap: number, holder: string): Promise<number>;
  mozhnoPark(inflight: string, parked: string, now: number, cap: number, holder: string): Promise<number>;
  mozhnoRelease(inflight: string, parked: string, holder: string): Promise<string | null>;
}

const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  local expires = tonumber(ARGV[1]) + tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], expires, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

const PARK = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[3])
return 1`;

const RELEASE = `
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('LPOP', KEYS[2])`;

function defineScripts(redis: RedisConnection): void {
  if ('mozhnoAcquire' in redis) return;
  // Key names come in as KEYS so the scripts also run on Redis Cluster (both keys share the prefix's hash tag).
  redis.defineCommand('mozhnoAcquire', { numberOfKeys: 1, lua: ACQUIRE });
  redis.defineCommand('mozhnoPark', { numberOfKeys: 2, lua: PARK });
  redis.defineCommand('mozhnoRelease', { numberOfKeys: 2, lua: RELEASE });
}
