import { groupBy } from '../collections.js';
import type { RedisConnection } from './queue.js';

/** A job the relay queued parked (see `InFlightLimit.parkQueued`). */
export interface QueuedParked {
  integrationId: number;
  holder: string;
  /** Its place in line: the event id. */
  order: number;
}

/** How soon releases Redis refused are sent again. */
const RELEASE_RETRY_MS = 1_000;

/** A slot a finished delivery left, kept a moment for the next delivery of its integration here. */
interface Spare {
  /** The name the slot has in Redis: the job that took it there. */
  lease: string;
  releasedAt: number;
}

/** An acquire's answer for a slot taken while its integration was marked slow. */
const SLOW = 2;

/**
 * Leases an integration's in-flight set outlives its last acquire or renewal, and a slow mark its
 * last timeout.
 */
const KEPT_LEASES = 20;

/**
 * At most `cap` deliveries of one integration in flight across every worker
 * process (SPEC §6), kept in Redis:
 *
 * - `<prefix>:inflight:<integration>` is a sorted set of the jobs holding a slot,
 *   scored by when their lease runs out, so a worker killed mid-delivery frees its
 *   slot after the lease instead of never;
 * - `<prefix>:waiting:<integration>` is a sorted set of the jobs waiting for a
 *   slot, scored by their place in line (the event id; 0 for a test send, which
 *   goes first). A waiting job sits in BullMQ's delayed set, holding no worker slot.
 *
 * Every release wakes the first job in line (passed to `onWake`, which must
 * promote it). The slot itself is not held for it — whichever job asks first
 * takes it, so no slot idles while the woken job travels through the queue — but
 * a woken job that finds the integration full again goes back in line at its own
 * place, the front. Parking is two steps (the job is moved to delayed, then
 * listed) and the second re-checks for a free slot atomically, so a release in
 * between is never missed. The relay parks new jobs of an integration that already
 * has jobs waiting straight away (`parkQueued`), without a worker taking each one.
 *
 * An integration whose endpoint lately let a delivery run into the timeout (see `settle`) has
 * one slot instead of `cap` until one of its deliveries gets an answer, or for `slowForMs`
 * after its last timeout: an endpoint that hangs holds one worker slot at a time, not `cap`,
 * so even many of them (one project's dozens of integrations) leave the workers to the rest.
 * The mark is `<prefix>:slow:<integration>`, read by every script that counts free slots, so
 * all workers and the relay agree on it.
 *
 * Releases are sent a moment late, together with the next acquire of this
 * process (or on their own after `releaseDelayMs`), and the acquires of jobs that
 * start in the same turn of the event loop go in one call: under load, less than
 * one Redis call per delivery.
 *
 * With `keepMs`, a finished delivery's slot is not released at once but kept, one per
 * integration, for `keepMs` at most: the next delivery of that integration to start in this
 * process takes it with no Redis call at all (it runs under the kept slot's name in Redis), as
 * most deliveries of a busy integration then do. Kept slots count in
 * Redis as held, so the cap holds across workers; what it costs is that a kept slot nobody
 * takes is released (and the next job in line woken) up to `keepMs` late. Never kept: the slot
 * of a delivery that ran into the timeout or that probed a slow mark (the mark's own rules
 * decide about those), or of a job that was parked: its integration has a line, whose next job
 * a release wakes at once, and which a kept slot would only hold up. Nor does a job that was
 * parked take a kept slot: it may still be listed in its line, and Redis takes it out of it; its
 * coming, a sign that its integration has a line, releases the slot kept for it instead. A slot
 * is kept only while its lease is under a third of a lease old, so a chain of quick deliveries
 * on it (none of which lives long enough to renew it) ends well before the lease runs out; and a
 * timeout here lets go of the slot kept for that integration. A slow mark set by another process
 * is not seen by a delivery on a kept slot: at most one such delivery per process, until its
 * chain ends.
 */
