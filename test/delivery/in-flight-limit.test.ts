import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { InFlightLimit } from '../../src/delivery/in-flight-limit.js';
import { REDIS_URL } from '../support/env.js';

const redis = new Redis(REDIS_URL);
const prefixes: string[] = [];
let woken: Array<[number, string]>;

/** A key prefix of its own (its keys are deleted after the file). */
function newPrefix(): string {
  const prefix = `mozhno-test-limit-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}

/** Records the parked jobs a limit's releases wake. */
const recordWake = (integrationId: number, jobId: string): void => {
  woken.push([integrationId, jobId]);
};

/** A limit with its own key prefix, recording the parked jobs its releases wake. */
function limitOf(cap: number, leaseMs = 60_000, releaseDelayMs = 2): InFlightLimit {
  return new InFlightLimit(redis, newPrefix(), cap, leaseMs, recordWake, { releaseDelayMs });
}

/** What `run` answered and how many scripts of the limit it sent to Redis. */
async function commandCalls<T>(run: () => Promise<T>): Promise<{ result: T; count: number }> {
  const sent = redis.sendCommand.bind(redis);
  let count = 0;
  redis.sendCommand = (command, stream) => {
    if (command.name === 'evalsha' || command.name === 'eval') count += 1;
    return sent(command, stream);
  };
  try {
    return { result: await run(), count };
  } finally {
    redis.sendCommand = sent;
  }
}

beforeEach(() => {
  woken = [];
});

/** Polls `check` for a second: a lift's wake-ups come back after settle, which answers nothing. */
async function eventuallyTrue(check: () => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 100 && !(await check()); tries++) await new Promise((resolve) => setTimeout(resolve, 10));
}
afterAll(async () => {
  for (const used of prefixes) {
    const keys = await redis.keys(`${used}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

describe('InFlightLimit', () => {
  it('grants at most `cap` slots per integration; other integrations are unaffected', async () => {
    const limit = limitOf(2);
    expect(await limit.tryAcquire(1, 'a')).toBe(true);
    expect(await limit.tryAcquire(1, 'b')).toBe(true);
    expect(await limit.tryAcquire(1, 'c')).toBe(false);
    expect(await limit.tryAcquire(2, 'c')).toBe(true);
    expect(await limit.inFlight(1)).toBe(2);
    // A holder asking again (a job taken up after a stall) keeps its slot rather than needing a second one.
    expect(await limit.tryAcquire(1, 'a')).toBe(true);
    expect(await limit.inFlight(1)).toBe(2);
  });

  it('wakes parked jobs in event order, one per release; a woken job that finds it full again keeps the front', async () => {
    const limit = limitOf(1);
    expect(await limit.tryAcquire(7, 'first')).toBe(true);
    // Parked out of order (p2's worker got there first): the line follows the events.
    for (const [job, order] of [['p2', 20], ['p1', 10]] as const) {
      expect(await limit.tryAcquire(7, job)).toBe(false);
      expect(await limit.park(7, job, order)).toBe('parked');
    }
    expect(await limit.waiting(7)).toEqual(['p1', 'p2']);
    limit.release(7, 'first');
    await limit.flush();
    expect(woken).toEqual([[7, 'p1']]);
    expect(await limit.inFlight(7)).toBe(0);
    // A newcomer takes the free slot before p1 arrives: p1 goes back to the front, not behind p2.
    expect(await limit.tryAcquire(7, 'newcomer')).toBe(true);
    expect(await limit.tryAcquire(7, 'p1')).toBe(false);
    expect(await limit.park(7, 'p1', 10)).toBe('parked');
    limit.release(7, 'newcomer');
    await limit.flush();
    expect(woken).toEqual([[7, 'p1'], [7, 'p1']]);
    expect(await limit.tryAcquire(7, 'p1')).toBe(true);
    limit.release(7, 'p1');
    await limit.flush();
    expect(woken).toEqual([[7, 'p1'], [7, 'p1'], [7, 'p2']]);
    // Should a woken job be gone, the next one can be woken directly.
    await limit.wakeNext(7);
    expect(woken).toHaveLength(3);
  });

  it('sends pending releases with the next acquire, before its timer', async () => {
    const limit = limitOf(1, 60_000, 10_000);
    expect(await limit.tryAcquire(5, 'holder')).toBe(true);
    expect(await limit.tryAcquire(5, 'waiting')).toBe(false);
    expect(await limit.park(5, 'waiting', 1)).toBe('parked');
    limit.release(5, 'holder');
    expect(woken).toEqual([]);
    expect(await limit.tryAcquire(6, 'other')).toBe(true);
    expect(woken).toEqual([[5, 'waiting']]);
    await limit.flush();
    expect(woken).toHaveLength(1);
  });

  it('asks for the slots of jobs starting in the same turn in one call, holding the cap among them', async () => {
    const limit = limitOf(2, 60_000, 10_000);
    expect(await limit.tryAcquire(4, 'holder')).toBe(true);
    limit.release(4, 'holder'); // pending: it goes with the batch below and frees its slot first
    const calls = await commandCalls(() =>
      Promise.all([limit.tryAcquire(4, 'a'), limit.tryAcquire(4, 'b'), limit.tryAcquire(4, 'c'), limit.tryAcquire(11, 'd')]),
    );
    expect(calls.result).toEqual([true, true, false, true]);
    expect(calls.count).toBe(1);
    expect(await limit.inFlight(4)).toBe(2);
  });

  it('sends a release on its own after the delay when no acquire comes', async () => {
    const limit = limitOf(1, 60_000, 20);
    expect(await limit.tryAcquire(8, 'holder')).toBe(true);
    limit.release(8, 'holder');
    expect(await limit.inFlight(8)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await limit.inFlight(8)).toBe(0);
  });

  it('answers retry instead of parking when a slot came free in between, so no wake-up is lost', async () => {
    const limit = limitOf(1);
    expect(await limit.tryAcquire(3, 'holder')).toBe(true);
    expect(await limit.tryAcquire(3, 'late')).toBe(false);
    limit.release(3, 'holder');
    await limit.flush(); // nobody parked yet: the slot is simply free
    expect(woken).toEqual([]);
    expect(await limit.park(3, 'late', 1)).toBe('retry');
    expect(await limit.waiting(3)).toEqual([]);
  });

  it('takes a parked job that gets a slot on its own (its safety delay ran out) out of line, so it is not counted as waiting', async () => {
    const limit = limitOf(1, 50);
    expect(await limit.tryAcquire(22, 'crashed')).toBe(true);
    expect(await limit.park(22, 'e4', 4)).toBe('parked');
    await new Promise((resolve) => setTimeout(resolve, 80)); // the holder's lease runs out, with nobody releasing it
    expect(await limit.tryAcquire(22, 'e4')).toBe(true);
    expect(await limit.waiting(22)).toEqual([]);
    expect(await limit.overBacklog(22, 'e5', 5, 1)).toBeNull();
  });

  it('takes a job out of line and counts those ahead of it once the line is WEBHOOK_MAX_BACKLOG long there', async () => {
    const limit = limitOf(1);
    expect(await limit.tryAcquire(21, 'holder')).toBe(true);
    for (const order of [5, 6, 7]) expect(await limit.park(21, `e${order}`, order)).toBe('parked');
    expect(await limit.overBacklog(21, 'e8', 8, 4)).toBeNull(); // 3 ahead of it, fewer than 4
    expect(await limit.overBacklog(21, 'e8', 8, 3)).toBe(3);
    expect(await limit.overBacklog(21, 'e6', 6, 1)).toBe(1); // in line already: only e5 is ahead, and e6 leaves
    expect(await limit.waiting(21)).toEqual(['e5', 'e7']);
    // A test send goes first in line, but counts the whole line: test sends alone cannot grow it past the limit.
    expect(await limit.overBacklog(21, 'test', 0, 3)).toBeNull();
    expect(await limit.overBacklog(21, 'test', 0, 2)).toBe(2);
    expect(await limit.park(21, 'in-line', 0)).toBe('parked'); // a test send in line already: first, kept
    expect(await limit.overBacklog(21, 'in-line', 0, 1)).toBeNull();
  });

  it('parks the jobs the relay queued behind those waiting, in event order, and wakes as many as there are free slots', async () => {
    const limit = limitOf(2);
    expect(await limit.tryAcquire(12, 'holder')).toBe(true);
    expect(await limit.tryAcquire(12, 'other')).toBe(true);
    expect(await limit.tryAcquire(12, 'e5')).toBe(false);
    expect(await limit.park(12, 'e5', 5)).toBe('parked');
    expect(await limit.lineLengths([12, 13])).toEqual([1, 0]);

    // Full: the relay's jobs only join the line, behind e5 (and e6 before e7 whatever order they came in).
    await limit.parkQueued([
      { integrationId: 12, holder: 'e7', order: 7 },
      { integrationId: 12, holder: 'e6', order: 6 },
    ]);
    expect(woken).toEqual([]);
    expect(await limit.waiting(12)).toEqual(['e5', 'e6', 'e7']);

    // Both holders finished; their releases woke e5 and e6. e5 took a slot, e6 is on its way: the slot
    // that looks free wakes e7 too (one wake-up too many costs a re-park; one too few would leave a
    // job waiting for its safety delay), and the new job waits in line.
    limit.release(12, 'holder');
    limit.release(12, 'other');
    await limit.flush();
    expect(woken).toEqual([[12, 'e5'], [12, 'e6']]);
    expect(await limit.tryAcquire(12, 'e5')).toBe(true);
    await limit.parkQueued([{ integrationId: 12, holder: 'e8', order: 8 }]);
    expect(woken).toEqual([[12, 'e5'], [12, 'e6'], [12, 'e7']]);
    expect(await limit.waiting(12)).toEqual(['e8']);
  });

  it('gives an integration whose delivery ran into the timeout one slot, until a delivery made under that mark is answered', async () => {
    const limit = limitOf(3);
    expect([await limit.tryAcquire(31, 'a'), await limit.tryAcquire(31, 'b')]).toEqual([true, true]);
    limit.settle(31, 'a', true); // a timed out
    limit.release(31, 'a');
    await limit.flush();
    expect(await limit.slow(31)).toBe(true);
    // b still holds the one slot: c waits, though the cap is 3; another integration keeps its 3.
    expect(await limit.tryAcquire(31, 'c')).toBe(false);
    expect(await limit.park(31, 'c', 5)).toBe('parked');
    expect([await limit.tryAcquire(32, 'x'), await limit.tryAcquire(32, 'y'), await limit.tryAcquire(32, 'z')]).toEqual([true, true, true]);
    // b was under way before the mark: its answer says nothing of the endpoint now, and lifts nothing.
    limit.settle(31, 'b', false);
    limit.release(31, 'b');
    await limit.flush();
    expect(await limit.slow(31)).toBe(true);
    expect(woken).toEqual([[31, 'c']]);
    expect(await limit.tryAcquire(31, 'c')).toBe(true);
    expect(await limit.tryAcquire(31, 'd')).toBe(false);
    // c went out under the mark and was answered: the integration has its 3 slots again.
    limit.settle(31, 'c', false);
    expect(await limit.slow(31)).toBe(false);
    expect([await limit.tryAcquire(31, 'd'), await limit.tryAcquire(31, 'e'), await limit.tryAcquire(31, 'f')]).toEqual([true, true, false]);
  });

  /**
   * Integration `id` at cap 4, marked slow by a timeout, with j1–j5 in line; the timed-out slot's release
   * woke j1, which holds the one slot as the probe.
   */
  async function probingWithLine(id: number): Promise<InFlightLimit> {
    const limit = limitOf(4);
    expect(await limit.tryAcquire(id, 'a')).toBe(true);
    limit.settle(id, 'a', true);
    await limit.flush();
    for (let j = 1; j <= 5; j++) {
      expect(await limit.tryAcquire(id, `j${j}`)).toBe(false);
      expect(await limit.park(id, `j${j}`, j)).toBe('parked');
    }
    limit.release(id, 'a');
    await limit.flush();
    expect(woken).toEqual([[id, 'j1']]);
    expect(await limit.tryAcquire(id, 'j1')).toBe(true);
    return limit;
  }

  it('lifting a slow mark wakes as many of the line as the cap has room for, not one per release', async () => {
    const limit = await probingWithLine(34);
    // Answered: the mark goes, and the three free slots of four wake three more at once.
    limit.settle(34, 'j1', false);
    await eventuallyTrue(async () => woken.length === 4);
    expect(woken).toEqual([[34, 'j1'], [34, 'j2'], [34, 'j3'], [34, 'j4']]);
    expect(await limit.slow(34)).toBe(false);
    limit.release(34, 'j1');
    await limit.flush();
    expect(woken.at(-1)).toEqual([34, 'j5']);
  });

  it('a probe answered after the mark ran out (or was deleted by hand) still wakes the line to the cap', async () => {
    const limit = await probingWithLine(35);
    await redis.del(`${prefixes.at(-1)}:slow:35`); // an operator lifts it
    limit.settle(35, 'j1', false);
    await eventuallyTrue(async () => woken.length === 4);
    expect(woken).toEqual([[35, 'j1'], [35, 'j2'], [35, 'j3'], [35, 'j4']]);
  });

  it('a slot held past 20 leases, the in-flight set\'s own expiry, still counts', async () => {
    const limit = limitOf(1, 40); // the set expires 800 ms after the last acquire
    expect(await limit.tryAcquire(36, 'long')).toBe(true);
    const unhold = limit.hold(36, 'long');
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await limit.inFlight(36)).toBe(1);
      expect(await limit.tryAcquire(36, 'other')).toBe(false);
    } finally {
      unhold();
    }
  });

  it('a slow mark counts in parking and in what the relay wakes, and runs out on its own', async () => {
    const limit = limitOf(3, 50);
    expect(await limit.tryAcquire(33, 'a')).toBe(true);
    limit.settle(33, 'a', true);
    limit.release(33, 'a');
    await limit.flush();
    // One slot free of one: the relay's three jobs wake one.
    await limit.parkQueued([1, 2, 3].map((order) => ({ integrationId: 33, holder: `q${order}`, order })));
    expect(woken).toEqual([[33, 'q1']]);
    expect(await limit.tryAcquire(33, 'q1')).toBe(true);
    const unhold = limit.hold(33, 'q1'); // renewed past its 50 ms lease, as a delivery under way is
    try {
      expect(await limit.tryAcquire(33, 'late')).toBe(false); // q1 holds the one slot
      expect(await limit.park(33, 'late', 9)).toBe('parked');
    } finally {
      unhold();
    }
    // The mark lasts 20 leases (here 1 s) after the last timeout, should no answer lift it.
    expect(limit.slowForMs).toBe(1_000);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await limit.slow(33)).toBe(false);
    // Its 3 slots again, whatever became of q1's (it has long outlived its lease): under the mark, one.
    expect(await Promise.all(['late', 'm', 'n', 'o'].map((holder) => limit.tryAcquire(33, holder)))).toEqual([true, true, true, false]);
  });

  /** Two limits on one prefix: holders of `dying` lose their slots after 200 ms, those of `living` hold theirs. */
  function sharedLimits(cap: number) {
    const prefix = newPrefix();
    return { dying: new InFlightLimit(redis, prefix, cap, 200, recordWake), living: new InFlightLimit(redis, prefix, cap, 60_000, recordWake) };
  }

  it('a slot held past its lease (a slow read, a record waiting) is kept while held, and swept once its holder stops', async () => {
    const prefix = newPrefix();
    const mine = new InFlightLimit(redis, prefix, 1, 300, recordWake);
    const other = new InFlightLimit(redis, prefix, 1, 300, recordWake);
    expect(await mine.tryAcquire(23, 'slow')).toBe(true);
    const unhold = mine.hold(23, 'slow');
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // three leases' worth
    expect(await other.tryAcquire(23, 'next')).toBe(false); // still held: the cap of 1 stands
    unhold(); // as if its worker died: no more renewals, and no release
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await other.tryAcquire(23, 'next')).toBe(true);
  });

  it('a renewal that reaches Redis after its slot was released does not put the slot back', async () => {
    const limit = limitOf(1, 300, 0);
    expect(await limit.tryAcquire(24, 'done')).toBe(true);
    const unhold = limit.hold(24, 'done');
    // The renewal timer and the job's end fall in the same turn: the release goes first, the renewal after it.
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        limit.release(24, 'done');
        unhold();
        resolve();
      }, 100),
    );
    await limit.flush();
    await new Promise((resolve) => setTimeout(resolve, 150)); // past the renewal's moment (a third of 300 ms)
    expect(await limit.inFlight(24)).toBe(0);
    expect(await limit.tryAcquire(24, 'next')).toBe(true);
  });

  it('wakes jobs in line for the slots expired leases free, which no release would ever wake them for', async () => {
    const { dying, living } = sharedLimits(3);
    expect(await dying.tryAcquire(21, 'dead-1')).toBe(true);
    expect(await dying.tryAcquire(21, 'dead-2')).toBe(true);
    expect(await living.tryAcquire(21, 'alive')).toBe(true);
    await living.parkQueued([{ integrationId: 21, holder: 'e1', order: 1 }, { integrationId: 21, holder: 'e2', order: 2 }, { integrationId: 21, holder: 'e3', order: 3 }]);
    expect(woken).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // two holders died: their leases ran out
    // A new job finds the integration full by count, sweeps the two leases, takes one slot and
    // wakes the first job in line for the other.
    expect(await living.tryAcquire(21, 'new')).toBe(true);
    expect(woken).toEqual([[21, 'e1']]);
    expect(await living.waiting(21)).toEqual(['e2', 'e3']);
  });

  it('a job parking as expired leases free the integration goes itself and wakes jobs in line for the rest', async () => {
    const { dying, living } = sharedLimits(4);
    for (const holder of ['dead-1', 'dead-2', 'dead-3']) expect(await dying.tryAcquire(22, holder)).toBe(true);
    expect(await living.tryAcquire(22, 'alive')).toBe(true);
    await living.parkQueued([{ integrationId: 22, holder: 'e1', order: 1 }, { integrationId: 22, holder: 'e2', order: 2 }, { integrationId: 22, holder: 'e3', order: 3 }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await living.park(22, 'late', 9)).toBe('retry'); // three slots free: one for itself, two woken
    expect(woken).toEqual([[22, 'e1'], [22, 'e2']]);
    expect(await living.waiting(22)).toEqual(['e3']);
  });

  it('wakes jobs in line when every holder died, their leases expiring together', async () => {
    const limit = limitOf(3, 200);
    for (const holder of ['dead-1', 'dead-2', 'dead-3']) expect(await limit.tryAcquire(23, holder)).toBe(true);
    await limit.parkQueued([{ integrationId: 23, holder: 'e1', order: 1 }, { integrationId: 23, holder: 'e2', order: 2 }, { integrationId: 23, holder: 'e3', order: 3 }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await limit.tryAcquire(23, 'new')).toBe(true);
    expect(woken).toEqual([[23, 'e1'], [23, 'e2']]);
  });

  it('wakes nobody for freed slots that acquires of the same call take', async () => {
    const { dying, living } = sharedLimits(5);
    for (const holder of ['dead-1', 'dead-2', 'dead-3', 'dead-4']) expect(await dying.tryAcquire(24, holder)).toBe(true);
    expect(await living.tryAcquire(24, 'alive')).toBe(true);
    await living.parkQueued([{ integrationId: 24, holder: 'e1', order: 1 }, { integrationId: 24, holder: 'e2', order: 2 }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Four jobs starting together ask in one call: they take the four slots the sweep freed.
    expect(await Promise.all(['a', 'b', 'c', 'd'].map((holder) => living.tryAcquire(24, holder)))).toEqual([true, true, true, true]);
    expect(woken).toEqual([]);
    expect(await living.waiting(24)).toEqual(['e1', 'e2']);
  });

  it('a job parking as an expired lease frees a slot wakes nobody for a slot a release handed out', async () => {
    const { dying, living } = sharedLimits(2);
    expect(await dying.tryAcquire(25, 'dead')).toBe(true);
    expect(await living.tryAcquire(25, 'busy')).toBe(true);
    await living.parkQueued([{ integrationId: 25, holder: 'w1', order: 1 }, { integrationId: 25, holder: 'w2', order: 2 }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    living.release(25, 'busy');
    await living.flush();
    expect(woken).toEqual([[25, 'w1']]); // on its way to busy's slot
    expect(await living.park(25, 'late', 9)).toBe('retry'); // dead's slot: for itself
    expect(woken).toEqual([[25, 'w1']]);
    expect(await living.waiting(25)).toEqual(['w2']);
  });

  it('a holder releasing after its lease was swept wakes nobody: the sweep already woke a job for its slot', async () => {
    const limit = limitOf(2, 200);
    expect(await limit.tryAcquire(26, 'slow-1')).toBe(true);
    expect(await limit.tryAcquire(26, 'slow-2')).toBe(true);
    await limit.parkQueued([{ integrationId: 26, holder: 'w1', order: 1 }, { integrationId: 26, holder: 'w2', order: 2 }, { integrationId: 26, holder: 'w3', order: 3 }]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // both outlive their leases (say, waiting for PostgreSQL)
    expect(await limit.tryAcquire(26, 'x')).toBe(true); // sweeps both, takes one slot, wakes w1 for the other
    expect(woken).toEqual([[26, 'w1']]);
    limit.release(26, 'slow-1');
    limit.release(26, 'slow-2');
    await limit.flush();
    expect(woken).toEqual([[26, 'w1']]);
    expect(await limit.waiting(26)).toEqual(['w2', 'w3']);
  });

  it('frees the slot of a holder that died once its lease runs out', async () => {
    const limit = limitOf(1, 200);
    expect(await limit.tryAcquire(9, 'crashed')).toBe(true);
    expect(await limit.tryAcquire(9, 'next')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await limit.inFlight(9)).toBe(0);
    expect(await limit.tryAcquire(9, 'next')).toBe(true);
  });
});

describe('InFlightLimit keeping slots (keepMs)', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Two processes' limits on one prefix: `keeping` keeps finished slots for `keepMs`, `plain` does not. */
  function pair(cap: number, keepMs: number, leaseMs = 60_000): { keeping: InFlightLimit; plain: InFlightLimit; members: (id: number) => Promise<string[]> } {
    const prefix = newPrefix();
    return {
      keeping: new InFlightLimit(redis, prefix, cap, leaseMs, recordWake, { keepMs }),
      plain: new InFlightLimit(redis, prefix, cap, leaseMs, recordWake),
      members: (id) => redis.zrange(`${prefix}:inflight:${id}`, 0, -1),
    };
  }

  it("gives the integration's next delivery here the slot a finished one left, with no Redis call, under the kept slot's name", async () => {
    const { keeping, plain, members } = pair(1, 1_000);
    expect(await keeping.tryAcquire(1, 'a')).toBe(true);
    keeping.release(1, 'a');
    // Kept, so still held in Redis: the cap of 1 stands for every other process.
    expect(await plain.tryAcquire(1, 'elsewhere')).toBe(false);
    const next = await commandCalls(() => keeping.tryAcquire(1, 'b'));
    expect(next).toEqual({ result: true, count: 0 });
    expect(await members(1)).toEqual(['a']);
    // One slot kept per integration, and only for that integration.
    const other = await commandCalls(() => keeping.tryAcquire(2, 'c'));
    expect(other).toEqual({ result: true, count: 1 });
    // b's release keeps the slot again (still named a in Redis); the shutdown's flush lets it go.
    keeping.release(1, 'b');
    expect(await keeping.inFlight(1)).toBe(1);
    await keeping.flush();
    expect(await keeping.inFlight(1)).toBe(0);
  });

  it('releases a kept slot nobody takes after keepMs, waking the next in line for it', async () => {
    const { keeping, plain } = pair(1, 100);
    expect(await keeping.tryAcquire(3, 'a')).toBe(true);
    expect(await plain.tryAcquire(3, 'p')).toBe(false);
    expect(await plain.park(3, 'p', 5)).toBe('parked');
    keeping.release(3, 'a');
    await sleep(30);
    expect(woken).toEqual([]);
    expect(await keeping.inFlight(3)).toBe(1);
    await eventuallyTrue(async () => woken.length === 1);
    expect(woken).toEqual([[3, 'p']]);
    expect(await keeping.inFlight(3)).toBe(0);
    expect(await plain.tryAcquire(3, 'p')).toBe(true);
  });

  it('keeps no slot of a delivery that timed out or probed a slow mark, nor of a job that was parked, and gives none to one', async () => {
    const { keeping } = pair(2, 5_000);
    expect(await keeping.tryAcquire(4, 'hung')).toBe(true);
    keeping.settle(4, 'hung', true);
    keeping.release(4, 'hung');
    await sleep(50); // the ordinary release delay, not keepMs
    expect(await keeping.inFlight(4)).toBe(0);
    expect(await keeping.slow(4)).toBe(true);
    // Taken under the mark, answered: the mark lifts, and the probe's slot is released, not kept.
    expect(await keeping.tryAcquire(4, 'probe')).toBe(true);
    keeping.settle(4, 'probe', false);
    keeping.release(4, 'probe');
    await sleep(50);
    expect(await keeping.inFlight(4)).toBe(0);
    expect(await keeping.slow(4)).toBe(false);
    // A parked job may still be listed in its line: it asks Redis, which takes it out of line. Its
    // integration has a line, so the slot kept for it goes back in the same call (here, to it: the cap is 1).
    const { keeping: one, plain: other } = pair(1, 5_000);
    expect(await one.tryAcquire(5, 'a')).toBe(true);
    one.release(5, 'a');
    expect(await other.tryAcquire(5, 'was-parked')).toBe(false);
    expect(await other.park(5, 'was-parked', 9)).toBe('parked');
    const parked = await commandCalls(() => one.tryAcquire(5, 'was-parked', true));
    expect(parked).toEqual({ result: true, count: 1 });
    expect(await one.waiting(5)).toEqual([]);
    // Its integration has a line, which its release wakes at once: its slot is not kept either.
    one.release(5, 'was-parked');
    await sleep(50);
    expect(await one.inFlight(5)).toBe(0);
  });

  it('a chain of quick deliveries on a kept slot ends within a third of a lease: the slot never runs out in Redis while held', async () => {
    const { keeping, plain } = pair(1, 100, 300); // keepMs is held to a quarter of the lease: 75 ms
    // 20 deliveries of 20 ms one after another, over a lease and a half: none lives long enough to renew.
    for (let i = 0; i < 20; i++) {
      expect(await keeping.tryAcquire(7, `j${i}`)).toBe(true);
      const unhold = keeping.hold(7, `j${i}`);
      await sleep(20);
      expect(await plain.inFlight(7)).toBe(1); // counts only leases not run out
      unhold();
      keeping.release(7, `j${i}`);
    }
    await keeping.flush();
    expect(await plain.inFlight(7)).toBe(0);
  });

  it('a timeout lets go of the slot kept for its integration, which would not see the slow mark', async () => {
    const { keeping, members } = pair(2, 5_000);
    expect([await keeping.tryAcquire(8, 'a'), await keeping.tryAcquire(8, 'b')]).toEqual([true, true]);
    keeping.release(8, 'a');
    keeping.settle(8, 'b', true);
    await sleep(50);
    expect(await members(8)).toEqual(['b']);
    keeping.release(8, 'b');
    await sleep(50);
    expect(await members(8)).toEqual([]);
  });

  it('a delivery on a kept slot renews that slot, so it outlives its lease while held', async () => {
    const { keeping, plain } = pair(1, 100, 300);
    expect(await keeping.tryAcquire(6, 'a')).toBe(true);
    keeping.release(6, 'a');
    expect(await keeping.tryAcquire(6, 'b')).toBe(true);
    const unhold = keeping.hold(6, 'b');
    await sleep(1_000); // over three leases
    expect(await plain.tryAcquire(6, 'elsewhere')).toBe(false);
    unhold();
    keeping.release(6, 'b');
    await keeping.flush();
    expect(await plain.tryAcquire(6, 'elsewhere')).toBe(true);
  });
});
