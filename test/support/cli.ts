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
  /** Resolves with the first event (past or future) that matches; rejects if the daemon exits first. */
  waitForEvent: (pred: (e: DaemonEvent) => boolean, timeoutMs?: number) => Promise<DaemonEvent>;
  /** SIGTERM and wait for the exit code (SIGKILL after 15 s). */
  stop: () => Promise<number | null>;
  /** SIGKILL (a crash) and wait until it is gone. */
  crash: () => Promise<void>;
  exited: Promise<number | null>;
}

export interface StartDaemonOptions {
  token: string;
  env?: Record<string, string>;
  /** The whole environment to start from (default process.env); env and the run token go on top. */
  baseEnv?: NodeJS.ProcessEnv;
  /** How to start the CLI (default: node with tsx on src/cli/main.ts); `run …args` follow. */
  command?: string[];
  /** stdout lines that are not pino JSON (e.g. node's --trace-gc output). */
  onOtherLine?: (line: string) => void;
}

/** Start `hum-reaper run` as its own process; its pino JSON lines are collected as they come. */
export function startDaemon(args: string[], opts: StartDaemonOptions): RunningDaemon {
  const env: NodeJS.ProcessEnv = { ...(opts.baseEnv ?? process.env), ...opts.env, [RUN_ENV]: opts.token };
  delete env.NODE_TEST_CONTEXT;
  const [cmd, ...pre] = opts.command ?? [process.execPath, '--import', 'tsx', MAIN_TS];
  const child = spawn(cmd!, [...pre, 'run', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: DaemonEvent[] = [];
  const waiters: { pred: (e: DaemonEvent) => boolean; resolve: (e: DaemonEvent) => void }[] = [];
  let buf = '';
  let stderr = '';
  const other = (line: string) => (opts.onOtherLine ? opts.onOtherLine(line) : (stderr = `${stderr}[stdout, not JSON] ${line}\n`.slice(-8000)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // Node's own output (--trace-gc goes through C stdio in 4 KiB blocks) can end mid-line
      // with a pino line glued on: split that off and keep both.
      const at = line.startsWith('{') ? 0 : line.indexOf('{"level":');
      if (at !== 0) other(at < 0 ? line : line.slice(0, at));
      if (at < 0) continue;
      let e: DaemonEvent;
      try {
        e = JSON.parse(line.slice(at)) as DaemonEvent;
      } catch {
        other(line);
        continue;
      }
      events.push(e);
      for (const w of [...waiters]) {
        if (!w.pred(e)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const waitForEvent = (pred: (e: DaemonEvent) => boolean, timeoutMs = 10_000) =>
    new Promise<DaemonEvent>((resolve, reject) => {
      const seen = events.find(pred);
      if (seen) return resolve(seen);
      if (gone) return reject(new Error(`daemon exited; stderr: ${stderr.slice(-2000)}`));
      const timer = setTimeout(() => reject(new Error(`no matching daemon event within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last events: ${JSON.stringify(events.slice(-5))}`)), timeoutMs);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`daemon exited; stderr: ${stderr.slice(-2000)}`));
      });
      waiters.push({ pred, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  return {
    pid: child.pid!,
    events,
    stderr: () => stderr,
    waitForEvent,
    exited,
    stop: async () => {
      if (gone) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    crash: async () => {
      if (!gone) child.kill('SIGKILL');
      await exited;
    },
  };
}
