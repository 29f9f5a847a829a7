import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type DecideInput } from '../../src/policy/decide.js';
import { loadConfig } from '../../src/config/load.js';
import type { ProcessInfo } from '../../src/procs/types.js';
import type { WorkerEvent } from '../../src/events/types.js';

const { config } = loadConfig({ env: {}, platform: 'linux', home: '/nonexistent' });
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const SELF = { pid: 50, uid: 501 };

function childArgv(sid: string, port = 40000): string[] {
  return ['/usr/local/bin/claude', '-p', '--verbose', '--model', 'claude-opus-4-7', '--dangerously-skip-permissions', '--disable-slash-commands', '--input-format', 'stream-json', '--output-format', 'stream-json', '--include-partial-messages', '--mcp-config', `{"mcpServers":{"hum":{"type":"http","url":"http://127.0.0.1:${port}/s/${sid}"}}}`, '--strict-mcp-config'];
}
const proc = (p: Partial<ProcessInfo> & { pid: number }): ProcessInfo => ({
  ppid: 1, uid: 501, name: 'claude', argv: [], startKey: String(p.startedAt ?? T0), startedAt: T0, rssBytes: 200 << 20, zombie: false, ...p,
});
const worker = proc({ pid: 100, ppid: 1, name: 'claude-cli-work', argv: ['claude-cli-worker'], startedAt: T0 - 3_600_000 });
const shell = proc({ pid: 60, ppid: 1, name: 'zsh', argv: ['-zsh'], startedAt: T0 - 7_200_000 });
const cell = (pid: number, sid: string, startedAt: number, extra: Partial<ProcessInfo> = {}) =>
  proc({ pid, ppid: 100, argv: childArgv(sid), startedAt, startKey: String(startedAt), ...extra });

let seq = 0;
type Unsequenced = WorkerEvent extends infer E ? (E extends unknown ? Omit<E, 'seq'> : never) : never;
const ev = (e: Unsequenced) => ({ ...e, seq: seq++ }) as WorkerEvent;

function run(processes: ProcessInfo[], events: WorkerEvent[], over: Partial<DecideInput> = {}) {
  return decide({
    snapshot: { processes: [proc({ pid: 1, ppid: 0, name: 'launchd', argv: ['/sbin/launchd'] }), worker, shell, proc({ pid: SELF.pid, ppid: 60, name: 'node' }), ...processes], takenAt: T0 + 600_000, startPrecisionMs: 30 },
    events,
    logComplete: true,
    config: { ...config, minAgeMs: 1000 },
    now: T0 + 600_000,
    self: SELF,
    ...over,
  });
}
const verdictOf = (d: ReturnType<typeof decide>, pid: number) => {
  const v = d.verdicts.find((x) => x.process.pid === pid);
  return !v ? 'absent' : v.verdict === 'live' ? 'live' : `${v.verdict}:${v.reason}`;
};

test('evicted: a child that started before the eviction of its sid is an orphan; its fresh respawn is live', () => {
  const events = [ev({ kind: 'bridge-up', port: 40000, at: T0 - 10_000 }), ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 5_000 })];
  const d = run([cell(201, 'sid-a', T0), cell(202, 'sid-a', T0 + 5_100), cell(203, 'sid-b', T0)], events);
  assert.equal(verdictOf(d, 201), 'orphan:evicted');
  assert.equal(verdictOf(d, 202), 'live');
  assert.equal(verdictOf(d, 203), 'live');
  assert.deepEqual(d.orphans.map((o) => o.process.pid), [201]);
});

test('idle-killed, and evicted wins when both name the sid', () => {
  const d = run([cell(201, 'sid-a', T0), cell(202, 'sid-b', T0)], [
    ev({ kind: 'idle-killed', sid: 'sid-a', at: T0 + 1000 }),
    ev({ kind: 'idle-killed', sid: 'sid-b', at: T0 + 1000 }),
    ev({ kind: 'evicted', sid: 'sid-b', at: T0 + 2000 }),
  ]);
  assert.equal(verdictOf(d, 201), 'orphan:idle-killed');
  assert.equal(verdictOf(d, 202), 'orphan:evicted');
});

test('ties within the same second: start-time precision decides nothing; spawn-line order does', () => {
  // Eviction 10 ms after a start reading whose precision is 30 ms: not certainly before.
  const close = run([cell(201, 'sid-a', T0)], [ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 10 })]);
  assert.equal(verdictOf(close, 201), 'live');
  // The log's spawn line for that pid came before the eviction: certain.
  const ordered = run([cell(201, 'sid-a', T0)], [ev({ kind: 'spawned-pid', pid: 201, at: T0 + 2 }), ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 10 })]);
  assert.equal(verdictOf(ordered, 201), 'orphan:evicted');
  // Spawn line after the eviction: the fresh child, even though its start reads earlier.
  const fresh = run([cell(202, 'sid-a', T0 - 20)], [ev({ kind: 'evicted', sid: 'sid-a', at: T0 }), ev({ kind: 'spawned-pid', pid: 202, at: T0 + 1 })]);
  assert.equal(verdictOf(fresh, 202), 'live');
});

