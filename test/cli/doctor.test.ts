import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRun, newRunToken, startSimWorker, type SimWorker } from '../support/sim.js';
import { runCli, scopedEnv, startDaemon, type RunningDaemon } from '../support/cli.js';

const token = newRunToken();
const workers: SimWorker[] = [];
const daemons: RunningDaemon[] = [];
after(async () => {
  for (const d of daemons) await d.crash().catch(() => undefined);
  for (const w of workers) await w.stop();
  await cleanupRun(token);
});

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
