import type { RedisConnection } from './queue.js';

/**
 * At most `cap` deliveries of one integration in flight across every worker
 * process (SPEC §6), kept in Redis:
 *
 * - `<prefix>:inflight:<integration>` is a sorted set of the jobs holding a slot,
 *   scored by when their lease runs out, so a worker killed mid-delivery frees its
 *   slot after the lease instead of never;
 * - `<prefix>:parked:<integration>` lists the jobs waiting for a slot, oldest
 *   first. A waiting job sits in BullMQ's delayed set, holding no worker slot.
 *
 * Every release wakes the oldest parked job (passed to `onWake`, which must
 * promote it). The slot itself is not held for it — whichever job asks first
 * takes it, so no slot idles while the woken job travels through the queue — but
 * a woken job that finds the integration full again is parked at the front, not
 * the back: parked jobs keep their order. `<prefix>:woken:<integration>` marks
 * them. Parking is two steps (the job is moved to delayed, then listed) and the
 * second re-checks for a free slot atomically, so a release in between is never
 * missed.
 *
 * Releases are sent a moment late, together with the next acquire of this
 * process (or on their own after `releaseDelayMs`), and the acquires of jobs that
 * start in the same turn of the event loop go in one call: under load, less than
 * one Redis call per delivery.
 */
export class InFlightLimit {
  private pending: Array<{ integrationId: number; holder: string }> = [];
  private acquiring: Array<{ integrationId: number; holder: string; resolve: (taken: boolean) => void; reject: (err: unknown) => void }> = [];
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly cap: number,
    private readonly leaseMs: number,
    private readonly onWake: (integrationId: number, jobId: string) => void,
    private readonly releaseDelayMs = 2,
  ) {
    defineScripts(redis);
  }

  private get commands(): LimitCommands {
    return this.redis as unknown as LimitCommands;
  }

  /**
   * Takes a slot for `holder` (a job id) if one is free. Jobs that start in the
   * same turn of the event loop ask together, in one call.
   */
  tryAcquire(integrationId: number, holder: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.acquiring.push({ integrationId, holder, resolve, reject });
      if (this.acquiring.length === 1) setImmediate(() => void this.sendAcquires());
    });
  }

  private async sendAcquires(): Promise<void> {
    const requests = this.acquiring;
    this.acquiring = [];
    const releases = this.takePending();
    try {
      const reply = await this.commands.mozhnoAcquire(
        requests.length * 2 + releases.length * 3,
        ...requests.flatMap((r) => [this.inflightKey(r.integrationId), this.wokenKey(r.integrationId)]),
        ...this.releaseKeys(releases),
        Date.now(),
        this.leaseMs,
        this.cap,
        requests.length,
        ...requests.map((r) => r.holder),
        ...releases.map((r) => r.holder),
      );
      requests.forEach((r, i) => r.resolve(reply[i] === 1));
      this.wake(releases, reply.slice(requests.length));
    } catch (err) {
      for (const r of requests) r.reject(err);
      this.pending.push(...releases); // sent again with the next call; until then their leases hold
      this.flushTimer ??= setTimeout(() => void this.flush().catch(() => undefined), this.releaseDelayMs);
    }
  }

  /**
   * Lists a job (already moved to delayed) as waiting. Answers 'retry' instead when
   * a slot came free since `tryAcquire`: the caller then wakes the job itself.
   */
  async park(integrationId: number, holder: string): Promise<'parked' | 'retry'> {
    const parked = await this.commands.mozhnoPark(
      this.inflightKey(integrationId),
      this.parkedKey(integrationId),
      this.wokenKey(integrationId),
      Date.now(),
      this.cap,
      holder,
    );
    return parked === 1 ? 'parked' : 'retry';
  }

  /** Frees the slot (soon: see the class comment). */
  release(integrationId: number, holder: string): void {
    this.pending.push({ integrationId, holder });
    this.flushTimer ??= setTimeout(() => void this.flush(), this.releaseDelayMs);
  }

  /** Sends the releases not sent yet; on shutdown, and by the timer. */
  async flush(): Promise<void> {
    const releases = this.takePending();
    if (releases.length === 0) return;
    const woken = await this.commands.mozhnoRelease(releases.length * 3, ...this.releaseKeys(releases), this.leaseMs, ...releases.map((r) => r.holder));
    this.wake(releases, woken);
  }

  /** Wakes the next parked job, when the one a release woke turned out to be gone. */
  async wakeNext(integrationId: number): Promise<void> {
    const woken = await this.commands.mozhnoRelease(3, ...this.releaseKeys([{ integrationId }]), this.leaseMs, '');
    this.wake([{ integrationId }], woken);
  }

  /** How many deliveries of the integration hold a slot now (expired leases not counted). */
  async inFlight(integrationId: number): Promise<number> {
    return this.redis.zcount(this.inflightKey(integrationId), Date.now(), '+inf');
  }

  private takePending(): Array<{ integrationId: number; holder: string }> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const releases = this.pending;
    this.pending = [];
    return releases;
  }

  private releaseKeys(releases: Array<{ integrationId: number }>): string[] {
    return releases.flatMap((r) => [this.inflightKey(r.integrationId), this.parkedKey(r.integrationId), this.wokenKey(r.integrationId)]);
  }

  private wake(releases: Array<{ integrationId: number }>, woken: Array<string | number>): void {
    releases.forEach((release, i) => {
      const jobId = woken[i];
      if (typeof jobId === 'string' && jobId !== '') this.onWake(release.integrationId, jobId);
    });
  }

  private inflightKey(integrationId: number): string {
    return `${this.prefix}:inflight:${integrationId}`;
  }

  private parkedKey(integrationId: number): string {
    return `${this.prefix}:parked:${integrationId}`;
  }

  private wokenKey(integrationId: number): string {
    return `${this.prefix}:woken:${integrationId}`;
  }
}