test('a spawn line for a recycled pid (far from the start time) is not used', () => {
  const d = run([cell(201, 'sid-a', T0 + 100_000)], [ev({ kind: 'spawned-pid', pid: 201, at: T0 }), ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 50_000 })]);
  assert.equal(verdictOf(d, 201), 'live');
});

test('superseded: an older cell of the same worker and sid; the newest stays', () => {
  const d = run([cell(201, 'sid-a', T0), cell(202, 'sid-a', T0 + 3000), cell(203, 'sid-a', T0 + 6000)], []);
  assert.equal(verdictOf(d, 201), 'orphan:superseded');
  assert.equal(verdictOf(d, 202), 'orphan:superseded');
  assert.equal(verdictOf(d, 203), 'live');
});

test('superseded needs the same parent worker', () => {
  const worker2 = proc({ pid: 101, name: 'claude-cli-work', argv: ['claude-cli-worker'], startedAt: T0 - 1000 });
  const d = run([worker2, cell(201, 'sid-a', T0), cell(202, 'sid-a', T0 + 3000, { ppid: 101 })], []);
  assert.equal(verdictOf(d, 201), 'live');
  assert.equal(verdictOf(d, 202), 'live');
});

test('stale-connection: an old port from before the latest bridge-up', () => {
  const events = [ev({ kind: 'bridge-up', port: 40000, at: T0 - 10_000 }), ev({ kind: 'reconnecting', at: T0 + 1000 }), ev({ kind: 'bridge-up', port: 40001, at: T0 + 1100 })];
  const d = run([cell(201, 'sid-a', T0), proc({ pid: 202, ppid: 100, argv: childArgv('sid-b', 40001), startedAt: T0 + 2000 })], events);
  assert.equal(verdictOf(d, 201), 'orphan:stale-connection');
  assert.equal(verdictOf(d, 202), 'live');
});

test('stale-connection judges only children whose port this log announced; not when the log was not read whole', () => {
  const events = [ev({ kind: 'bridge-up', port: 40000, at: T0 - 10_000 }), ev({ kind: 'bridge-up', port: 40001, at: T0 + 1100 })];
  const worker2 = proc({ pid: 101, name: 'claude-cli-work', argv: ['claude-cli-worker'], startedAt: T0 - 100_000 });
  const otherWorkersChild = proc({ pid: 202, ppid: 101, argv: childArgv('sid-b', 41000), startedAt: T0 });
  const two = run([worker2, cell(201, 'sid-a', T0), otherWorkersChild], events);
  assert.equal(verdictOf(two, 201), 'orphan:stale-connection');
  assert.equal(verdictOf(two, 202), 'live', "a port this log never announced belongs to another worker");
  // Announced before this parent worker started: a port reused by a later worker run.
  const restarted = run([proc({ ...worker, startedAt: T0 - 1000 }), cell(201, 'sid-a', T0)], events);
  assert.equal(verdictOf(restarted, 201), 'live');
  const partial = run([cell(201, 'sid-a', T0)], [...events, ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 5000 })], { logComplete: false });
  assert.equal(verdictOf(partial, 201), 'live');
});

test('stale-connection when the old bridge-up was not read: a child on the latest port names the log\'s worker', () => {
  // A connection lives for hours: its bridge-up line can lie before the log read for a pass.
  const events = [ev({ kind: 'reconnecting', at: T0 + 1000 }), ev({ kind: 'bridge-up', port: 40001, at: T0 + 1100 })];
  const onNewPort = (pid: number, ppid: number, at: number) => proc({ pid, ppid, argv: childArgv(`sid-${pid}`, 40001), startedAt: at });
  const d = run([cell(201, 'sid-a', T0), onNewPort(202, 100, T0 + 2000)], events);
  assert.equal(verdictOf(d, 201), 'orphan:stale-connection');
  assert.equal(verdictOf(d, 202), 'live');
  // Nothing ties the worker to this log yet: no verdict on the old port.
  assert.equal(verdictOf(run([cell(201, 'sid-a', T0)], events), 201), 'live');
  // Two workers with a child on that port: which one the log belongs to is not known.
  const worker2 = proc({ pid: 101, name: 'claude-cli-work', argv: ['claude-cli-worker'], startedAt: T0 - 100_000 });
  const ambiguous = run([worker2, cell(201, 'sid-a', T0), onNewPort(202, 100, T0 + 2000), onNewPort(203, 101, T0 + 3000), proc({ pid: 204, ppid: 101, argv: childArgv('sid-d', 41000), startedAt: T0 })], events);
  assert.equal(verdictOf(ambiguous, 201), 'live');
  assert.equal(verdictOf(ambiguous, 204), 'live');
  // A hand-started process on that port names no worker, and hides none.
  const byHand = proc({ pid: 205, ppid: 60, argv: childArgv('sid-e', 40001), startedAt: T0 + 3000 });
  assert.equal(verdictOf(run([cell(201, 'sid-a', T0), onNewPort(202, 100, T0 + 2000), byHand], events), 201), 'orphan:stale-connection');
  // A child on that port from before the line (the port reused) names no worker.
  assert.equal(verdictOf(run([cell(201, 'sid-a', T0), onNewPort(202, 100, T0 + 500)], events), 201), 'live');
});

