import type { Config } from './config/schema.js';
import type { WorkerEvent } from './events/types.js';
import { killAll, killTree, type KillResult } from './kill/kill.js';
import { decide, type Decision, type Verdict } from './policy/decide.js';
import { matchWorkerChild } from './procs/signature.js';
import type { ProcessReader, ProcessSnapshot } from './procs/types.js';
import { readLogSince, type LogRead } from './sources/read-log.js';

export type Action = 'would-kill' | 'killed' | 'failed' | 'skipped';

export interface Candidate {
  verdict: Extract<Verdict, { verdict: 'orphan' }>;
  action: Action;
  kill?: KillResult;
}

export interface ReapReport {
  snapshot: ProcessSnapshot;
  decision: Decision;
  log: LogRead | null;
  candidates: Candidate[];
  dryRun: boolean;
  durationMs: number;
}

export interface ReapOptions {
  config: Config;
  reader: ProcessReader;
  /** Decide and report, kill nothing. */
  dryRun: boolean;
  self?: { pid: number; uid: number };
  /** Events already known (the daemon's); when absent the log is read for this pass. */
  events?: { events: readonly WorkerEvent[]; complete: boolean };
  onKill?: (c: Candidate) => void;
  /** Pids whose kill is under way (shared with the daemon's hot path): skipped here, and
   *  this pass's own kills are entered while they run, so no process is killed twice. */
  inflight?: Set<number>;
}

/** One pass: snapshot → log evidence → pure decision → kill (unless dry run or the valve tripped). */
export async function reapOnce(opts: ReapOptions): Promise<ReapReport> {
  const started = Date.now();
  const { config, reader, dryRun } = opts;
  const self = opts.self ?? { pid: process.pid, uid: process.getuid?.() ?? 0 };
  const snapshot = await reader.snapshot();

  let log: LogRead | null = null;
  let evidence = opts.events;
  if (!evidence) {
    // Evidence only matters after the oldest worker child started: read just that much log.
    const starts = snapshot.processes.filter((p) => matchWorkerChild(p.argv, config.signature)).map((p) => p.startedAt);
    if (starts.length > 0) {
      log = await readLogSince(config.log, Math.min(...starts));
      evidence = { events: log.events, complete: log.complete };
    } else {
      evidence = { events: [], complete: true };
    }
  }

  const decision = decide({
    snapshot,
    events: evidence.events,
    logComplete: evidence.complete,
    config,
    now: Date.now(),
    self,
  });

  const act = !dryRun && !decision.valveTripped;
  const inflight = opts.inflight ?? new Set<number>();
  const candidates: Candidate[] = decision.orphans.filter((v) => !inflight.has(v.process.pid)).map((verdict) => ({
    verdict,
    action: dryRun ? 'would-kill' : act ? 'killed' : 'skipped',
  }));
  if (act) {
    await killAll(candidates, async (c) => {
      const pid = c.verdict.process.pid;
      if (inflight.has(pid)) {
        // The hot path took it while this pass was deciding.
        c.action = 'skipped';
        return { pid, outcome: 'skipped', signal: null, descendants: [] };
      }
      inflight.add(pid);
      try {
        const r = await killTree(c.verdict.process, c.verdict.descendants, { reader, graceMs: config.graceMs });
        c.kill = r;
        c.action = r.outcome === 'failed' ? 'failed' : r.outcome === 'skipped' ? 'skipped' : 'killed';
        opts.onKill?.(c);
        return r;
      } finally {
        inflight.delete(pid);
      }
    });
  }
  return { snapshot, decision, log, candidates, dryRun, durationMs: Date.now() - started };
}
