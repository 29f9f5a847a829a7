import { loadConfig } from '../config/load.js';
import { defaultProcessReader } from '../procs/reader.js';
import { reapOnce } from '../reap.js';
import { readDaemonState } from '../service/state.js';
import type { CommonArgs } from './args.js';
import { formatAge, formatBytes, table } from './format.js';
import type { CommandIO } from './reap.js';

/** `hum-reaper status`: what the daemon has done, from its state dir, and orphans right now. */
export async function statusCommand(args: CommonArgs, io: CommandIO): Promise<number> {
  const { config } = loadConfig({ flags: args.flags });
  const reader = io.reader ?? defaultProcessReader();
  const state = await readDaemonState(config.stateDir, reader);
  const now = await reapOnce({ config, reader, dryRun: true });
  const orphansNow = now.decision.orphans.map((o) => ({ pid: o.process.pid, sid: o.cell.sid, reason: o.reason, rssBytes: o.treeRssBytes }));

  if (args.json) {
    io.stdout(JSON.stringify({ command: 'status', ...state, orphansNow, warnings: now.log?.warnings ?? [] }));
    return 0;
  }
  const t = Date.now();
  const lines: string[] = [`state dir: ${config.stateDir}`];
  const d = state.daemon;
  lines.push(
    !d ? (state.ledger ? 'daemon: not running (stopped cleanly)' : 'daemon: never ran here (no lock file, no ledger)') : d.running ? `daemon: running, pid ${d.pid}, up ${formatAge(t - d.startedAt)}` : `daemon: not running (last pid ${d.pid}, started ${formatAge(t - d.startedAt)} ago)`,
  );
  if (state.ledgerProblem) lines.push(`ledger: ${state.ledgerProblem}`);
  const l = state.ledger;
  if (l) {
    const kills = Object.entries(l.totals.killedByReason);
    const total = kills.reduce((s, [, n]) => s + n, 0);
    lines.push(`kills since ${new Date(l.totals.since).toISOString()}: ${total}${kills.length ? ` (${kills.map(([r, n]) => `${r} ${n}`).join(', ')})` : ''}; failed ${l.totals.failed}; RSS freed ${formatBytes(l.totals.rssFreedBytes)}`);
    lines.push(l.lastSweep ? `last sweep: ${formatAge(t - l.lastSweep.at)} ago, ${l.lastSweep.durationMs} ms, ${l.lastSweep.orphans} orphans, ${l.lastSweep.killed} killed` : 'last sweep: none recorded');
    const last = l.recent.filter((a) => a.action === 'killed').at(-1);
    if (last) lines.push(`last kill: ${formatAge(t - last.at)} ago, pid ${last.pid} (${last.sid}, ${last.reason})`);
  }
  lines.push(`orphans right now: ${orphansNow.length}${orphansNow.length ? ` holding ${formatBytes(orphansNow.reduce((s, o) => s + o.rssBytes, 0))}` : ''}`);
  if (orphansNow.length) lines.push(table(['PID', 'SID', 'REASON'], orphansNow.map((o) => [String(o.pid), o.sid, o.reason])));
  io.stdout(lines.join('\n'));
  return 0;
}