interface LimitCommands {
  mozhnoAcquire(numKeys: number, ...args: Array<string | number>): Promise<Array<number | string>>;
  mozhnoPark(inflight: string, parked: string, woken: string, now: number, cap: number, holder: string): Promise<number>;
  mozhnoRelease(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
}

// Releases: for each (inflight, parked, woken) triple of KEYS from `firstKey` and holder in ARGV from
// `first`, frees the holder's slot and wakes the oldest parked job. Answers, per release, the job woken
// ('' for none).
const RELEASES = `
local function release(lease, first, firstKey)
  local woken = {}
  local count = (#KEYS - firstKey + 1) / 3
  for k = 0, count - 1 do
    local inflight, parked, wokenSet = KEYS[firstKey + 3 * k], KEYS[firstKey + 3 * k + 1], KEYS[firstKey + 3 * k + 2]
    redis.call('ZREM', inflight, ARGV[first + k])
    local nextJob = redis.call('LPOP', parked)
    if nextJob then
      redis.call('SADD', wokenSet, nextJob)
      redis.call('PEXPIRE', wokenSet, lease)
      woken[k + 1] = nextJob
    else
      woken[k + 1] = ''
    end
  end
  return woken
end`;

// KEYS: (inflight, woken) of each acquire, then release triples.
// ARGV: now, lease, cap, number of acquires n, their n holders, then release holders.
// Answers 1 or 0 per acquire, then the job woken per release. Releases go first: they free slots.
const ACQUIRE = `${RELEASES}
local now, lease, cap, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local woken = release(lease, 5 + n, 2 * n + 1)
local answers = {}
for i = 1, n do
  local inflight, wokenSet, holder = KEYS[2 * i - 1], KEYS[2 * i], ARGV[4 + i]
  answers[i] = 0
  -- Expired leases (their holders crashed) only matter once the integration looks full.
  local count = redis.call('ZCARD', inflight)
  if count >= cap then
    redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
    count = redis.call('ZCARD', inflight)
  end
  if count < cap or redis.call('ZSCORE', inflight, holder) then
    redis.call('ZADD', inflight, now + lease, holder)
    redis.call('PEXPIRE', inflight, lease)
    redis.call('SREM', wokenSet, holder)
    answers[i] = 1
  end
end
for _, jobId in ipairs(woken) do table.insert(answers, jobId) end
return answers`;

// KEYS: release triples. ARGV: lease, holders…
const RELEASE = `${RELEASES}
return release(tonumber(ARGV[1]), 2, 1)`;

// KEYS: inflight, parked, woken. ARGV: now, cap, holder. A job woken before goes back to the front.
const PARK = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  return 0
end
if redis.call('SREM', KEYS[3], ARGV[3]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[3])
else
  redis.call('RPUSH', KEYS[2], ARGV[3])
end
return 1`;

function defineScripts(redis: RedisConnection): void {
  if ('mozhnoAcquire' in redis) return;
  // Key names come in as KEYS so the scripts also run on Redis Cluster (all keys share the prefix's hash tag).
  redis.defineCommand('mozhnoAcquire', { lua: ACQUIRE });
  redis.defineCommand('mozhnoPark', { numberOfKeys: 3, lua: PARK });
  redis.defineCommand('mozhnoRelease', { lua: RELEASE });
}
