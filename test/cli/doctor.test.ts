import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRun, newRunToken, startSimWorker, type SimWorker } from '../support/sim.js';
import { runCli, scopedEnv, startDaemon, type RunningDaemon } from '../support/cli.js';
import { evictionLine } from '../support/logfile.js';

const token = newRunToken();
const workers: SimWorker[] = [];
const daemons: RunningDaemon[] = [];
const tmpDirs: string[] = [];
after(async () => {
  for (const d of daemons) await d.crash().catch(() => undefined);
  for (const w of workers) await w.stop();
  await cleanupRun(token);
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

interface DoctorOut { ok: boolean; checks: { name: string; ok: boolean; detail: string; fix?: string }[] }
const byName = (out: DoctorOut) => new Map(out.checks.map((c) => [c.name, c]));

test('doctor: a healthy setup passes every check (exit 0)', async () => {
  const w = await startSimWorker({ token, table: 2 });
  workers.push(w);
  for (let i = 0; i < 4; i++) await w.prompt(`${token}-d${i}`);
  const home = mkdtempSync(join(tmpdir(), 'hum-reaper-home-'));
  mkdirSync(join(home, '.config', 'systemd', 'user'), { recursive: true });
  writeFileSync(join(home, '.config', 'systemd', 'user', 'hum-reaper.service'), '[Service]\n');
  const stateDir = join(home, 'state');
  const d = startDaemon(['--log', w.logPath, '--state-dir', stateDir, '--sweep-interval', '1000'], { env: scopedEnv(token), token });
  daemons.push(d);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  const r = await runCli(['doctor', '--json', '--log', w.logPath, '--state-dir', stateDir], { env: { ...scopedEnv(token), HOME: home, XDG_CONFIG_HOME: '' }, token });
  const out = JSON.parse(r.stdout) as DoctorOut;
  assert.deepEqual(out.checks.filter((c) => !c.ok), [], 'no failed check');
  assert.equal(r.code, 0);
  assert.match(byName(out).get('worker log')!.detail, /last eviction \d+s ago/);
  assert.match(byName(out).get('daemon running')!.detail, new RegExp(`pid ${d.pid}`));
  const human = await runCli(['doctor', '--log', w.logPath, '--state-dir', stateDir], { env: { ...scopedEnv(token), HOME: home }, token });
  assert.match(human.stdout, /All checks passed\./);
  assert.ok(human.stdout.split('\n').length < 25, 'one screen');
  await d.stop();
});

test('doctor: a broken setup names each problem with a fix (exit 1)', async () => {
  const home = mkdtempSync(join(tmpdir(), 'hum-reaper-home-'));
  const stateDir = join(home, 'state');
  mkdirSync(stateDir);
  chmodSync(stateDir, 0o777);
  const r = await runCli(['doctor', '--json', '--log', join(home, 'no-such.log'), '--state-dir', stateDir], { env: { ...scopedEnv(token), HOME: home }, token });
  assert.equal(r.code, 1);
  const checks = byName(JSON.parse(r.stdout) as DoctorOut);
  for (const name of ['worker log', 'state dir and ledger', 'service installed', 'daemon running', 'sweeps']) {
    assert.equal(checks.get(name)?.ok, false, `${name} fails`);
    assert.ok(checks.get(name)?.fix, `${name} has a fix`);
  }
  assert.match(checks.get('worker log')!.detail, /no-such\.log: ENOENT/);
  assert.match(checks.get('state dir and ledger')!.detail, /world-writable/);
  assert.equal(checks.get('process table')?.ok, true);
  const human = await runCli(['doctor', '--log', join(home, 'no-such.log'), '--state-dir', stateDir], { env: { ...scopedEnv(token), HOME: home }, token });
  assert.match(human.stdout, /✗ worker log: .*\n {4}fix: /);
  assert.match(human.stdout, /\d checks failed\./);
});

// ---- readers leave the daemon's files alone; the log and state dir checks judge what is there ----

/** ~10 MB of ledger as a long-running daemon leaves it (past the 8 MiB compaction threshold), with `kills` evictions. */
function bigLedger(path: string, kills: number): void {
  const at = Date.now() - 3_600_000;
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < 10 * 1024 * 1024 || i < kills; i++) {
    const pid = 100_000 + i;
    const cell = { t: 'cell', sid: `${token}-x${i}`, sessionUuid: null, bridgePort: 53117, pid, startKey: `k${i}`, startedAt: at, ppid: 4000, firstSeen: at + i, lastSeen: at + i };
    const act = i < kills
      ? { t: 'action', action: 'killed', pid, startKey: `k${i}`, sid: cell.sid, reason: 'evicted', at: at + i, signal: 'SIGTERM', rssBytes: 1024 }
      : { t: 'action', action: 'gone', pid, startKey: `k${i}`, sid: cell.sid, reason: 'superseded', at: at + i };
    for (const rec of [cell, act, { t: 'forget', pid, startKey: `k${i}`, at: at + i }]) {
      const line = JSON.stringify(rec);
      lines.push(line);
      bytes += line.length + 1;
    }
  }
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
}

test('status and doctor read a 10 MB ledger without rewriting it: same bytes, same inode, and the daemon\'s appends survive', async () => {
  const home = tmp('hum-reaper-home-');
  const stateDir = join(home, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  const ledger = join(stateDir, 'ledger.jsonl');
  bigLedger(ledger, 1234);
  const bytes = readFileSync(ledger);
  const ino = statSync(ledger).ino;
  assert.ok(bytes.length > 10 * 1024 * 1024);
  // The daemon's descriptor: what it appends after a reader ran must still be in the file at that path.
  const daemonFd = openSync(ledger, 'a');
  try {
    const env = { ...scopedEnv(token), HOME: home };
    const status = await runCli(['status', '--json', '--state-dir', stateDir, '--log', 'none'], { env, token });
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { ledger: { totals: { killedByReason: Record<string, number> }; corruptLines: number } | null; ledgerProblem?: string };
    assert.equal(s.ledgerProblem, undefined);
    assert.equal(s.ledger?.totals.killedByReason.evicted, 1234, 'status did read the ledger');
    const human = await runCli(['status', '--state-dir', stateDir, '--log', 'none'], { env, token });
    assert.match(human.stdout, /kills since .*: 1234 \(evicted 1234\)/);
    const doctor = await runCli(['doctor', '--json', '--state-dir', stateDir, '--log', 'none'], { env, token });
    const checks = byName(JSON.parse(doctor.stdout) as DoctorOut);
    assert.equal(checks.get('state dir and ledger')?.ok, true, checks.get('state dir and ledger')?.detail);

    assert.equal(statSync(ledger).ino, ino, 'same inode');
    assert.ok(readFileSync(ledger).equals(bytes), 'same bytes');
    assert.deepEqual(readdirSync(stateDir), ['ledger.jsonl'], 'nothing else written in the state dir');
    const late = `${JSON.stringify({ t: 'sweep', at: Date.now(), durationMs: 3, orphans: 0, killed: 0 })}\n`;
    writeSync(daemonFd, late);
    assert.ok(readFileSync(ledger, 'utf8').endsWith(late), 'an append through the daemon\'s old descriptor lands in the file');
  } finally {
    closeSync(daemonFd);
  }
});

test('status and doctor do not create a missing state dir', async () => {
  const home = tmp('hum-reaper-home-');
  const stateDir = join(home, 'state');
  const env = { ...scopedEnv(token), HOME: home };
  const status = await runCli(['status', '--json', '--state-dir', stateDir, '--log', 'none'], { env, token });
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { ledger: unknown }).ledger, null);
  const doctor = await runCli(['doctor', '--json', '--state-dir', stateDir, '--log', 'none'], { env, token });
  assert.match(byName(JSON.parse(doctor.stdout) as DoctorOut).get('state dir')!.detail, /does not exist yet/);
  assert.equal(existsSync(stateDir), false);
  assert.deepEqual(readdirSync(home), []);
});

