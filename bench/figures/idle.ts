// Figure 4: what `hum-reaper run` costs while nothing happens — CPU and RSS over a window
// (BENCH_IDLE_S, default 60 s) with the default 30 s sweep, beside an idle
// `node -e "setInterval(()=>{},1e9)"` measured the same way at the same time. Read from /proc
// (utime+stime, VmRSS), which is what pidusage reads on Linux, without its sampling window.
import { spawn } from 'node:child_process';
import { RUN_ENV, sleep, startSimWorker } from '../../test/support/sim.js';
import { progress, type BenchRun, type FigureResult } from '../lib/context.js';
import { cpuMs, MB, processCount, rssBytes } from '../lib/procs.js';
import { startDaemon } from '../lib/reaper.js';
import { round } from '../lib/stats.js';

const TARGET_RSS_MB = 80;
const TARGET_CPU_PCT = 0.5;
const SETTLE_MS = 3000;

interface Usage {
  cpuPct: number;
  cpuMs: number;
  rssMaxMB: number;
  rssLastMB: number;
}

/** Samples pids once a second for windowMs; CPU as a share of one core over the window. */
async function sample(pids: readonly number[], windowMs: number): Promise<Usage[]> {
  const cpu0 = pids.map(cpuMs);
  const t0 = performance.now();
  const rss: number[][] = pids.map(() => []);
  while (performance.now() - t0 < windowMs) {
    await sleep(Math.min(1000, windowMs - (performance.now() - t0)));
    pids.forEach((p, i) => {
      const r = rssBytes(p);
      if (r !== null) rss[i]!.push(r);
    });
  }
  const wall = performance.now() - t0;
  return pids.map((p, i) => {
    const a = cpu0[i];
    const b = cpuMs(p);
    if (a === null || a === undefined || b === null) throw new Error(`pid ${p} went away during the idle window`);
    const r = rss[i]!;
    return { cpuMs: b - a, cpuPct: round(((b - a) / wall) * 100, 3), rssMaxMB: round(Math.max(...r) / MB, 1), rssLastMB: round(r[r.length - 1]! / MB, 1) };
  });
}

export async function idleFigure(bench: BenchRun, unrelatedPids: readonly number[]): Promise<FigureResult> {
  const token = bench.token();
  const stateDir = bench.tempDir('state');
  const w = await startSimWorker({ token });
  const idle = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e9)'], { env: { ...process.env, NODE_OPTIONS: '', [RUN_ENV]: token }, stdio: 'ignore' });
  const d = startDaemon(bench.build, ['--log', w.logPath, '--state-dir', stateDir, '--sweep-interval', '30000'], { token });
  try {
    for (let i = 0; i < 8; i++) await w.prompt(`${token}-bee-${i}`); // a worker with a full table, then quiet
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    await sleep(SETTLE_MS);
    const windowMs = bench.opts.idleS * 1000;
    const processes = processCount();
    progress(`idle: sampling hum-reaper run and an idle node for ${bench.opts.idleS} s (${processes} processes on the machine)`);
    const sweepsBefore = d.events.filter((e) => e.event === 'reaper.sweep').length;
    const [ours, baseline] = await sample([d.pid, idle.pid!], windowMs);
    const sweeps = d.events.filter((e) => e.event === 'reaper.sweep');
    const inWindow = sweeps.slice(sweepsBefore);
    const rows = [
      { figure: `4. idle RSS, ${bench.opts.idleS} s, 30 s sweeps (max)`, ours: `${ours!.rssMaxMB} MB`, baseline: `${baseline!.rssMaxMB} MB (idle node)`, target: `≤ ${TARGET_RSS_MB} MB`, met: ours!.rssMaxMB <= TARGET_RSS_MB },
      { figure: '   idle CPU, share of one core', ours: `${ours!.cpuPct} %`, baseline: `${baseline!.cpuPct} % (idle node)`, target: `≤ ${TARGET_CPU_PCT} %`, met: ours!.cpuPct <= TARGET_CPU_PCT },
    ];
    return {
      rows,
      details: {
        windowS: bench.opts.idleS,
        processesOnMachine: processes,
        unrelatedProcesses: unrelatedPids.length,
        sweepsInWindow: inWindow.length,
        sweepDurationsMs: inWindow.map((e) => e.durationMs),
        ours,
        baseline: { command: 'node -e "setInterval(()=>{},1e9)"', ...baseline },
        cpuResolution: '10 ms ticks (/proc/<pid>/stat utime+stime)',
      },
    };
  } finally {
    await d.stop();
    await w.stop();
    await bench.release(token);
    bench.removeDir(stateDir);
  }
}