export class InFlightLimit {
  private pending: Array<{ integrationId: number; holder: string }> = [];
  private acquiring: Array<{ integrationId: number; holder: string; wasParked: boolean; resolve: (taken: boolean) => void; reject: (err: unknown) => void }> = [];
  private flushTimer: NodeJS.Timeout | null = null;
  /** Holders that took their slot while their integration was marked slow: an answer to one lifts the mark. */
  private readonly probing = new Set<string>();
  /** Holders whose slot is not kept: jobs that were parked, and deliveries that ran into the timeout. */
  private readonly unkept = new Set<string>();
  /** Kept slots by integration, oldest first (see the class comment). */
  private readonly spares = new Map<number, Spare>();
  /** Jobs running on a kept slot, and the slot's name in Redis. */
  private readonly leases = new Map<string, string>();
  /** When each slot this process holds or keeps (by its name in Redis) was last stamped with a new lease. */
  private readonly stampedAt = new Map<string, number>();
  private spareTimer: NodeJS.Timeout | null = null;
  /** How long a timeout marks its integration slow, should no answer come sooner. */
  readonly slowForMs: number;
  private readonly keepMs: number;
  private readonly releaseDelayMs: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly cap: number,
    private readonly leaseMs: number,
    private readonly onWake: (integrationId: number, jobId: string) => void,
    options: { releaseDelayMs?: number; keepMs?: number } = {},
  ) {
    defineScripts(redis);
    this.slowForMs = KEPT_LEASES * leaseMs;
    // A slot is kept only if stamped within the last third of a lease (see `release`), and its
    // next holder stamps it a third of a lease after taking it: well within the lease.
    this.keepMs = Math.min(options.keepMs ?? 0, Math.floor(leaseMs / 4));
    this.releaseDelayMs = options.releaseDelayMs ?? 2;
  }

  private get commands(): LimitCommands {
    return this.redis as unknown as LimitCommands;
  }

  /**
   * Takes a slot for `holder` (a job id) if one is free: a slot kept here for the integration,
   * or else one from Redis. A job that `wasParked` always asks Redis, and a slot kept for its
   * integration goes back with that call. Jobs that start in the same turn of the event loop ask
   * Redis together, in one call.
   */
  tryAcquire(integrationId: number, holder: string, wasParked = false): Promise<boolean> {
    const spare = this.takeSpare(integrationId);
    if (spare !== undefined) {
      if (!wasParked) {
        this.leases.set(holder, spare.lease);
        return Promise.resolve(true);
      }
      // The integration has a line, which a kept slot would only hold up: released with this acquire.
      this.letGo(integrationId, spare.lease);
    }
    return new Promise((resolve, reject) => {
      this.acquiring.push({ integrationId, holder, wasParked, resolve, reject });
      if (this.acquiring.length === 1) setImmediate(() => void this.sendAcquires());
    });
  }

  private async sendAcquires(): Promise<void> {
    const requests = this.acquiring;
    this.acquiring = [];
    const releases = this.takePending();
    const now = Date.now();
    try {
      const reply = await this.commands.mozhnoAcquire(
        requests.length * 3 + releases.length * 2,
        ...requests.map((r) => this.inflightKey(r.integrationId)),
        ...requests.map((r) => this.waitingKey(r.integrationId)),
        ...requests.map((r) => this.slowKey(r.integrationId)),
        ...this.releaseKeys(releases),
        now,
        this.leaseMs,
        this.cap,
        requests.length,
        ...requests.map((r) => r.holder),
        ...releases.map((r) => r.holder),
      );
      requests.forEach((r, i) => {
        if (reply[i] !== 0) this.stampedAt.set(r.holder, now);
        if (reply[i] === SLOW) this.probing.add(r.holder);
        else if (reply[i] !== 0 && r.wasParked) this.unkept.add(r.holder);
        r.resolve(reply[i] !== 0);
      });
      this.wake(releases, reply.slice(requests.length, requests.length + releases.length));
      const freed = reply.slice(requests.length + releases.length);
      for (let j = 0; j < freed.length; j += 2) this.onWake(requests[Number(freed[j]) - 1]!.integrationId, String(freed[j + 1]));
    } catch (err) {
      for (const r of requests) r.reject(err);
      this.retryLater(releases);
    }
  }

  /**
   * Puts a job (already moved to delayed) in line at `order`. Answers 'retry'
   * instead when a slot came free since `tryAcquire`: the caller then wakes the job
   * itself.
   */
  async park(integrationId: number, holder: string, order: number): Promise<'parked' | 'retry'> {
    const [parked, ...woken] = await this.commands.mozhnoPark(
      this.inflightKey(integrationId),
      this.waitingKey(integrationId),
      this.slowKey(integrationId),
      Date.now(),
      this.cap,
      holder,
      order,
    );
    for (const jobId of woken) this.onWake(integrationId, String(jobId));
    return parked === 1 ? 'parked' : 'retry';
  }

  /** How many jobs wait for a slot in each of these integrations' lines, in the same order. */
  async lineLengths(integrationIds: number[]): Promise<number[]> {
    if (integrationIds.length === 0) return [];
    return this.commands.mozhnoWaiting(integrationIds.length, ...integrationIds.map((id) => this.waitingKey(id)));
  }

  /**
   * How many jobs wait ahead of place `order` in the integration's line, when `max` or more do;
   * the job then leaves the line (it fails unsent). Null when it may wait its turn.
   */
  async overBacklog(integrationId: number, holder: string, order: number, max: number): Promise<number | null> {
    const ahead = await this.commands.mozhnoOverBacklog(this.waitingKey(integrationId), holder, order, max);
    return ahead < 0 ? null : ahead;
  }

  /**
   * Puts jobs the relay queued straight into the delayed set in line, then wakes
   * as many of each integration's waiting jobs as it has free slots (its holders
   * may have finished meanwhile, with nobody left in line to wake).
   */
  async parkQueued(jobs: QueuedParked[]): Promise<void> {
    if (jobs.length === 0) return;
    const byIntegration = groupBy(jobs, (job) => job.integrationId);
    const ids = [...byIntegration.keys()];
    const woken = await this.commands.mozhnoParkQueued(
      ids.length * 3,
      ...ids.flatMap((id) => [this.inflightKey(id), this.waitingKey(id), this.slowKey(id)]),
      Date.now(),
      this.cap,
      ...ids.flatMap((id) => {
        const list = byIntegration.get(id)!;
        return [list.length, ...list.flatMap((j) => [j.order, j.holder])];
      }),
    );
    woken.forEach((jobIds, i) => {
      for (const jobId of jobIds) this.onWake(ids[i]!, jobId);
    });
  }

  /**
   * Keeps a slot `holder` took while it is held: its lease (an attempt and 15 s) is stamped anew
   * every third of a lease, so a job that holds it longer — a read waiting for PostgreSQL before
   * the POST, a record waiting to be saved after it — does not see it swept as a crashed holder's
   * and taken by another job meanwhile. A job done within a third of a lease (nearly all) sends
   * nothing. Answers the function that stops it; call it before `release`.
   */
  hold(integrationId: number, holder: string): () => void {
    // ZADD XX only stamps an entry that is still there: a renewal that reaches Redis after the
    // slot's release (they travel apart) cannot put the slot back. The set's own expiry (20 leases
    // from the last acquire) is pushed on too, so a slot held that long is not dropped with it.
    const key = this.inflightKey(integrationId);
    const lease = this.leases.get(holder) ?? holder;
    const renew = () => {
      const now = Date.now();
      if (this.stampedAt.has(lease)) this.stampedAt.set(lease, now);
      void this.redis
        .multi()
        .zadd(key, 'XX', now + this.leaseMs, lease)
        .pexpire(key, KEPT_LEASES * this.leaseMs)
        .exec()
        .catch(() => undefined);
    };
    const renewal = setInterval(renew, Math.max(1, Math.floor(this.leaseMs / 3)));
    renewal.unref();
    return () => clearInterval(renewal);
  }

  /**
   * What became of the delivery `holder` made, before its `release`: one that ran into the
   * timeout marks its integration slow (one slot) for `slowForMs`; an answer to a delivery made
   * while the mark was on lifts it. Sent at once, ahead of the release, on the same connection.
   */
  settle(integrationId: number, holder: string, timedOut: boolean): void {
    if (timedOut) {
      this.unkept.add(holder);
      // Nor is the slot kept here for it given to another delivery: it would not see the mark.
      const spare = this.takeSpare(integrationId);
      if (spare !== undefined) this.letGo(integrationId, spare.lease);
      void this.redis.set(this.slowKey(integrationId), '1', 'PX', this.slowForMs).catch(() => undefined);
    } else if (this.probing.has(holder)) {
      // The line has been woken one job per release; now as many as the cap has room for, or it
      // would go on one at a time (the probe's own release wakes one more, for its slot).
      void this.commands
        .mozhnoLift(this.inflightKey(integrationId), this.waitingKey(integrationId), this.slowKey(integrationId), this.cap)
        .then((woken) => {
          for (const jobId of woken) this.onWake(integrationId, jobId);
        })
        .catch(() => undefined);
    }
  }

  /** Whether the integration is marked slow (see `settle`). */
  async slow(integrationId: number): Promise<boolean> {
    return (await this.redis.exists(this.slowKey(integrationId))) === 1;
  }

  /** Frees the slot, or keeps it for the integration's next delivery (see the class comment). */
  release(integrationId: number, holder: string): void {
    const probed = this.probing.delete(holder);
    const unkept = this.unkept.delete(holder);
    const lease = this.leases.get(holder) ?? holder;
    this.leases.delete(holder);
    const now = Date.now();
    // Kept only while its lease is fresh: a chain of quick deliveries on one kept slot renews
    // nothing (each renews only after a third of a lease), so it ends, released, by then.
    const fresh = now - (this.stampedAt.get(lease) ?? -Infinity) < this.leaseMs / 3;
    if (this.keepMs > 0 && fresh && !probed && !unkept && !this.spares.has(integrationId)) {
      this.spares.set(integrationId, { lease, releasedAt: now });
      this.spareTimer ??= setTimeout(this.releaseSpares, this.keepMs).unref();
      return;
    }
    this.letGo(integrationId, lease);
  }

  /** The slot kept for the integration, no longer kept; undefined when there is none. */
  private takeSpare(integrationId: number): Spare | undefined {
    const spare = this.spares.get(integrationId);
    this.spares.delete(integrationId);
    return spare;
  }

  /** Releases a slot for good (soon: see the class comment). */
  private letGo(integrationId: number, lease: string): void {
    this.stampedAt.delete(lease);
    this.pending.push({ integrationId, holder: lease });
    this.flushIn(this.releaseDelayMs);
  }

  /** Releases the slots kept for `keepMs` with no taker; the rest when their time comes. */
  private readonly releaseSpares = (): void => {
    this.spareTimer = null;
    const now = Date.now();
    for (const [integrationId, spare] of this.spares) {
      const due = spare.releasedAt + this.keepMs;
      if (due > now) {
        // Kept in the order they were left: the rest are younger still.
        this.spareTimer = setTimeout(this.releaseSpares, due - now).unref();
        break;
      }
      this.spares.delete(integrationId);
      this.letGo(integrationId, spare.lease);
    }
  };

  /** Sends every release not sent yet, kept slots' too; on shutdown. */
  async flush(): Promise<void> {
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    for (const [integrationId, spare] of this.spares) this.letGo(integrationId, spare.lease);
    this.spares.clear();
    await this.sendReleases();
  }

  private async sendReleases(): Promise<void> {
    const releases = this.takePending();
    if (releases.length === 0) return;
    try {
      const woken = await this.commands.mozhnoRelease(releases.length * 2, ...this.releaseKeys(releases), ...releases.map((r) => r.holder));
      this.wake(releases, woken);
    } catch (err) {
      this.retryLater(releases);
      throw err;
    }
  }

  private flushIn(ms: number): void {
    // The timer's flush answers nobody: a failure is retried by `retryLater`, never left unhandled.
    this.flushTimer ??= setTimeout(() => void this.sendReleases().catch(() => undefined), ms);
    this.flushTimer.unref();
  }

  /**
   * Releases Redis refused (an error reply: READONLY after a failover, OOM) go again
   * with the next call, or on their own a little later; until then their leases hold.
   */
  private retryLater(releases: Array<{ integrationId: number; holder: string }>): void {
    this.pending.push(...releases);
    this.flushIn(RELEASE_RETRY_MS);
  }

  /** Wakes the next parked job, when the one a release woke turned out to be gone. */
  async wakeNext(integrationId: number): Promise<void> {
    const woken = await this.commands.mozhnoRelease(2, ...this.releaseKeys([{ integrationId }]), '');
    this.wake([{ integrationId }], woken);
  }

  /** How many deliveries of the integration hold a slot now (expired leases not counted). */
  async inFlight(integrationId: number): Promise<number> {
    return this.redis.zcount(this.inflightKey(integrationId), Date.now(), '+inf');
  }

  /** The jobs of the integration waiting for a slot, first in line first. */
  async waiting(integrationId: number): Promise<string[]> {
    return this.redis.zrange(this.waitingKey(integrationId), 0, -1);
  }

  private takePending(): Array<{ integrationId: number; holder: string }> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const releases = this.pending;
    this.pending = [];
    return releases;
  }

  private releaseKeys(releases: Array<{ integrationId: number }>): string[] {
    return releases.flatMap((r) => [this.inflightKey(r.integrationId), this.waitingKey(r.integrationId)]);
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

  private waitingKey(integrationId: number): string {
    return `${this.prefix}:waiting:${integrationId}`;
  }

  private slowKey(integrationId: number): string {
    return `${this.prefix}:slow:${integrationId}`;
  }
}

