// The reaper as users run it: compiled JavaScript (`dist/cli/main.js`, what `npm ci` builds and
// the launchd/systemd units start), not through tsx, whose loader thread would add to RSS and
// start-up. It is compiled into bench/out/build (git-ignored) so the repo's dist/ is untouched.
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { scopedEnv } from '../../test/support/cli.js';
import { RUN_ENV } from '../../test/support/sim.js';

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const OUT_DIR = join(REPO, 'bench', 'out');

export interface ReaperBuild {
  /** `<build>/dist/cli/main.js` */
  mainJs: string;
  dir: string;
  /** tsc's complaints, if any (it still emits: other work in progress must not stop the bench). */
  diagnostics: string;
}

/** tsc src/ → bench/out/build/dist, with config/ and package.json beside it as in the package. */
export async function buildReaper(): Promise<ReaperBuild> {
  const dir = join(OUT_DIR, 'build');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  let diagnostics = '';
  try {
    await run(process.execPath, [tsc, '-p', join(REPO, 'tsconfig.json'), '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], { cwd: REPO, maxBuffer: 16 << 20 });
  } catch (err) {
    diagnostics = String((err as { stdout?: string }).stdout ?? err).trim();
  }
  cpSync(join(REPO, 'config'), join(dir, 'config'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(dir, 'package.json'));
  const mainJs = join(dir, 'dist', 'cli', 'main.js');
  if (!existsSync(mainJs)) throw new Error(`build failed, no ${mainJs}:\n${diagnostics}`);
  return { mainJs, dir, diagnostics };
}

/** The environment of every reaper the bench starts: confined to the run's sids, carrying its token. */
export function reaperEnv(token: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...scopedEnv(token, extra), [RUN_ENV]: token };
  delete env.NODE_OPTIONS; // no tsx loader in the measured process
  delete env.HUM_REAPER_CONFIG;
  return env;
}

export interface DaemonEvent {
  event?: string;
  time?: string;
  [k: string]: unknown;
}

export interface BenchDaemon {
  pid: number;
  /** Events kept (all but those `keep` rejects). */
  events: DaemonEvent[];
  waitForEvent: (pred: (e: DaemonEvent) => boolean, timeoutMs?: number) => Promise<DaemonEvent>;
  /** SIGTERM, then the exit code (SIGKILL after 15 s). */
  stop: () => Promise<number | null>;
  stderr: () => string;
}

export interface DaemonStartOptions {
  token: string;
  env?: Record<string, string>;
  /** Options for node itself (e.g. --trace-gc), before the script. */
  nodeArgs?: string[];
  /** Lines on stdout that are not JSON (what --trace-gc prints). */
  onOtherLine?: (line: string) => void;
}

/** BENCH_NODE_ARGS: V8/node flags for every daemon, to try what a service unit could pass (e.g. --max-semi-space-size=2). */
export const daemonNodeArgs = (): string[] => (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

/** `hum-reaper run …` from the build, its pino JSON lines parsed as they come. */
export function startDaemon(build: ReaperBuild, args: string[], o: DaemonStartOptions): BenchDaemon {
  const node = [...daemonNodeArgs(), ...(o.nodeArgs ?? [])];
  const child = spawn(process.execPath, [...node, build.mainJs, 'run', ...args], { env: reaperEnv(o.token, o.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const events: DaemonEvent[] = [];
  const waiters: { pred: (e: DaemonEvent) => boolean; resolve: (e: DaemonEvent) => void }[] = [];
  let buf = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // Output of node itself (--trace-gc goes through C stdio, flushed in 4 KiB blocks)
      // can end mid-line, with a pino line glued on: split that off and keep both.
      const at = line.startsWith('{') ? 0 : line.indexOf('{"level":');
      if (at !== 0) {
        const other = at < 0 ? line : line.slice(0, at);
        if (o.onOtherLine) o.onOtherLine(other);
        else stderr = `${stderr}[stdout] ${other}\n`.slice(-8000);
        if (at < 0) continue;
      }
      let e: DaemonEvent;
      try {
        e = JSON.parse(line.slice(at)) as DaemonEvent;
      } catch {
        stderr = `${stderr}[stdout, not JSON] ${line}\n`.slice(-8000);
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
  return {
    pid: child.pid!,
    events,
    stderr: () => stderr,
    waitForEvent: (pred, timeoutMs = 30_000) =>
      new Promise<DaemonEvent>((resolve, reject) => {
        const seen = events.find(pred);
        if (seen) return resolve(seen);
        if (gone) return reject(new Error(`daemon exited; stderr: ${stderr.slice(-2000)}`));
        const timer = setTimeout(
          () => reject(new Error(`no matching daemon event within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last events: ${JSON.stringify(events.slice(-5))}`)),
          timeoutMs,
        );
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`daemon exited; stderr: ${stderr.slice(-2000)}`));
        });
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      }),
    stop: async () => {
      if (gone) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** One CLI command from the build (e.g. `ps --json`); wall time includes Node's start-up. */
export async function runReaperCli(build: ReaperBuild, args: string[], token: string): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const { stdout } = await run(process.execPath, [build.mainJs, ...args], { env: reaperEnv(token), maxBuffer: 64 << 20 });
  return { ms: performance.now() - t0, stdout };
}

