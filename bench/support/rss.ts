import { readFileSync } from 'node:fs';

export interface Memory {
  /** Resident set size now, MiB. */
  rssMb: number;
  /** Peak resident set size since the process started (VmHWM), MiB. */
  peakMb: number;
}

/** Reads /proc/<pid>/status (Linux); null once the process is gone. */
export function readMemory(pid: number): Memory | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** Samples RSS of some processes every `everyMs`; `stop` answers the highest seen (VmHWM included). */
export function sampleMemory(pids: readonly number[], everyMs = 100): { stop(): number } {
  let peak = 0;
  const sample = () => {
    for (const pid of pids) {
      const memory = readMemory(pid);
      if (memory) peak = Math.max(peak, memory.rssMb, memory.peakMb);
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
