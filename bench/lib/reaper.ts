// The reaper as users run it: compiled JavaScript (`dist/cli/main.js`, what `npm ci` builds and
// the launchd/systemd units start), not through tsx, whose loader thread would add to RSS and
// start-up. It is compiled into bench/out/build (git-ignored) so the repo's dist/ is untouched.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { scopedEnv, startDaemon as startTestDaemon, type RunningDaemon } from '../../test/support/cli.js';
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

export type { DaemonEvent } from '../../test/support/cli.js';
export type BenchDaemon = RunningDaemon;

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

/** `hum-reaper run …` from the build, as users run it (plain node, no tsx loader). */
export function startDaemon(build: ReaperBuild, args: string[], o: DaemonStartOptions): BenchDaemon {
  return startTestDaemon(args, {
    token: o.token,
    baseEnv: reaperEnv(o.token, o.env),
    command: [process.execPath, ...daemonNodeArgs(), ...(o.nodeArgs ?? []), build.mainJs],
    onOtherLine: o.onOtherLine,
  });
}

/** One CLI command from the build (e.g. `ps --json`); wall time includes Node's start-up. */
export async function runReaperCli(build: ReaperBuild, args: string[], token: string): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const { stdout } = await run(process.execPath, [build.mainJs, ...args], { env: reaperEnv(token), maxBuffer: 64 << 20 });
  return { ms: performance.now() - t0, stdout };
}

