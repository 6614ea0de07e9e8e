import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';

/** /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second for user space. */
const MS_PER_TICK = 10;

/** User + system CPU time of a process so far, in ms (Linux); 0 once it is gone. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  } catch {
    return 0;
  }
}

export interface CpuParts {
  /** Process ids per part, e.g. { worker: [..], api: [..] }. */
  pids: Record<string, number[]>;
  /** Adds the PostgreSQL backends connected to this database (they persist across a burst: pools keep them). */
  db?: Knex;
  /** Adds the Redis server's own CPU time (INFO cpu: the whole server, so others' traffic counts too). */
  redis?: Redis;
}

/** CPU ms each part has used so far; subtract two of these to get what a run cost. */
export async function cpuSnapshot(parts: CpuParts): Promise<Record<string, number>> {
  const snapshot: Record<string, number> = {};
  for (const [part, pids] of Object.entries(parts.pids)) snapshot[part] = pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
  if (parts.db) {
    const { rows } = (await parts.db.raw('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')) as { rows: Array<{ pid: number }> };
    for (const { pid } of rows) snapshot[`postgres:${pid}`] = processCpuMs(pid);
  }
  if (parts.redis) {
    const info = await parts.redis.info('cpu');
    const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    snapshot.redis = (seconds('used_cpu_sys') + seconds('used_cpu_user')) * 1000;
  }
  return snapshot;
}

/** Per-part CPU ms between two snapshots; PostgreSQL backends (present in both) summed as `postgres`. */
export function cpuUsed(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    if (!(key in before)) continue;
    const part = key.startsWith('postgres:') ? 'postgres' : key;
    used[part] = (used[part] ?? 0) + value - before[key]!;
  }
  return used;
}

/** The CPU ms of every part together. */
export function totalCpuMs(used: Record<string, number>): number {
  return Object.values(used).reduce((sum, ms) => sum + ms, 0);
}
