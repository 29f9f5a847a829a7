// `npm run bench`: every figure of the `run` issue measured beside its baseline in one run,
// printed as one table and written to bench/results.json. Linux only (it reads /proc).
// Safety: every process started here carries HUM_REAPER_TEST_RUN=<token>; every reaper is
// confined to its run's sids (scopedEnv); the pipeline's pkill pattern holds the run's sid
// prefix. Everything is killed by pid on the way out, also on SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { catchUpFigure } from './figures/catchup.js';
import { floodFigure } from './figures/flood.js';
import { idleFigure } from './figures/idle.js';
import { latencyFigure } from './figures/latency.js';
import { sweepFigure } from './figures/sweep.js';
import { BenchRun, optionsFromEnv, progress, type FigureResult, type Row } from './lib/context.js';
import { startSleepers, stopPids } from './lib/procs.js';
import { buildReaper, daemonNodeArgs, REPO } from './lib/reaper.js';

const RESULTS = join(REPO, 'bench', 'results.json');

/** BENCH_WAIT_QUIET=1: before each figure, wait (up to 2 min) for the 1-min load average to drop below the core count. */
async function quiet(): Promise<void> {
  if (process.env.BENCH_WAIT_QUIET !== '1') return;
  const cores = os.cpus().length;
  const deadline = Date.now() + 120_000;
  while (os.loadavg()[0]! >= cores && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2000));
}

/** One figure; a failure is a table line, not the end of the run. The machine's load is kept with it. */
async function attempt(name: string, fn: () => Promise<FigureResult>): Promise<FigureResult> {
  await quiet();
  const loadBefore = os.loadavg()[0]!;
  try {
    const r = await fn();
    return { rows: r.rows, details: { loadAverage1m: { before: round2(loadBefore), after: round2(os.loadavg()[0]!) }, ...r.details } };
  } catch (err) {
    progress(`${name} failed: ${(err as Error).stack ?? String(err)}`);
    return { rows: [{ figure: `${name}: failed`, ours: String((err as Error).message ?? err).split('\n')[0]!.slice(0, 60), baseline: '', target: '', met: false }], details: { error: String(err) } };
  }
}

const round2 = (x: number) => Math.round(x * 100) / 100;

function printTable(rows: readonly Row[]): string {
  const head: Row = { figure: 'figure', ours: 'hum-reaper', baseline: 'baseline', target: 'target', met: null };
  const cells = (r: Row) => [r.figure, r.ours, r.baseline, r.target, r === head ? 'met?' : r.met === null ? '–' : r.met ? 'yes' : 'NO'];
  const all = [head, ...rows].map(cells);
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => [...c[i]!].length)));
  const line = (c: string[]) => c.map((v, i) => v + ' '.repeat(widths[i]! - [...v].length)).join(' | ');
  return [line(all[0]!), widths.map((w) => '-'.repeat(w)).join('-|-'), ...all.slice(1).map(line)].join('\n');
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('the benchmark reads /proc: Linux only');
  const opts = optionsFromEnv();
  const want = (name: string) => opts.only === null || opts.only.has(name);
  const started = Date.now();
  const loadStart = os.loadavg();
  // The code measured is the code at build time (others may commit while the bench runs).
  const gitAtBuild = { commit: git(['rev-parse', 'HEAD']), srcDirty: git(['status', '--porcelain', '--', 'src', 'config']) !== '' };
  progress('building the reaper as users run it (tsc → bench/out/build)');
  const build = await buildReaper();
  if (build.diagnostics) progress(`tsc reported problems (built anyway):\n${build.diagnostics.slice(0, 2000)}`);
  const run = new BenchRun(opts, build);

  let cleaning: Promise<void> | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: killing every process of this run`);
    cleaning ??= run.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: Record<string, FigureResult> = {};
  const unrelated = run.token();
  try {
    if (want('catchup')) results.catchup = await attempt('catch-up', () => catchUpFigure(run));
    let sleepers: number[] = [];
    if (want('sweep')) {
      progress(`starting ${opts.sweepProcesses} sleep processes`);
      sleepers = await startSleepers(unrelated, opts.sweepProcesses);
      results.sweep = await attempt('sweep', () => sweepFigure(run, sleepers));
    }
    if (want('latency') || want('idle') || want('flood')) {
      // Down (or up) to the unrelated processes the latency target is stated with.
      if (sleepers.length > opts.unrelated) {
        await stopPids(sleepers.slice(opts.unrelated), unrelated);
        sleepers = sleepers.slice(0, opts.unrelated);
      } else if (sleepers.length < opts.unrelated) {
        sleepers.push(...(await startSleepers(unrelated, opts.unrelated - sleepers.length)));
      }
      if (want('latency')) results.latency = await attempt('latency', () => latencyFigure(run, sleepers));
      if (want('idle')) results.idle = await attempt('idle', () => idleFigure(run, sleepers));
      if (want('flood')) results.flood = await attempt('flood', () => floodFigure(run, sleepers));
    }
  } finally {
    await (cleaning ?? run.cleanup());
  }

  const order = ['latency', 'catchup', 'sweep', 'idle', 'flood'];
  const rows = order.flatMap((k) => results[k]?.rows ?? []);
  const table = printTable(rows);
  process.stdout.write(`\n${table}\n\n`);
  const cpus = os.cpus();
  const out = {
    date: new Date(started).toISOString(),
    durationS: Math.round((Date.now() - started) / 1000),
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      memoryMB: Math.round(os.totalmem() / 2 ** 20),
      loadAverageAtStart: loadStart.map(round2),
      loadAverageAtEnd: os.loadavg().map(round2),
    },
    git: gitAtBuild,
    build: { entry: 'dist/cli/main.js (tsc of src/, run with plain node)', tscDiagnostics: build.diagnostics || null },
    options: { ...opts, only: opts.only ? [...opts.only] : null, daemonNodeArgs: daemonNodeArgs() },
    table: rows,
    figures: Object.fromEntries(order.filter((k) => results[k]).map((k) => [k, results[k]!.details])),
  };
  writeFileSync(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
  progress(`wrote ${RESULTS} (${out.durationS} s)`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
