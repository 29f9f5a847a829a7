import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RUN_ENV } from './sim.js';

export const MAIN_TS = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI (from source, via tsx) as its own process. */
export function runCli(args: string[], opts: { env?: Record<string, string>; token?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (opts.token) env[RUN_ENV] = opts.token;
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN_TS, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Config flags that confine a reaper to one test run's sids, whatever else runs here. */
export function scopedEnv(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return { HUM_REAPER_SID_PREFIX: `${token}-`, HUM_REAPER_MIN_AGE_MS: '0', HUM_REAPER_GRACE_MS: '1000', ...extra };
}

export interface DaemonEvent {
  event?: string;
  [k: string]: unknown;
}

export interface RunningDaemon {
  pid: number;
  events: DaemonEvent[];
  stderr: () => string;
  /** Resolves with the first event (past or future) that matches. */
  waitForEvent: (pred: (e: DaemonEvent) => boolean, timeoutMs?: number) => Promise<DaemonEvent>;
  /** SIGTERM and wait for the exit code. */
  stop: () => Promise<number | null>;
  /** SIGKILL (a crash) and wait until it is gone. */
  crash: () => Promise<void>;
  exited: Promise<number | null>;
}

/** Start `hum-reaper run` as its own process; its pino JSON lines are collected. */
export function startDaemon(args: string[], opts: { env?: Record<string, string>; token: string }): RunningDaemon {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, [RUN_ENV]: opts.token };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN_TS, 'run', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: DaemonEvent[] = [];
  const waiters: { pred: (e: DaemonEvent) => boolean; resolve: (e: DaemonEvent) => void }[] = [];
  let buf = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const e = JSON.parse(line) as DaemonEvent;
        events.push(e);
        for (const w of [...waiters]) {
          if (w.pred(e)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      } catch {
        stderr += `[stdout, not JSON] ${line}\n`;
      }
    }
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const waitForEvent = (pred: (e: DaemonEvent) => boolean, timeoutMs = 10_000) =>
    new Promise<DaemonEvent>((resolve, reject) => {
      const seen = events.find(pred);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => reject(new Error(`no matching daemon event within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last events: ${JSON.stringify(events.slice(-5))}`)), timeoutMs);
      waiters.push({ pred, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  return {
    pid: child.pid!,
    events,
    stderr: () => stderr,
    waitForEvent,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    crash: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