interface LimitCommands {
  mozhnoAcquire(numKeys: number, ...args: Array<string | number>): Promise<Array<number | string>>;
  mozhnoPark(inflight: string, waiting: string, slow: string, now: number, cap: number, holder: string, order: number): Promise<Array<number | string>>;
  mozhnoRelease(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
  mozhnoWaiting(numKeys: number, ...keys: string[]): Promise<number[]>;
  mozhnoOverBacklog(waiting: string, holder: string, order: number, max: number): Promise<number>;
  mozhnoParkQueued(numKeys: number, ...args: Array<string | number>): Promise<string[][]>;
  mozhnoLift(inflight: string, waiting: string, slow: string, cap: number): Promise<string[]>;
}

// Releases: for each (inflight, waiting) pair of KEYS from `firstKey` and holder in ARGV from `first`,
// frees the holder's slot and takes the first waiting job out of line to be woken. Answers, per
// release, the job woken ('' for none). A holder no longer listed (its lease ran out and was swept,
// and the sweep woke a job for its slot; or a job run twice releasing again) frees nothing and wakes
// nobody; the holder '' (wakeNext) only wakes.
const RELEASES = `
local function release(first, firstKey)
  local woken = {}
  local count = (#KEYS - firstKey + 1) / 2
  for k = 0, count - 1 do
    local holder = ARGV[first + k]
    woken[k + 1] = ''
    if redis.call('ZREM', KEYS[firstKey + 2 * k], holder) == 1 or holder == '' then
      local nextJob = redis.call('ZPOPMIN', KEYS[firstKey + 2 * k + 1])
      woken[k + 1] = nextJob[1] or ''
    end
  end
  return woken
end`;

// Slots expired leases freed (their holders died): no release will ever wake a job for them.
// Takes as many jobs out of line as there are free slots, appending (index, job) pairs to `into`.
const WAKE_FREED = `
local function wakeFreed(free, waiting, index, into)
  if free <= 0 then return end
  local popped = redis.call('ZPOPMIN', waiting, free)
  for j = 1, #popped, 2 do
    table.insert(into, index)
    table.insert(into, popped[j])
  end
end`;

// An integration's cap: one slot while it is marked slow (see `settle`).
const CAP_OF = `
local function capOf(slow, cap)
  if redis.call('EXISTS', slow) == 1 then return 1, true end
  return cap, false
end`;

// KEYS: the inflight set of each acquire, then the waiting set of each, then the slow mark of
// each, then release pairs.
// ARGV: now, lease, cap, number of acquires n, their n holders, then release holders.
// Answers 1 or 0 per acquire (2: taken while the integration is marked slow), then the job woken
// per release, then (acquire number, job) pairs of jobs woken for slots that expired leases freed.
// Releases go first: they free slots.
// A job that gets a slot leaves its line: one whose safety delay ran out is still in it, and
// would be counted as waiting (WEBHOOK_MAX_BACKLOG) until a release popped it.
const ACQUIRE = `${RELEASES}${WAKE_FREED}${CAP_OF}
local now, lease, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local woken = release(5 + n, 3 * n + 1)
-- Jobs these releases woke are on their way to the slots they freed.
local onTheirWay = {}
for k, jobId in ipairs(woken) do
  if jobId ~= '' then
    local inflight = KEYS[3 * n + 2 * k - 1]
    onTheirWay[inflight] = (onTheirWay[inflight] or 0) + 1
  end
end
local answers = {}
local swept, sweptOrder = {}, {}
for i = 1, n do
  local inflight, holder = KEYS[i], ARGV[4 + i]
  local cap, marked = capOf(KEYS[2 * n + i], tonumber(ARGV[3]))
  answers[i] = 0
  -- Expired leases (their holders crashed) only matter once the integration looks full.
  local count = redis.call('ZCARD', inflight)
  if count >= cap then
    local expired = redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
    if expired > 0 then
      if swept[inflight] then
        swept[inflight][1] = swept[inflight][1] + expired
      else
        swept[inflight] = {expired, KEYS[n + i], i, cap}
        table.insert(sweptOrder, inflight)
      end
      count = count - expired
    end
  end
  if count < cap or redis.call('ZSCORE', inflight, holder) then
    redis.call('ZADD', inflight, now + lease, holder)
    -- Kept well past the last lease (20 of them outlast a parked job's longest safety delay, 16 ×
    -- (lease + 5 s), from WEBHOOK_TIMEOUT_MS ≈ 12 s up; below, a line falls back on those delays),
    -- so that leases expired all together are still there to be swept, and their slots woken for.
    redis.call('PEXPIRE', inflight, ${KEPT_LEASES} * lease)
    redis.call('ZREM', KEYS[n + i], holder)
    answers[i] = marked and 2 or 1
  end
end
for _, jobId in ipairs(woken) do table.insert(answers, jobId) end
-- Once every acquire of the call has had its slot: jobs in line for what the sweeps freed and
-- nobody took (a slot that merely looks free may be one a woken job is on its way to).
for _, inflight in ipairs(sweptOrder) do
  local s = swept[inflight]
  local free = s[4] - redis.call('ZCARD', inflight) - (onTheirWay[inflight] or 0)
  wakeFreed(math.min(s[1], free), s[2], s[3], answers)
end
return answers`;

// KEYS: release pairs. ARGV: holders…
const RELEASE = `${RELEASES}
return release(1, 1)`;

// KEYS: inflight, waiting, slow mark. ARGV: now, cap, holder, order. Answers {1} when the job is
// in line, else {0, jobs…}: a slot is free, for the job itself (the caller wakes it) and, should
// expired leases have freed more, for the jobs taken out of line here.
const PARK = `${WAKE_FREED}${CAP_OF}
local cap = capOf(KEYS[3], tonumber(ARGV[2]))
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if count < cap then
  local freed = {}
  -- Only slots the sweep freed, beyond the one this job takes: another that looks free may be one
  -- a job woken by a release is on its way to.
  wakeFreed(math.min(cap - 1 - count, expired - 1), KEYS[2], 0, freed)
  local answer = {0}
  for j = 2, #freed, 2 do table.insert(answer, freed[j]) end
  return answer
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return {1}`;

// KEYS: waiting sets. Answers how many jobs wait in each.
const WAITING = `
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = redis.call('ZCARD', key) end
return counts`;

// KEYS: waiting. ARGV: holder, order, max. Answers how many wait ahead of `order` when max or
// more do, the holder taken out of line; else -1. A test send (order 0) goes first in line, so
// one joining it is measured against the whole line: test sends alone cannot make it longer than
// max. Once in line, it is first, and never refused.
const OVER_BACKLOG = `
local ahead
if tonumber(ARGV[2]) <= 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  ahead = redis.call('ZCARD', KEYS[1])
else
  ahead = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
end
if ahead < tonumber(ARGV[3]) then
  return -1
end
redis.call('ZREM', KEYS[1], ARGV[1])
return ahead`;

// KEYS: (inflight, waiting, slow mark) per integration. ARGV: now, cap, then per integration: how
// many jobs, then (order, holder) of each. Answers, per integration, the jobs to wake: as many as it
// has free slots.
const PARK_QUEUED = `${CAP_OF}
local now, a = tonumber(ARGV[1]), 3
local woken = {}
for k = 1, #KEYS / 3 do
  local inflight, waiting = KEYS[3 * k - 2], KEYS[3 * k - 1]
  local cap = capOf(KEYS[3 * k], tonumber(ARGV[2]))
  local n = tonumber(ARGV[a])
  for j = 1, n do redis.call('ZADD', waiting, ARGV[a + 2 * j - 1], ARGV[a + 2 * j]) end
  a = a + 2 * n + 1
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local free = cap - redis.call('ZCARD', inflight)
  local wake = {}
  if free > 0 then
    local popped = redis.call('ZPOPMIN', waiting, free)
    for j = 1, #popped, 2 do table.insert(wake, popped[j]) end
  end
  woken[k] = wake
end
return woken`;

// KEYS: inflight, waiting, slow mark. ARGV: cap. Lifts the mark and takes out of line as many jobs
// as the integration has free slots. Also when the mark was gone already (run out, or deleted by an
// operator): the line was still being woken one job per release. Lifted twice (two probes answered),
// the second may wake a job or two too many, which only re-park.
const LIFT = `
redis.call('DEL', KEYS[3])
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {} end
local popped = redis.call('ZPOPMIN', KEYS[2], free)
local woken = {}
for j = 1, #popped, 2 do table.insert(woken, popped[j]) end
return woken`;

function defineScripts(redis: RedisConnection): void {
  if ('mozhnoAcquire' in redis) return;
  // Key names come in as KEYS so the scripts also run on Redis Cluster (all keys share the prefix's hash tag).
  redis.defineCommand('mozhnoAcquire', { lua: ACQUIRE });
  redis.defineCommand('mozhnoPark', { numberOfKeys: 3, lua: PARK });
  redis.defineCommand('mozhnoRelease', { lua: RELEASE });
  redis.defineCommand('mozhnoWaiting', { lua: WAITING });
  redis.defineCommand('mozhnoOverBacklog', { numberOfKeys: 1, lua: OVER_BACKLOG });
  redis.defineCommand('mozhnoParkQueued', { lua: PARK_QUEUED });
  redis.defineCommand('mozhnoLift', { numberOfKeys: 3, lua: LIFT });
}