test('unparented: reparented to pid 1 or to a subreaper named in config; log-free', () => {
  const subreaper = proc({ pid: 70, ppid: 1, name: 'systemd', argv: ['/lib/systemd/systemd', '--user'] });
  const d = run([subreaper, cell(201, 'sid-a', T0, { ppid: 1 }), cell(202, 'sid-b', T0, { ppid: 70 })], [], { logComplete: false });
  assert.equal(verdictOf(d, 201), 'orphan:unparented');
  assert.equal(verdictOf(d, 202), 'orphan:unparented');
});

test('never candidates: hand-started, other uid, too young, self and ancestors, the worker, non-matching argv', () => {
  const evictAll = ['sid-a', 'sid-b', 'sid-c', 'sid-d', 'sid-e'].map((sid) => ev({ kind: 'evicted', sid, at: T0 + 500_000 }));
  const selfLike = proc({ pid: SELF.pid, ppid: 60, argv: childArgv('sid-e'), startedAt: T0 });
  const full = decide({
    snapshot: {
      processes: [worker, shell, selfLike, cell(201, 'sid-a', T0, { ppid: 60 }), cell(202, 'sid-b', T0, { uid: 0 }), cell(203, 'sid-c', T0 + 599_500), proc({ pid: 204, ppid: 100, argv: ['claude', '--model', 'x'] }), proc({ pid: 205, ppid: 100, argv: childArgv('sid-d').filter((a) => a !== '--strict-mcp-config') }), proc({ pid: 1, ppid: 0, argv: childArgv('sid-a') })],
      takenAt: T0 + 600_000,
      startPrecisionMs: 30,
    },
    events: evictAll,
    logComplete: true,
    config: { ...config, minAgeMs: 1000 },
    now: T0 + 600_000,
    self: SELF,
  });
  assert.equal(verdictOf(full, 201), 'protected:hand-started');
  assert.equal(verdictOf(full, 202), 'protected:other-uid');
  assert.equal(verdictOf(full, 203), 'protected:too-young');
  assert.equal(verdictOf(full, SELF.pid), 'protected:self');
  assert.equal(verdictOf(full, 1), 'protected:pid-1');
  assert.equal(verdictOf(full, 204), 'absent');
  assert.equal(verdictOf(full, 205), 'absent');
  assert.equal(verdictOf(full, 100), 'absent');
  assert.deepEqual(full.orphans, []);
});

test('a worker-looking process with the child argv is still never a candidate', () => {
  const d = run([proc({ pid: 300, ppid: 100, name: 'claude-cli-work', argv: childArgv('sid-a') })], [ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 500_000 })]);
  assert.equal(verdictOf(d, 300), 'protected:worker');
});

test('descendants are listed deepest first and never include the worker or us', () => {
  const d = run(
    [cell(201, 'sid-a', T0), proc({ pid: 210, ppid: 201, name: 'bash' }), proc({ pid: 211, ppid: 210, name: 'rg' }), proc({ pid: 212, ppid: 201, name: 'node' })],
    [ev({ kind: 'evicted', sid: 'sid-a', at: T0 + 5000 })],
  );
  const o = d.orphans[0];
  assert.ok(o);
  assert.deepEqual(o.descendants.map((p) => p.pid), [211, 210, 212]);
  assert.equal(o.treeRssBytes, 4 * (200 << 20));
});

test('sid prefix in config limits which processes are considered at all', () => {
  const scoped = { ...config, minAgeMs: 0, signature: { ...config.signature, sidPrefix: 'hrt-1234-' } };
  const d = run([cell(201, 'hrt-1234-a', T0, { ppid: 1 }), cell(202, 'sid-a', T0, { ppid: 1 })], [], { config: scoped });
  assert.equal(verdictOf(d, 201), 'orphan:unparented');
  assert.equal(verdictOf(d, 202), 'absent');
});

test('the safety valve trips above maxOrphans unless forced', () => {
  const many = Array.from({ length: 5 }, (_, i) => cell(400 + i, `sid-${i}`, T0, { ppid: 1 }));
  const tripped = run(many, [], { config: { ...config, minAgeMs: 0, maxOrphans: 4 } });
  assert.equal(tripped.orphans.length, 5);
  assert.equal(tripped.valveTripped, true);
  const forced = run(many, [], { config: { ...config, minAgeMs: 0, maxOrphans: 4, force: true } });
  assert.equal(forced.valveTripped, false);
});

test('zombies are not candidates (they are already dead)', () => {
  const d = run([cell(201, 'sid-a', T0, { ppid: 1, zombie: true })], []);
  assert.equal(verdictOf(d, 201), 'absent');
});
