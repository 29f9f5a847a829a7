import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { defaultProcessReader } from '../procs/reader.js';
import { isWorkerProcess } from '../procs/signature.js';
import type { ProcessReader, ProcessSnapshot } from '../procs/types.js';
import { serviceFile } from '../service/install.js';
import { LEDGER_FILE, readDaemonState, type DaemonState } from '../service/state.js';
import { readLogSince } from '../sources/read-log.js';
import type { CommonArgs } from './args.js';
import { formatAge } from './format.js';
import type { CommandIO } from './reap.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about a ✗. */
  fix?: string;
}

const LOG_STALE_MS = 15 * 60_000;

/** `hum-reaper doctor`: one screen of ✓/✗ with a fix for each ✗; exit 1 if any fails. */
export async function doctorCommand(args: CommonArgs, io: CommandIO): Promise<number> {
  const { config } = loadConfig({ flags: args.flags });
  const reader = io.reader ?? defaultProcessReader();
  const checks = await runChecks(config, reader, process.env);
  if (args.json) {
    io.stdout(JSON.stringify({ command: 'doctor', ok: checks.every((c) => c.ok), checks }));
  } else {
    const lines = checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}${!c.ok && c.fix ? `\n    fix: ${c.fix}` : ''}`);
    const failed = checks.filter((c) => !c.ok).length;
    io.stdout(`${lines.join('\n')}\n\n${failed === 0 ? 'All checks passed.' : `${failed} check${failed > 1 ? 's' : ''} failed.`}`);
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}

export async function runChecks(config: Config, reader: ProcessReader, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const checks: Check[] = [];
  let snapshot: ProcessSnapshot | null = null;
  try {
    snapshot = await reader.snapshot();
    const me = snapshot.processes.find((p) => p.pid === process.pid);
    const seesArgv = me !== undefined && me.argv.length > 1;
    checks.push({
      name: 'process table',
      ok: seesArgv,
      detail: seesArgv ? `${snapshot.processes.length} processes, full argv visible` : 'our own argv is not visible',
      fix: 'hum-reaper needs to read other processes\' argv (/proc, or ps -ww); check hidepid mounts or sandboxing',
    });
  } catch (err) {
    checks.push({ name: 'process table', ok: false, detail: `cannot list processes: ${String(err)}`, fix: 'make sure `ps` is on PATH (launchd: EnvironmentVariables PATH)' });
  }

  const workers = snapshot?.processes.filter((p) => isWorkerProcess(p, config.signature) && !p.zombie) ?? [];
  checks.push({
    name: 'worker',
    ok: workers.length > 0,
    detail: workers.length ? `claude-cli-worker running (pid ${workers.map((w) => w.pid).join(', ')})` : 'no claude-cli-worker process found',
    fix: process.platform === 'darwin' ? 'start hum: launchctl kickstart gui/$(id -u)/sh.hum.hum-claude-cli-worker' : 'start hum: systemctl --user start hum-claude-cli-worker',
  });

  checks.push(await logCheck(config, workers.length > 0));
  const state = await readDaemonState(config.stateDir, reader, 50);
  checks.push(stateCheck(config, state));
  checks.push(...daemonChecks(config, state, env));
  return checks;
}

async function logCheck(config: Config, workerRunning: boolean): Promise<Check> {
  const src = config.log;
  if (src.type === 'none') return { name: 'worker log', ok: false, detail: 'log evidence is turned off (log.type none)', fix: 'set --log to the worker log so evictions are seen at once' };
  if (src.type === 'file') {
    let mtime: number;
    try {
      const st = statSync(src.path);
      if (!st.isFile()) return { name: 'worker log', ok: false, detail: `${src.path} is not a regular file`, fix: 'point --log at the worker\'s StandardOutPath file' };
      mtime = st.mtimeMs;
    } catch (err) {
      return { name: 'worker log', ok: false, detail: `${src.path}: ${(err as { code?: string }).code ?? String(err)}`, fix: 'point --log (or "log.path" in the config) at the worker\'s log; hum\'s installer writes ~/Library/Logs/sh.hum.hum-claude-cli-worker.out.log' };
    }
    if (Date.now() - mtime > LOG_STALE_MS) {
      return { name: 'worker log', ok: false, detail: `${src.path} last written ${formatAge(Date.now() - mtime)} ago`, fix: 'is the worker writing to another file? check its plist\'s StandardOutPath, or rotation that left it writing to the old file' };
    }
  }
  const read = await readLogSince(src, Date.now() - 3_600_000, { everyLine: true });
  if (!read.complete) return { name: 'worker log', ok: false, detail: read.warnings.join('; '), fix: src.type === 'command' ? 'check that journalctl can read your user journal' : 'check the file\'s permissions' };
  // Lines that really parsed as worker log lines. Not lines − skipped: the collector counts a
  // blank line neither as skipped nor as parsed, so one blank line would pass any garbage.
  const parsed = read.counts.events + read.counts.ignored;
  const blank = read.counts.lines - parsed - read.counts.skipped;
  const lastDrop = read.events.filter((e) => e.kind === 'evicted' || e.kind === 'idle-killed').at(-1);
  // A running worker logs (INFO at least) within an hour; silence means the wrong source.
  const ok = parsed > 0 || (read.counts.lines === 0 && !workerRunning);
  return {
    name: 'worker log',
    ok,
    detail: `${read.origin}: ${read.counts.lines} lines in the last hour${blank ? ` (${blank} blank)` : ''}, ${parsed} in a format we parse${read.counts.skipped ? `, ${read.counts.skipped} not` : ''}; last eviction ${lastDrop ? `${formatAge(Date.now() - lastDrop.at)} ago` : 'none in the last hour'}`,
    fix: read.counts.lines === 0 ? 'the worker runs but this source has no lines from the last hour: is it the worker\'s stdout log?' : 'the lines are not tracing compact or JSON output; is this the worker\'s stdout log?',
  };
}

function stateCheck(config: Config, state: DaemonState): Check {
  const dir = config.stateDir;
  if (!existsSync(dir)) return { name: 'state dir', ok: true, detail: `${dir} does not exist yet (created by the daemon on first run)` };
  // Through a symlink, as the daemon uses it: what counts is the directory it leads to. (The
  // ledger file itself is still refused if it is a link: Ledger.read checks it.)
  const st = statSync(dir);
  const uid = process.getuid?.() ?? st.uid;
  const problems: string[] = [];
  if (!st.isDirectory()) problems.push('not a directory');
  if (st.uid !== uid) problems.push(`owned by uid ${st.uid}, not ${uid}`);
  if (st.mode & 0o002) problems.push('world-writable');
  if (state.ledgerProblem) problems.push(state.ledgerProblem);
  if (state.ledger?.corruptLines) problems.push(`${state.ledger.corruptLines} corrupt ledger lines (skipped)`);
  return {
    name: 'state dir and ledger',
    ok: problems.length === 0,
    detail: problems.length ? `${dir}: ${problems.join('; ')}` : `${dir} owned by you, mode ${(st.mode & 0o777).toString(8)}${existsSync(join(dir, LEDGER_FILE)) ? ', ledger safe' : ''}`,
    fix: `chown/chmod ${dir} (0700, owned by you), or move an unsafe ledger aside`,
  };
}

function daemonChecks(config: Config, state: DaemonState, env: NodeJS.ProcessEnv): Check[] {
  const manager = process.platform === 'darwin' ? 'launchd' : 'systemd';
  const file = serviceFile(manager, env, env.HOME ?? homedir());
  const installed = existsSync(file);
  const d = state.daemon;
  const sweep = state.ledger?.lastSweep;
  const lastKill = state.ledger?.recent.filter((a) => a.action === 'killed').at(-1);
  const sweepFresh = sweep !== null && sweep !== undefined && Date.now() - sweep.at < 3 * config.sweepIntervalMs + 10_000;
  return [
    { name: 'service installed', ok: installed, detail: installed ? file : `${file} not found`, fix: 'npx hum-reaper install' },
    {
      name: 'daemon running',
      ok: d?.running === true,
      detail: d?.running ? `pid ${d.pid}, up ${formatAge(Date.now() - d.startedAt)}` : d ? `not running (lock left by pid ${d.pid})` : 'not running',
      fix: manager === 'launchd' ? 'launchctl kickstart gui/$(id -u)/sh.hum.hum-reaper, or npx hum-reaper install' : 'systemctl --user start hum-reaper, or npx hum-reaper install',
    },
    {
      name: 'sweeps',
      ok: sweepFresh,
      detail: sweep ? `last sweep ${formatAge(Date.now() - sweep.at)} ago (${sweep.durationMs} ms, ${sweep.orphans} orphans); last kill ${lastKill ? `${formatAge(Date.now() - lastKill.at)} ago (${lastKill.reason})` : 'none recorded'}` : 'no sweep recorded',
      fix: 'the daemon is not sweeping: see its log (~/Library/Logs/sh.hum.hum-reaper.err.log or journalctl --user -u hum-reaper)',
    },
  ];
}
