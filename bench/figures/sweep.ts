// Figure 3: one full sweep with ~1,000 processes on the machine, vs a bare
// `ps -axww -o pid,ppid,lstart,args`. Ours: reapOnce (dry run) in this process — the sweep
// the daemon runs every interval, plus the one-shot log read `reap` does — and the whole
// `hum-reaper ps --json` command as a user runs it (Node start-up included).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config/load.js';
import { LinuxProcessReader } from '../../src/procs/linux.js';
import { reapOnce } from '../../src/reap.js';
import { scopedEnv } from '../../test/support/cli.js';
import { startSimWorker } from '../../test/support/sim.js';
import { progress, type BenchRun, type FigureResult } from '../lib/context.js';
import { processCount } from '../lib/procs.js';
import { runReaperCli } from '../lib/reaper.js';
import { median, round } from '../lib/stats.js';

const run = promisify(execFile);
const PS_ARGS = ['-axww', '-o', 'pid,ppid,lstart,args'];

async function repeat(times: number, fn: () => Promise<number>): Promise<number[]> {
  await fn(); // warm-up: page cache, JIT, lazy imports
  const out: number[] = [];
  for (let i = 0; i < times; i++) out.push(await fn());
  return out;
}

export async function sweepFigure(bench: BenchRun, unrelatedPids: readonly number[]): Promise<FigureResult> {
  const token = bench.token();
  const stateDir = bench.tempDir('state');
  const home = bench.tempDir('home');
  const w = await startSimWorker({ token });
  try {
    // 16 prompts on a table of 8: 8 live cells and 8 evicted orphans for the decision to judge.
    for (let i = 0; i < 16; i++) await w.prompt(`${token}-bee-${i}`);
    const processes = processCount();
    const runs = bench.opts.sweepRuns;
    progress(`sweep: ${processes} processes on the machine (${unrelatedPids.length} started), ${runs} runs each`);

    const { config } = loadConfig({ flags: { log: w.logPath, stateDir }, env: scopedEnv(token), home });
    const reader = new LinuxProcessReader();
    let seen = { processes: 0, children: 0, orphans: 0 };
    const sweepMs = await repeat(runs, async () => {
      const t0 = performance.now();
      const r = await reapOnce({ config, reader, dryRun: true });
      const ms = performance.now() - t0;
      seen = { processes: r.snapshot.processes.length, children: r.decision.verdicts.length, orphans: r.candidates.length };
      return ms;
    });
    const snapshotMs = await repeat(runs, async () => {
      const t0 = performance.now();
      await reader.snapshot();
      return performance.now() - t0;
    });
    let cliChildren = 0;
    const cliMs = await repeat(runs, async () => {
      const r = await runReaperCli(bench.build, ['ps', '--json', '--log', w.logPath, '--state-dir', stateDir], token);
      cliChildren = (JSON.parse(r.stdout) as { processes: unknown[] }).processes.length;
      return r.ms;
    });
    let psLines = 0;
    const psMs = await repeat(runs, async () => {
      const t0 = performance.now();
      const { stdout } = await run('ps', PS_ARGS, { maxBuffer: 64 << 20 });
      psLines = stdout.split('\n').length - 2;
      return performance.now() - t0;
    });
    if (seen.children !== 16 || seen.orphans !== 8 || cliChildren !== 16) {
      throw new Error(`the sweep did not see the run's cells: ${JSON.stringify({ ...seen, cliChildren })}`);
    }

    const ms = (xs: number[]) => round(median(xs), 1);
    const rows = [
      { figure: `3. one sweep, ${seen.processes} procs (reapOnce, dry run)`, ours: `${ms(sweepMs)} ms`, baseline: `${ms(psMs)} ms (bare ps)`, target: '–', met: null },
      { figure: '   `hum-reaper ps --json`, wall time incl. node start', ours: `${ms(cliMs)} ms`, baseline: `${ms(psMs)} ms (bare ps)`, target: '–', met: null },
    ];
    return {
      rows,
      details: {
        processesOnMachine: processes,
        unrelatedProcesses: unrelatedPids.length,
        workerChildren: seen.children,
        orphans: seen.orphans,
        runs,
        reapOnceDryRun: { medianMs: ms(sweepMs), runsMs: sweepMs.map((v) => round(v, 1)) },
        snapshotOnly: { medianMs: ms(snapshotMs), runsMs: snapshotMs.map((v) => round(v, 1)) },
        psJsonCli: { medianMs: ms(cliMs), runsMs: cliMs.map((v) => round(v, 1)) },
        baselinePs: { command: `ps ${PS_ARGS.join(' ')}`, lines: psLines, medianMs: ms(psMs), runsMs: psMs.map((v) => round(v, 1)) },
      },
    };
  } finally {
    await w.stop();
    await bench.release(token);
    bench.removeDir(stateDir);
    bench.removeDir(home);
  }
}
