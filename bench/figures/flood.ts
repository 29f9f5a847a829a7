// Figure 5: RSS of `hum-reaper run` while 1,000,000 worker events are appended to the log it
// follows as fast as they can be written, then after a sweep: memory must stay bounded.
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { sleep, waitFor } from '../../test/support/sim.js';
import { progress, type BenchRun, type FigureResult } from '../lib/context.js';
import { formatLine } from '../lib/loggen.js';
import { MB, processCount, rssBytes } from '../lib/procs.js';
import { startDaemon, type DaemonEvent } from '../lib/reaper.js';
import { round } from '../lib/stats.js';

const SWEEP_MS = 10_000;
const LINES_PER_WRITE = 5000;
/** "No growth": RSS from 500k events to the end (after a sweep) may rise this much at most.
 *  A leak grows with every event; a bounded cache has stopped growing by then. */
const GROWTH_BOUND_MB = 10;

/**
 * Worker events as a busy worker logs them, minus drops (no real process stands behind these
 * lines; figure 1 measures drops): spawns (pid line + cell line), reuses, exits, and now and
 * then a bridge-up. 40 % are `spawned pid` lines, which the evidence window keeps, so it
 * reaches its event cap early; from there on memory must stay flat. All timestamps are
 * recent, so no sweep can trim by age: the cap alone bounds memory (the worst case).
 * The pids are above pid_max, so they never name a real process.
 */
class EventLines {
  private us = Date.now() * 1000;
  private n = 0;
  private readonly firstPid: number;

  constructor(private readonly sidPrefix: string) {
    this.firstPid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
  }

  /** `count` event lines, newline-terminated. */
  text(count: number): string {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.next());
    out.push('');
    return out.join('\n');
  }

  private next(): string {
    const n = this.n++;
    this.us += 3;
    const sid = `${this.sidPrefix}bee-${n % 30}`;
    if (n % 20_000 === 19_999) return formatLine(this.us, 'INFO', 'worker.mcp.bridge.up', [['mcp_url', `http://127.0.0.1:${30_000 + (n % 30_000)}`]]);
    switch (n % 5) {
      case 0:
      case 2:
        return formatLine(this.us, 'TRACE', `spawned pid=Some(${this.firstPid + (n % 1_000_000)})`);
      case 1:
      case 3:
        return formatLine(this.us, 'TRACE', 'worker.cell.spawned', [['sid', sid]]);
      default:
        return formatLine(this.us, 'TRACE', n % 2 ? 'worker.cell.exit' : 'worker.cell.reused', n % 2 ? [['sid', sid], ['exit_code', '0']] : [['sid', sid]]);
    }
  }
}

