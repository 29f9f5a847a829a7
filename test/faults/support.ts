// Shared by the fault-injection suite (test/faults/*.test.ts): counting, cleanup, raw log
// appends, /proc identity and running the CLI as another user. Every process started here
// carries the run token (HUM_REAPER_TEST_RUN) and is ended by pid through cleanupRun.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN_TS, scopedEnv, startDaemon, type CliResult, type DaemonEvent, type RunningDaemon } from '../support/cli.js';
import { cleanupRun, isAlive, newRunToken, RUN_ENV, startSimWorker, type SimWorker, type SimWorkerOptions } from '../support/sim.js';

// ---------------------------------------------------------------- counts

/** What each fault test reports, so a regression is a number and not a feeling. */
export interface FaultCounts {
  /** Worker events the scenario produced (evictions, rotations, crashes …, named per test). */
  events: number;
  /** `reaper.kill` events seen. */
  kills: number;
  /** Kills of a pid that was not condemned. */
  wrongKills: number;
  /** Condemned pids still alive at the end, or without their kill. */
  misses: number;
  [extra: string]: number | string;
}

/** The counts as one greppable test diagnostic: `# fault.counts {"test":…,"events":…}`. */
export function report(t: { diagnostic: (s: string) => void; name: string }, counts: FaultCounts): void {
  t.diagnostic(`fault.counts ${JSON.stringify({ test: t.name, ...counts })}`);
}

// ---------------------------------------------------------------- cleanup

/** One per test file: everything it starts, ended in `after`. */
export class Harness {
  private readonly tokens: string[] = [];
  private readonly workers: SimWorker[] = [];
  private readonly daemons: RunningDaemon[] = [];
  private readonly dirs: string[] = [];

  token(): string {
    const t = newRunToken();
    this.tokens.push(t);
    return t;
  }

  async worker(token: string, opts: SimWorkerOptions = {}): Promise<SimWorker> {
    const w = await startSimWorker({ ...opts, token });
    this.workers.push(w);
    return w;
  }

  daemon(token: string, args: string[], env: Record<string, string> = {}): RunningDaemon {
    const d = startDaemon(args, { env: scopedEnv(token, env), token });
    this.daemons.push(d);
    return d;
  }

  tempDir(tag: string): string {
    const d = mkdtempSync(join(tmpdir(), `hum-reaper-fault-${tag}-`));
    this.dirs.push(d);
    return d;
  }

  async cleanup(): Promise<void> {
    for (const d of this.daemons) await d.crash().catch(() => undefined);
    for (const w of this.workers) await w.stop().catch(() => undefined);
    for (const t of this.tokens) await cleanupRun(t, 10_000);
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- daemon events

export const eventsNamed = (events: readonly DaemonEvent[], name: string) => events.filter((e) => e.event === name);
export const killedPids = (events: readonly DaemonEvent[]) => eventsNamed(events, 'reaper.kill').map((e) => e.pid as number);

/** Pids that appear more than once in the list. */
export function duplicates(pids: readonly number[]): number[] {
  const seen = new Set<number>();
  const dup = new Set<number>();
  for (const p of pids) (seen.has(p) ? dup : seen).add(p);
  return [...dup];
}

/** Condemned pids still alive (after waiting up to timeoutMs for all of them). */
export async function survivors(pids: Iterable<number>, timeoutMs: number): Promise<number[]> {
  const list = [...pids];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = list.filter(isAlive);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------- log and /proc

/** Append text to a file with one O_APPEND write, as a second writer of the same log would. */
export function appendLog(path: string, text: string): void {
  const fd = openSync(path, 'a');
  try {
    const bytes = Buffer.from(text);
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
  } finally {
    closeSync(fd);
  }
}

/** /proc/<pid>/stat start time in clock ticks: the reaper's start key. */
export function startKeyOf(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const key = s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  if (key === undefined) throw new Error(`no start time for pid ${pid}`);
  return key;
}

export function ppidOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
}

// ---------------------------------------------------------------- another user

export const NOBODY = 65534;
export const isRoot = process.getuid?.() === 0;

/** Spawn a process as uid/gid 65534 carrying the token (the caller cleans it up by pid). */
export function spawnAsNobody(file: string, args: string[], token: string, env: Record<string, string> = {}): ChildProcess {
  const cp = spawn(file, args, {
    uid: NOBODY,
    gid: NOBODY,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', ...env, [RUN_ENV]: token },
    stdio: 'ignore',
    detached: true,
    cwd: '/',
  });
  cp.on('error', () => undefined);
  cp.unref();
  return cp;
}

/** The real CLI run as uid 65534 (HOME=/tmp, so tsx's cache and the config lookup work). */
export function runCliAsNobody(args: string[], token: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN_TS, ...args], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: process.cwd(),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', ...scopedEnv(token, env), [RUN_ENV]: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------- randomness

export { seededRandom } from '../support/random.js';

export function seedFromEnv(): number {
  const s = Number(process.env.FAULT_SEED);
  return Number.isInteger(s) && s > 0 ? s : 1 + Math.floor(Math.random() * 2 ** 31);
}