test('doctor: a log of garbage with one blank line fails the format check', async () => {
  const home = tmp('hum-reaper-home-');
  const log = join(home, 'txt.log');
  writeFileSync(log, 'hello world\nthis is not a tracing line\n\nfoo bar\n');
  const env = { ...scopedEnv(token), HOME: home };
  const r = await runCli(['doctor', '--json', '--log', log, '--state-dir', join(home, 'state')], { env, token });
  const check = byName(JSON.parse(r.stdout) as DoctorOut).get('worker log')!;
  assert.equal(check.ok, false, check.detail);
  assert.match(check.detail, /4 lines in the last hour \(1 blank\), 0 in a format we parse, 3 not/);
  assert.equal(r.code, 1);
  const human = await runCli(['doctor', '--log', log, '--state-dir', join(home, 'state')], { env, token });
  assert.match(human.stdout, /✗ worker log: .*0 in a format we parse/);

  // One real worker line among the same garbage does pass.
  writeFileSync(log, `hello world\n\n${evictionLine(`${token}-gone`)}\nfoo bar\n`);
  const good = await runCli(['doctor', '--json', '--log', log, '--state-dir', join(home, 'state')], { env, token });
  const ok = byName(JSON.parse(good.stdout) as DoctorOut).get('worker log')!;
  assert.equal(ok.ok, true, ok.detail);
  assert.match(ok.detail, /4 lines in the last hour \(1 blank\), 1 in a format we parse, 2 not/);
});

test('doctor: a state dir that is a symlink to a real directory passes; a symlinked ledger in it is still refused', async () => {
  const home = tmp('hum-reaper-home-');
  const real = join(home, 'real');
  mkdirSync(real, { mode: 0o700 });
  writeFileSync(join(real, 'ledger.jsonl'), `${JSON.stringify({ t: 'sweep', at: Date.now(), durationMs: 3, orphans: 0, killed: 0 })}\n`, { mode: 0o600 });
  const link = join(home, 'link');
  symlinkSync(real, link);
  const env = { ...scopedEnv(token), HOME: home };
  const r = await runCli(['doctor', '--json', '--log', 'none', '--state-dir', link], { env, token });
  const check = byName(JSON.parse(r.stdout) as DoctorOut).get('state dir and ledger')!;
  assert.equal(check.ok, true, check.detail);
  assert.match(check.detail, /owned by you, mode 700, ledger safe/);

  rmSync(join(real, 'ledger.jsonl'));
  writeFileSync(join(home, 'elsewhere.jsonl'), '', { mode: 0o600 });
  symlinkSync(join(home, 'elsewhere.jsonl'), join(real, 'ledger.jsonl'));
  const bad = await runCli(['doctor', '--json', '--log', 'none', '--state-dir', link], { env, token });
  const refused = byName(JSON.parse(bad.stdout) as DoctorOut).get('state dir and ledger')!;
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /refusing to use ledger .*: it is a symbolic link/);
  assert.doesNotMatch(refused.detail, /not a directory|world-writable/);
});
