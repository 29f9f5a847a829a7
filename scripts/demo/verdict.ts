// The reaper's record against the ground truth: pure arithmetic over what was collected.
import type { DaemonEvent } from '../../test/support/cli.js';
import type { Cause, GroundTruth } from './truth.js';

export interface KillEvent {
  pid: number;
  sid: string;
  reason: string;
  rssBytes: number;
  descendants: number;
  /** Log line → SIGTERM, ms; only for kills driven by a log line. */
  latencyMs: number | null;
  /** Set only on the hot path (the kill followed the line as it was read). */
  hotPath: boolean;
}

export function asKill(e: DaemonEvent): KillEvent | null {
  if (e.event !== 'reaper.kill' || typeof e.pid !== 'number') return null;
  return {
    pid: e.pid,
    sid: typeof e.sid === 'string' ? e.sid : '?',
    reason: typeof e.reason === 'string' ? e.reason : '?',
    rssBytes: typeof e.rssBytes === 'number' ? e.rssBytes : 0,
    descendants: Array.isArray(e.descendants) ? e.descendants.length : 0,
    latencyMs: typeof e.latencyMs === 'number' ? e.latencyMs : null,
    hotPath: typeof e.readLagMs === 'number',
  };
}

export interface Verdict {
  created: Map<Cause, number>;
  createdTotal: number;
  reaped: Map<string, number>;
  reapedTotal: number;
  /** Kills of a pid that was never an orphan, and children that died without being one. */
  wrongKills: number[];
  /** Orphans (and forgotten children) still alive at the end. */
  misses: number[];
  /** Eviction / idle kills on the hot path, of cells dropped after liveSince: log line → SIGTERM. */
  latency: { n: number; p50: number; p95: number; max: number } | null;
  rssFreedBytes: number;
}

/**
 * liveSince: when the reaper was up (its catch-up sweep); latency counts only cells dropped
 * after that, so a backlog from before it ran is not passed off as reaction time.
 */
export function judge(
  truth: GroundTruth,
  kills: readonly KillEvent[],
  alive: (pid: number) => boolean,
  workerTable: ReadonlySet<number>,
  liveSince: number,
): Verdict {
  const created = new Map<Cause, number>();
  for (const o of truth.orphans.values()) created.set(o.cause, (created.get(o.cause) ?? 0) + 1);
  const reaped = new Map<string, number>();
  for (const k of kills) reaped.set(k.reason, (reaped.get(k.reason) ?? 0) + 1);

  const killed = new Set(kills.map((k) => k.pid));
  const wrong = new Set(kills.filter((k) => !truth.orphans.has(k.pid)).map((k) => k.pid));
  // Nothing but the reaper ends a child during the demo, so a dead non-orphan is collateral.
  for (const c of truth.children.values()) if (!truth.orphans.has(c.pid) && !alive(c.pid) && !killed.has(c.pid)) wrong.add(c.pid);

  const misses: number[] = [];
  for (const c of truth.children.values()) if (alive(c.pid) && !workerTable.has(c.pid)) misses.push(c.pid);

  const lat = kills
    .filter((k) => k.hotPath && k.latencyMs !== null && (k.reason === 'evicted' || k.reason === 'idle-killed'))
    .filter((k) => (truth.orphans.get(k.pid)?.orphanedAt ?? -Infinity) >= liveSince)
    .map((k) => k.latencyMs as number)
    .sort((a, b) => a - b);

  return {
    created,
    createdTotal: truth.orphans.size,
    reaped,
    reapedTotal: kills.length,
    wrongKills: [...wrong],
    misses,
    latency: lat.length ? { n: lat.length, p50: percentile(lat, 0.5), p95: percentile(lat, 0.95), max: lat[lat.length - 1]! } : null,
    rssFreedBytes: kills.reduce((s, k) => s + k.rssBytes, 0),
  };
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}