/** Bytes the process has read through read(2) so far (/proc/<pid>/io rchar). */
function rchar(pid: number): number {
  const m = /^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/**
 * The daemon has read everything appended: its read(2) total is past the bytes written and
 * has stopped growing (it also reads /proc at sweeps and 1 KiB of the log head each poll,
 * so the total alone would say "done" a little early).
 */
async function consumed(pid: number, target: number): Promise<boolean> {
  let last = -1;
  let stableSince = 0;
  return waitFor(() => {
    const now = rchar(pid);
    if (now !== last) {
      last = now;
      stableSince = performance.now();
      return false;
    }
    return now >= target && performance.now() - stableSince >= 150;
  }, 300_000, 25);
}

const rssMB = (pid: number): number => round((rssBytes(pid) ?? NaN) / MB, 1);
const timeOf = (e: DaemonEvent): number => Date.parse(String(e.time));

export async function floodFigure(bench: BenchRun, unrelatedPids: readonly number[]): Promise<FigureResult> {
  const token = bench.token();
  const dir = bench.tempDir('flood');
  const stateDir = bench.tempDir('state');
  const logPath = join(dir, 'sh.hum.hum-claude-cli-worker.out.log');
  const total = bench.opts.floodEvents;
  writeFileSync(logPath, `${formatLine(Date.now() * 1000, 'INFO', 'worker.mcp.bridge.up', [['mcp_url', 'http://127.0.0.1:36719']])}\n`);
  // --trace-gc: the live heap after each full GC, to tell retained data from RSS the heap has
  // not handed back.
  const fullGcs: { at: number; liveMB: number; committedMB: number }[] = [];
  const d = startDaemon(bench.build, ['--log', logPath, '--state-dir', stateDir, '--sweep-interval', String(SWEEP_MS)], {
    token,
    nodeArgs: ['--trace-gc'],
    onOtherLine: (line) => {
      // `Mark-Compact 80.1 (95.3) -> 42.4 (96.0) MB`: used (committed) before -> after.
      const m = /Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(([\d.]+)\)/.exec(line);
      if (m) fullGcs.push({ at: performance.now(), liveMB: Number(m[1]), committedMB: Number(m[2]) });
    },
  });
  /** Heap still in use after the latest full GC (null if none yet). */
  const liveMB = (): number | null => fullGcs[fullGcs.length - 1]?.liveMB ?? null;
  const committedMB = (): number | null => fullGcs[fullGcs.length - 1]?.committedMB ?? null;
  try {
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    await sleep(2000);
    const processes = processCount();
    progress(`flood: appending ${total} events to the followed log (${processes} processes on the machine)`);
    const before = rssMB(d.pid);
    const gen = new EventLines(`${token}-`);
    const read0 = rchar(d.pid);
    const base = statSync(logPath).size;
    const liveBefore = liveMB();
    const milestones: { events: number; rssMB: number; liveHeapMB: number | null; atMs: number }[] = [];
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssBytes(d.pid) ?? 0), 100);
    const t0 = performance.now();
    let written = 0;
    let bytes = 0;
    try {
      for (const quarter of [0.25, 0.5, 0.75, 1]) {
        const upTo = Math.round(total * quarter);
        while (written < upTo) {
          const n = Math.min(LINES_PER_WRITE, upTo - written);
          const text = gen.text(n);
          appendFileSync(logPath, text);
          bytes += Buffer.byteLength(text);
          written += n;
          await yieldToLoop();
        }
        if (!(await consumed(d.pid, read0 + bytes))) throw new Error(`the daemon did not read ${bytes} bytes in time`);
        milestones.push({ events: written, rssMB: rssMB(d.pid), liveHeapMB: liveMB(), atMs: round(performance.now() - t0, 0) });
      }
    } finally {
      clearInterval(sampler);
    }
    const followMs = performance.now() - t0;
    const peakMB = round(Math.max(...samples) / MB, 1);
    const afterFlood = rssMB(d.pid);
    const floodEnd = Date.now();
    const sweep = await d.waitForEvent((e) => e.event === 'reaper.sweep' && timeOf(e) > floodEnd, SWEEP_MS + 30_000);
    await sleep(200);
    const afterSweep = rssMB(d.pid);
    const liveAfterSweep = liveMB();
    const committedAfterSweep = committedMB();
    const checkpoint = JSON.parse(readFileSync(join(stateDir, 'checkpoint.json'), 'utf8')) as { position: { offset: number } };
    const size = statSync(logPath).size;
    if (checkpoint.position.offset !== size) throw new Error(`checkpoint at ${checkpoint.position.offset}, log is ${size} bytes: not everything was read`);

    const half = milestones.find((m) => m.events >= total / 2)!;
    const full = milestones[milestones.length - 1]!;
    const growth = round(afterSweep - half.rssMB, 1);
    const rows = [
      {
        figure: `5. RSS: before → ${total.toLocaleString('en-US')} events → a sweep`,
        ours: `${before} → ${full.rssMB} → ${afterSweep} MB`,
        baseline: '–',
        target: '–',
        met: null,
      },
      {
        figure: `   growth past ${half.events.toLocaleString('en-US')} events (live heap at end)`,
        ours: `${growth >= 0 ? '+' : ''}${growth} MB (${liveAfterSweep ?? '?'} MB)`,
        baseline: '–',
        target: `no growth (≤ +${GROWTH_BOUND_MB} MB)`,
        met: growth <= GROWTH_BOUND_MB,
      },
      {
        figure: '   follow throughput during the flood',
        ours: `${Math.round(total / (followMs / 1000)).toLocaleString('en-US')} events/s`,
        baseline: '–',
        target: '–',
        met: null,
      },
    ];
    return {
      rows,
      details: {
        events: total,
        bytes: base + bytes,
        processesOnMachine: processes,
        unrelatedProcesses: unrelatedPids.length,
        sweepIntervalMs: SWEEP_MS,
        mix: 'per 5 events: 2× spawned pid=Some(N) (N > pid_max), 2× worker.cell.spawned, worker.cell.reused or .exit; a bridge.up every 20,000; timestamps all recent',
        rssMB: { beforeFlood: before, peak: peakMB, afterFlood, afterSweep, atMilestones: milestones },
        liveHeapMB: {
          beforeFlood: liveBefore,
          afterSweep: liveAfterSweep,
          committedAfterSweep,
          maxCommitted: Math.max(0, ...fullGcs.map((g) => g.committedMB)),
          fullGcs: fullGcs.length,
          note: 'V8 heap in use (and committed) after the latest Mark-Compact, from --trace-gc',
        },
        growthPast500kMB: growth,
        followMs: round(followMs, 0),
        eventsPerS: Math.round(total / (followMs / 1000)),
        sweepAfterFlood: { durationMs: sweep.durationMs, windowEvents: sweep.windowEvents, trimmed: sweep.trimmed },
      },
    };
  } finally {
    await d.stop();
    await bench.release(token);
    bench.removeDir(dir);
    bench.removeDir(stateDir);
  }
}
