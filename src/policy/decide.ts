import type { Config } from '../config/schema.js';
import type { WorkerEvent } from '../events/types.js';
import { matchWorkerChild, isWorkerProcess, type CellIdentity } from '../procs/signature.js';
import type { ProcessInfo, ProcessSnapshot } from '../procs/types.js';

export type OrphanReason = 'evicted' | 'idle-killed' | 'superseded' | 'stale-connection' | 'unparented';
/** Why a process that looks like a worker child is never a candidate. */
export type Protection = 'pid-1' | 'self' | 'worker' | 'other-uid' | 'hand-started' | 'too-young';

export type Verdict =
  | (VerdictBase & { verdict: 'orphan'; reason: OrphanReason; evidence: Evidence })
  | (VerdictBase & { verdict: 'live'; reason: 'live' })
  | (VerdictBase & { verdict: 'protected'; reason: Protection });

interface VerdictBase {
  process: ProcessInfo;
  cell: CellIdentity;
  /** Deepest first: the order their SIGTERMs go out. */
  descendants: ProcessInfo[];
  /** The process and its descendants together. */
  treeRssBytes: number;
}

/** What condemned an orphan: a log event, a newer sibling, or its parent. */
export interface Evidence {
  at: number;
  seq?: number;
  detail: string;
}

export interface DecideInput {
  snapshot: ProcessSnapshot;
  /** Worker events in log order. */
  events: readonly WorkerEvent[];
  /** False when the log could not be read whole: only the log-free rules may then condemn. */
  logComplete: boolean;
  config: Pick<Config, 'signature' | 'minAgeMs' | 'maxOrphans' | 'force'>;
  now: number;
  self: { pid: number; uid: number };
}

export interface Decision {
  verdicts: Verdict[];
  orphans: Extract<Verdict, { verdict: 'orphan' }>[];
  workers: ProcessInfo[];
  /** More orphans than `maxOrphans` without `force`: report, kill nothing. */
  valveTripped: boolean;
  notes: string[];
}

