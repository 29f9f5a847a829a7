// Processes the benchmark puts on the machine, and how it measures a process from /proc.
// Every process started here carries HUM_REAPER_TEST_RUN=<token> (cleanupRun(token) ends it).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { carriesToken, RUN_ENV, waitFor } from '../../test/support/sim.js';

/** USER_HZ: /proc reports CPU time in ticks of 10 ms on every Linux ABI Node runs on. */
const TICK_MS = 10;

/**
 * `sleep` processes: unrelated to the reaper (their argv matches nothing), there to make the
 * process table as big as a busy machine's. Bounded: they end by themselves after `seconds`.
 */
export async function startSleepers(token: string, count: number, seconds = 1800): Promise<number[]> {
  const env: NodeJS.ProcessEnv = { ...process.env, [RUN_ENV]: token };
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const cp = spawn('sleep', [String(seconds)], { env, stdio: 'ignore', detached: true });
    cp.on('error', () => undefined);
    cp.unref();
    if (cp.pid !== undefined) pids.push(cp.pid);
  }
  // They count once they have exec'd sleep (a fresh fork still shows node's argv).
  await waitFor(() => pids.every((p) => comm(p) !== 'node'), 10_000, 20);
  return pids;
}

/** SIGKILL the given pids, each only if it still carries the run's token; resolves once they are reaped. */
export async function stopPids(pids: readonly number[], token: string): Promise<void> {
  for (const pid of pids) {
    if (!carriesToken(pid, token)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitFor(() => pids.every((p) => !existsSync(`/proc/${p}`)), 10_000, 20);
}

function comm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** How many processes the machine runs now. */
export function processCount(): number {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}

/** CPU time (user + system) a process has used so far, ms; null once it is gone. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After comm, 0-based: utime = 11, stime = 12 (fields 14 and 15 of proc(5)).
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return null;
  }
}

/** Resident set size, bytes (VmRSS); null once the process is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const MB = 1024 * 1024;
