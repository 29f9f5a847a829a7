import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { LatencyHistogram, renderMetrics } from '../../src/service/metrics.js';
import type { DaemonStats } from '../../src/service/daemon.js';
import { cleanupRun, isAlive, newRunToken, startSimWorker, waitFor, type SimWorker } from '../support/sim.js';
import { runCli, scopedEnv, startDaemon, type RunningDaemon } from '../support/cli.js';

type Family = { name: string; type: string; metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }[] };
const parse = (text: string) => new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  Number(fams.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);

const stats = (over: Partial<DaemonStats> = {}): DaemonStats => ({
  startedAt: 1_700_000_000_000, events: 10, evictionsSeen: 4, kills: { evicted: 3, unparented: 1 }, failures: 1, rssFreedBytes: 800 << 20,
  sweeps: 2, lastSweepAt: 1_700_000_060_000, lastSweepMs: 12, lastSweepOrphans: 0, lastEventAt: 1_700_000_050_000, tailLagBytes: 0, ...over,
});

test('metrics render in the Prometheus text format, parsed by a real parser', () => {
  const h = new LatencyHistogram();
  for (const ms of [0.5, 3, 7, 40, 2000]) h.observe(ms);
  const fams = parse(renderMetrics(stats(), h));
  assert.equal(value(fams, 'hum_reaper_kills_total', { reason: 'evicted' }), 3);
  assert.equal(value(fams, 'hum_reaper_kills_total', { reason: 'unparented' }), 1);
  assert.equal(value(fams, 'hum_reaper_kills_total', { reason: 'superseded' }), 0);
  assert.equal(value(fams, 'hum_reaper_kill_failures_total'), 1);
  assert.equal(value(fams, 'hum_reaper_rss_freed_bytes_total'), 800 << 20);
  assert.equal(value(fams, 'hum_reaper_sweep_duration_seconds'), 0.012);
  assert.equal(value(fams, 'hum_reaper_last_event_timestamp_seconds'), 1_700_000_050);
  const lat = fams.get('hum_reaper_kill_latency_seconds');
  assert.equal(lat?.type, 'HISTOGRAM');
  assert.equal(lat?.metrics[0]?.count, '5');
  assert.equal(lat?.metrics[0]?.buckets?.['0.01'], '3');
  assert.equal(lat?.metrics[0]?.buckets?.['1'], '4');
  for (const name of ['hum_reaper_tail_lag_bytes', 'hum_reaper_tail_lag_seconds', 'hum_reaper_orphans_last_sweep', 'hum_reaper_sweeps_total']) assert.ok(fams.has(name), name);
});

// ---- the daemon's metrics, status and notify, end to end ----

const token = newRunToken();
const workers: SimWorker[] = [];
const daemons: RunningDaemon[] = [];
after(async () => {
  for (const d of daemons) await d.crash().catch(() => undefined);
  for (const w of workers) await w.stop();
  await cleanupRun(token);
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

test('the daemon serves /metrics on 127.0.0.1, writes metrics.prom, records status and runs notify', async () => {
  const w = await startSimWorker({ token, table: 2 });
  workers.push(w);
  const dir = mkdtempSync(join(tmpdir(), 'hum-reaper-metrics-'));
  const stateDir = join(dir, 'state');
  const notes = join(dir, 'notes.txt');
  const recorder = join(dir, 'record.sh');
  writeFileSync(recorder, `#!/bin/sh\nprintf '%s|' "$@" >> '${notes}'\necho >> '${notes}'\n`);
  chmodSync(recorder, 0o755);
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ notify: { onKill: [recorder, 'killed {count}', '{sid}', '{reason}'], onValve: null, minIntervalMs: 0 } }));
  const port = await freePort();
  const d = startDaemon(['--config', config, '--log', w.logPath, '--state-dir', stateDir, '--metrics-port', String(port), '--sweep-interval', '1000'], { env: scopedEnv(token), token });
  daemons.push(d);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  const evicted: number[] = [];
  for (let i = 0; evicted.length < 3; i++) {
    const r = await w.prompt(`${token}-m${i}`);
    if (r.evicted) evicted.push(r.evicted.pid);
  }
  for (const pid of evicted) await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === pid, 3000);
  for (const pid of evicted) assert.equal(isAlive(pid), false);

  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${port}/metrics?format=text`)).status, 200, 'a query string is not another path');
  assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  const served = await res.text();
  const fams = parse(served);
  assert.equal(value(fams, 'hum_reaper_kills_total', { reason: 'evicted' }), 3);
  assert.ok(value(fams, 'hum_reaper_evictions_seen_total') >= 3);

  // metrics.prom is rewritten after each sweep and a second after kills.
  const promFile = join(stateDir, 'metrics.prom');
  const fileKills = () => (existsSync(promFile) ? value(parse(readFileSync(promFile, 'utf8')), 'hum_reaper_kills_total', { reason: 'evicted' }) : NaN);
  assert.ok(await waitFor(() => fileKills() === 3, 4000), `metrics.prom shows 3 evicted kills (has ${fileKills()})`);

  assert.ok(await waitFor(() => existsSync(notes) && readFileSync(notes, 'utf8').trim().split('\n').length >= 1, 3000), 'notify ran');
  const firstNote = readFileSync(notes, 'utf8').split('\n')[0]!;
  assert.match(firstNote, new RegExp(`^killed \\d+\\|${token}-m\\d+\\|evicted\\|$`));

  const status = await runCli(['status', '--json', '--state-dir', stateDir, '--log', w.logPath], { env: scopedEnv(token), token });
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as { daemon: { running: boolean; pid: number }; ledger: { totals: { killedByReason: Record<string, number> }; lastSweep: unknown }; orphansNow: unknown[] };
  assert.equal(s.daemon.running, true);
  assert.equal(s.daemon.pid, d.pid);
  assert.equal(s.ledger.totals.killedByReason.evicted, 3);
  assert.ok(s.ledger.lastSweep);
  assert.deepEqual(s.orphansNow, []);
  assert.equal(await d.stop(), 0);

  const human = await runCli(['status', '--state-dir', stateDir, '--log', w.logPath], { env: scopedEnv(token), token });
  assert.match(human.stdout, /daemon: not running/);
  assert.match(human.stdout, /kills since .*: 3 \(evicted 3\)/);
});