/** Which worker children are orphans, and why. Pure: no I/O, no clock. */
export function decide(input: DecideInput): Decision {
  const { snapshot, events, config, now, self } = input;
  const precision = snapshot.startPrecisionMs;
  const live = snapshot.processes.filter((p) => !p.zombie);
  const byPid = new Map(live.map((p) => [p.pid, p]));
  const childrenOf = groupBy(live, (p) => p.ppid);
  const workers = live.filter((p) => isWorkerProcess(p, config.signature));
  const selfChain = ancestry(self.pid, byPid);
  const notes: string[] = [];

  const logEvents = input.logComplete ? events : [];
  const spawnsByPid = groupBy(logEvents.filter(isKind('spawned-pid')), (e) => e.pid);
  const dropsBySid = groupBy(
    logEvents.filter((e): e is Extract<WorkerEvent, { kind: 'evicted' | 'idle-killed' }> => e.kind === 'evicted' || e.kind === 'idle-killed'),
    (e) => e.sid,
  );
  const bridges = logEvents.filter(isKind('bridge-up'));
  const lastBridge = bridges.reduce<(typeof bridges)[number] | null>((a, e) => (a === null || e.seq > a.seq ? e : a), null);

  /** The log line that announced this pid's spawn, if the log has it and it is this process's. */
  const spawnLineOf = (p: ProcessInfo) =>
    (spawnsByPid.get(p.pid) ?? []).filter((e) => e.at >= p.startedAt - precision && e.at <= p.startedAt + precision + 5000).at(-1);

  /** True only when p certainly started before the moment (at, seq) was logged. */
  const startedBefore = (p: ProcessInfo, at: number, seq?: number): boolean => {
    const spawn = spawnLineOf(p);
    if (spawn && seq !== undefined) return spawn.seq < seq;
    return p.startedAt + precision < at;
  };

  const cells = live
    .map((p) => ({ process: p, cell: matchWorkerChild(p.argv, config.signature) }))
    .filter((c): c is { process: ProcessInfo; cell: CellIdentity } => c.cell !== null);

  // The worker this log belongs to, when its children say so: the only worker with a child
  // spawned on the latest bridge port since that line. Its bridge lines may be older than
  // the log read for this pass (a connection lives for hours).
  const workerPids = new Set(workers.map((w) => w.pid));
  const onLatestPort = new Set(
    lastBridge
      ? cells
          .filter((c) => workerPids.has(c.process.ppid) && c.cell.bridgePort === lastBridge.port && !startedBefore(c.process, lastBridge.at, lastBridge.seq))
          .map((c) => c.process.ppid)
      : [],
  );
  const logWorker = onLatestPort.size === 1 ? [...onLatestPort][0]! : null;

  const verdicts: Verdict[] = cells.map(({ process: p, cell }) => {
    const descendants = descendantsOf(p.pid, childrenOf, (d) => !selfChain.has(d.pid) && !workers.includes(d));
    const base = { process: p, cell, descendants, treeRssBytes: [p, ...descendants].reduce((s, d) => s + d.rssBytes, 0) };
    const protect = (reason: Protection): Verdict => ({ ...base, verdict: 'protected', reason });
    const orphan = (reason: OrphanReason, evidence: Evidence): Verdict => ({ ...base, verdict: 'orphan', reason, evidence });

    if (p.pid <= 1) return protect('pid-1');
    if (selfChain.has(p.pid)) return protect('self');
    if (isWorkerProcess(p, config.signature)) return protect('worker');
    if (p.uid !== self.uid) return protect('other-uid');
    const parent = byPid.get(p.ppid);
    const parentIsWorker = parent !== undefined && isWorkerProcess(parent, config.signature);
    const reparented = p.ppid === 1 || (parent !== undefined && config.signature.reparentTargets.includes(parent.name));
    if (!parentIsWorker && !reparented) return protect('hand-started');
    // startedAt is an estimate that can sit a tick in the future: minAgeMs 0 means no minimum.
    if (config.minAgeMs > 0 && now - p.startedAt < config.minAgeMs) return protect('too-young');
    if (!parentIsWorker) return orphan('unparented', { at: p.startedAt, detail: `parent is pid ${p.ppid}${parent ? ` (${parent.name})` : ''}, not a worker` });

    const drops = (dropsBySid.get(cell.sid) ?? []).filter((e) => startedBefore(p, e.at, e.seq));
    const drop = drops.find((e) => e.kind === 'evicted') ?? drops[0];
    if (drop) {
      return orphan(drop.kind, { at: drop.at, seq: drop.seq, detail: `${drop.kind === 'evicted' ? 'worker.cell.evict.lru' : 'worker.cell.idle.kill'} for sid ${cell.sid}` });
    }

    const newer = cells.find(
      (c) => c.process !== p && c.process.ppid === p.ppid && c.cell.sid === cell.sid && isNewer(c.process, p),
    );
    if (newer) return orphan('superseded', { at: newer.process.startedAt, detail: `pid ${newer.process.pid} is a newer cell for sid ${cell.sid}` });

    // The log is one worker's; a child belongs to it only if its parent is that worker, or
    // this log announced the child's port during its parent's life (another worker's
    // children never match).
    const announced =
      lastBridge !== null &&
      (parent.pid === logWorker || bridges.some((b) => b.port === cell.bridgePort && b.seq < lastBridge.seq && b.at + precision >= parent.startedAt));
    if (
      lastBridge &&
      announced &&
      cell.bridgePort !== lastBridge.port &&
      parent.startedAt + precision < lastBridge.at &&
      startedBefore(p, lastBridge.at, lastBridge.seq)
    ) {
      return orphan('stale-connection', { at: lastBridge.at, seq: lastBridge.seq, detail: `bridge port ${cell.bridgePort}; the worker's bridge is now ${lastBridge.port}` });
    }
    return { ...base, verdict: 'live', reason: 'live' };
  });

  /** q is certainly newer than p: by spawn-line order when the log has both, else by start time. */
  function isNewer(q: ProcessInfo, p: ProcessInfo): boolean {
    const sq = spawnLineOf(q);
    const sp = spawnLineOf(p);
    if (sq && sp) return sq.seq > sp.seq;
    return q.startedAt > p.startedAt + precision;
  }

  const orphans = verdicts.filter((v): v is Extract<Verdict, { verdict: 'orphan' }> => v.verdict === 'orphan');
  const valveTripped = orphans.length > config.maxOrphans && !config.force;
  if (valveTripped) {
    notes.push(`${orphans.length} orphans is more than maxOrphans (${config.maxOrphans}): nothing will be killed without --force`);
  }
  return { verdicts, orphans, workers, valveTripped, notes };
}

const isKind =
  <K extends WorkerEvent['kind']>(kind: K) =>
  (e: WorkerEvent): e is Extract<WorkerEvent, { kind: K }> =>
    e.kind === kind;

function groupBy<T, K>(items: readonly T[], key: (t: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** pid and every ancestor of it found in the snapshot. */
function ancestry(pid: number, byPid: Map<number, ProcessInfo>): Set<number> {
  const chain = new Set<number>([pid]);
  for (let p = byPid.get(pid); p && !chain.has(p.ppid) && p.ppid > 0; p = byPid.get(p.ppid)) chain.add(p.ppid);
  return chain;
}

/** Every descendant, deepest first (post-order), skipping any that `keep` rejects. */
export function descendantsOf(pid: number, childrenOf: Map<number, ProcessInfo[]>, keep: (p: ProcessInfo) => boolean): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  const seen = new Set<number>([pid]);
  const visit = (parent: number) => {
    for (const child of childrenOf.get(parent) ?? []) {
      if (seen.has(child.pid) || !keep(child)) continue;
      seen.add(child.pid);
      visit(child.pid);
      out.push(child);
    }
  };
  visit(pid);
  return out;
}
