// What every figure gets: the options, the compiled reaper, fresh run tokens and temp dirs
// that are cleaned up whatever happens, and a progress line on stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRun, newRunToken } from '../../test/support/sim.js';
import type { ReaperBuild } from './reaper.js';

export interface BenchOptions {
  /** Size of the generated catch-up log (BENCH_LOG_MB, MiB). */
  logMb: number;
  /** Idle measurement window (BENCH_IDLE_S). */
  idleS: number;
  /** Evictions driven per latency run (BENCH_EVICTIONS, ≥ 500 for the figure). */
  evictions: number;
  /** Evictions for the INFO-level latency run (BENCH_INFO_EVICTIONS). */
  infoEvictions: number;
  /** One prompt (so one eviction) every paceMs (BENCH_PACE_MS). */
  paceMs: number;
  /** Log events appended for the RSS figure (BENCH_FLOOD_EVENTS). */
  floodEvents: number;
  /** Unrelated processes on the machine during the latency and idle figures. */
  unrelated: number;
  /** Processes on the machine for the sweep figure. */
  sweepProcesses: number;
  /** Timed repetitions of the sweep and `ps` (median reported). */
  sweepRuns: number;
  /** Only these figures (BENCH_ONLY=latency,catchup,sweep,idle,flood). */
  only: Set<string> | null;
}

const num = (env: NodeJS.ProcessEnv, key: string, dflt: number): number => {
  const v = env[key];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${key}=${v}: want a positive number`);
  return n;
};

export function optionsFromEnv(env = process.env): BenchOptions {
  return {
    logMb: num(env, 'BENCH_LOG_MB', 1024),
    idleS: num(env, 'BENCH_IDLE_S', 60),
    evictions: Math.floor(num(env, 'BENCH_EVICTIONS', 600)),
    infoEvictions: Math.floor(num(env, 'BENCH_INFO_EVICTIONS', 200)),
    paceMs: num(env, 'BENCH_PACE_MS', 15),
    floodEvents: Math.floor(num(env, 'BENCH_FLOOD_EVENTS', 1_000_000)),
    unrelated: Math.floor(num(env, 'BENCH_UNRELATED', 500)),
    sweepProcesses: Math.floor(num(env, 'BENCH_SWEEP_PROCS', 1000)),
    sweepRuns: Math.floor(num(env, 'BENCH_SWEEP_RUNS', 9)),
    only: env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : null,
  };
}

/** One line of the printed table. */
export interface Row {
  figure: string;
  ours: string;
  baseline: string;
  target: string;
  /** null: no target for this line. */
  met: boolean | null;
}

export interface FigureResult {
  rows: Row[];
  /** Everything measured, for results.json. */
  details: Record<string, unknown>;
}

export class BenchRun {
  readonly tokens = new Set<string>();
  private readonly dirs = new Set<string>();

  constructor(
    readonly opts: BenchOptions,
    readonly build: ReaperBuild,
  ) {}

  /** A fresh run token (process marker and sid prefix), cleaned up by cleanup(). */
  token(): string {
    const t = newRunToken();
    this.tokens.add(t);
    return t;
  }

  tempDir(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), `hum-reaper-bench-${prefix}-`));
    this.dirs.add(d);
    return d;
  }

  /** SIGKILL every process of the token (by pid) and forget it. */
  async release(token: string): Promise<void> {
    await cleanupRun(token, 10_000);
    this.tokens.delete(token);
  }

  removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    this.dirs.delete(dir);
  }

  async cleanup(): Promise<void> {
    for (const t of [...this.tokens]) await this.release(t).catch((e: unknown) => progress(`cleanup ${t}: ${String(e)}`));
    for (const d of [...this.dirs]) this.removeDir(d);
  }
}

export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
