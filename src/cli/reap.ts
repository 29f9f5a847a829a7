import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Verdict } from '../policy/decide.js';
import { defaultProcessReader } from '../procs/reader.js';
import type { ProcessReader } from '../procs/types.js';
import { reapOnce, type Candidate, type ReapReport } from '../reap.js';
import type { CommonArgs } from './args.js';
import { formatAge, formatBytes, table } from './format.js';

export interface CommandIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  reader?: ProcessReader;
}

/** `hum-reaper ps` and `hum-reaper reap`: one pass; ps never kills. */
export async function reapCommand(kind: 'ps' | 'reap', args: CommonArgs, io: CommandIO): Promise<number> {
  const { config, warnings } = loadConfig({ flags: args.flags });
  warnings.forEach((w) => io.stderr(`warning: ${w}`));
  const dryRun = kind === 'ps' || config.dryRun;
  const report = await reapOnce({ config, reader: io.reader ?? defaultProcessReader(), dryRun });
  for (const w of report.log?.warnings ?? []) io.stderr(`warning: ${w}`);
  for (const n of report.decision.notes) io.stderr(`note: ${n}`);

  const failures = report.candidates.filter((c) => c.action === 'failed');
  for (const f of failures) io.stderr(`error: pid ${f.verdict.process.pid} (sid ${f.verdict.cell.sid}): ${f.kill?.error ?? 'kill failed'}`);
  for (const s of report.candidates.filter((c) => c.action === 'skipped' && c.kill)) {
    io.stderr(`skipped: pid ${s.verdict.process.pid}: ${s.kill?.error ?? ''}`);
  }

  if (args.json) io.stdout(JSON.stringify(kind === 'ps' ? psJson(report) : reapJson(report, config)));
  else io.stdout(kind === 'ps' ? psText(report) : reapText(report));
  return failures.length > 0 || report.decision.valveTripped ? 1 : 0;
}

function cellJson(v: Verdict, now: number) {
  return {
    pid: v.process.pid,
    ppid: v.process.ppid,
    sid: v.cell.sid as string | null,
    bridgePort: v.cell.bridgePort,
    sessionUuid: v.cell.sessionUuid,
    startedAt: new Date(v.process.startedAt).toISOString(),
    ageMs: Math.max(0, Math.round(now - v.process.startedAt)),
    rssBytes: v.treeRssBytes,
    descendants: v.descendants.map((d) => d.pid),
  };
}

function logJson(report: ReapReport) {
  const log = report.log;
  return log
    ? { origin: log.origin, complete: log.complete, bytes: log.bytes, events: log.counts.events, lines: log.counts.lines, skippedLines: log.counts.skipped, oversizeLines: log.counts.oversize }
    : null;
}

function psJson(report: ReapReport) {
  const now = report.snapshot.takenAt;
  return {
    command: 'ps',
    processes: report.decision.verdicts.map((v) => ({
      ...cellJson(v, now),
      verdict: v.verdict,
      reason: v.reason,
      evidence: v.verdict === 'orphan' ? v.evidence.detail : null,
    })),
    workers: report.decision.workers.map((w) => ({ pid: w.pid, startedAt: new Date(w.startedAt).toISOString() })),
    log: logJson(report),
    notes: report.decision.notes,
    warnings: report.log?.warnings ?? [],
  };
}

function reapJson(report: ReapReport, config: Config) {
  const now = report.snapshot.takenAt;
  const candidates = report.candidates.map((c) => ({
    ...cellJson(c.verdict, now),
    reason: c.verdict.reason,
    evidence: c.verdict.evidence.detail,
    action: c.action,
    descendants: c.kill?.descendants ?? c.verdict.descendants.map((d) => d.pid),
    signal: c.kill?.signal ?? null,
    error: c.kill?.error ?? null,
  }));
  return {
    command: 'reap',
    dryRun: report.dryRun,
    valveTripped: report.decision.valveTripped,
    maxOrphans: config.maxOrphans,
    candidates,
    totals: totals(report.candidates),
    workers: report.decision.workers.map((w) => w.pid),
    log: logJson(report),
    notes: report.decision.notes,
    warnings: report.log?.warnings ?? [],
    durationMs: report.durationMs,
  };
}

function totals(candidates: Candidate[]) {
  const count = (a: Candidate['action']) => candidates.filter((c) => c.action === a).length;
  const freed = candidates.filter((c) => c.action === 'killed' || c.action === 'would-kill').reduce((s, c) => s + c.verdict.treeRssBytes, 0);
  return { orphans: candidates.length, killed: count('killed'), wouldKill: count('would-kill'), failed: count('failed'), skipped: count('skipped'), rssBytes: freed };
}

function nothingFound(report: ReapReport): string | null {
  if (report.decision.verdicts.length > 0) return null;
  return report.decision.workers.length === 0
    ? 'No hum claude-cli-worker is running and no worker children were found. Nothing to do.'
    : `Worker running (pid ${report.decision.workers.map((w) => w.pid).join(', ')}); it has no claude children right now. Nothing to do.`;
}

function psText(report: ReapReport): string {
  const empty = nothingFound(report);
  if (empty) return empty;
  const now = report.snapshot.takenAt;
  const rows = report.decision.verdicts.map((v) => [
    String(v.process.pid),
    String(v.process.ppid),
    v.cell.sid,
    String(v.cell.bridgePort),
    formatAge(now - v.process.startedAt),
    formatBytes(v.treeRssBytes),
    v.verdict === 'orphan' ? `orphan: ${v.reason}` : v.verdict === 'live' ? 'live' : `protected: ${v.reason}`,
  ]);
  const orphans = report.decision.orphans;
  const rss = orphans.reduce((s, o) => s + o.treeRssBytes, 0);
  return `${table(['PID', 'PPID', 'SID', 'PORT', 'AGE', 'RSS', 'VERDICT'], rows)}\n\n${rows.length} worker children, ${orphans.length} orphans holding ${formatBytes(rss)}.`;
}

function reapText(report: ReapReport): string {
  const empty = nothingFound(report);
  if (empty) return empty;
  const now = report.snapshot.takenAt;
  if (report.candidates.length === 0) return `${report.decision.verdicts.length} worker children, no orphans. Nothing to kill.`;
  const rows = report.candidates.map((c) => [
    String(c.verdict.process.pid),
    c.verdict.cell.sid,
    formatAge(now - c.verdict.process.startedAt),
    formatBytes(c.verdict.treeRssBytes),
    c.verdict.reason,
    String(c.verdict.descendants.length),
    c.action,
  ]);
  const t = totals(report.candidates);
  const summary = report.dryRun
    ? `${t.orphans} orphans; would kill ${t.wouldKill} and free ${formatBytes(t.rssBytes)} (dry run: nothing was killed).`
    : report.decision.valveTripped
      ? `${t.orphans} orphans exceeds the safety valve: nothing was killed (use --force if this is real).`
      : `${t.orphans} orphans; killed ${t.killed}, failed ${t.failed}, skipped ${t.skipped}; freed ${formatBytes(t.rssBytes)}.`;
  return `${table(['PID', 'SID', 'AGE', 'RSS', 'REASON', 'CHILDREN', 'ACTION'], rows)}\n\n${summary}`;
}
