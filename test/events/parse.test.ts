import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseLogLine, toWorkerEvent, stripAnsi } from '../../src/events/parse.js';
import { EventCollector } from '../../src/events/collect.js';
import type { WorkerEvent } from '../../src/events/types.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../shared/fixtures/${name}`, import.meta.url));
const eventsOf = (text: string): WorkerEvent[] => {
  const c = new EventCollector();
  return text.split('\n').map((l) => c.take(l)).filter((e): e is WorkerEvent => e !== null);
};

test('documented plain lines parse to their events', () => {
  const cases: [string, Partial<WorkerEvent>][] = [
    ['2026-05-27T12:05:02.100234Z  INFO worker.mcp.bridge.up mcp_url=http://127.0.0.1:53117', { kind: 'bridge-up', port: 53117 }],
    ['2026-05-27T12:05:03.412871Z TRACE spawned pid=Some(48213)', { kind: 'spawned-pid', pid: 48213 }],
    ['2026-05-27T12:05:03.413190Z TRACE worker.cell.spawned sid=sid-daman-operator', { kind: 'cell-spawned', sid: 'sid-daman-operator' }],
    ['2026-05-27T12:05:40.220001Z TRACE worker.cell.reused sid=sid-daman-operator', { kind: 'cell-reused', sid: 'sid-daman-operator' }],
    ['2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=sid-daman-operator', { kind: 'evicted', sid: 'sid-daman-operator' }],
    ['2026-05-27T12:11:33.120004Z  WARN worker.cell.idle.kill sid=sid-daman-watchdog-v1-1 age_ms=300412', { kind: 'idle-killed', sid: 'sid-daman-watchdog-v1-1' }],
    ['2026-05-27T12:07:40.551230Z TRACE worker.cell.exit sid=sid-daman-follower-v1-5 exit_code=0', { kind: 'cell-exit', sid: 'sid-daman-follower-v1-5' }],
    ['2026-05-27T12:07:40.551230Z  INFO worker.connecting socket=/tmp/hum/thrum.sock hive=claude-cli', { kind: 'connecting' }],
    ['2026-05-27T12:07:40.551230Z  INFO serve_worker: thrum dropped, reconnecting err=connection reset by peer (os error 54)', { kind: 'reconnecting' }],
  ];
  cases.forEach(([line, want], i) => {
    const parsed = parseLogLine(line);
    assert.ok(parsed, line);
    const e = toWorkerEvent(parsed, i);
    assert.ok(e, line);
    for (const [k, v] of Object.entries(want)) assert.equal((e as Record<string, unknown>)[k], v, `${k} of ${line}`);
    assert.equal(e.seq, i);
  });
});

test('timestamps keep microseconds', () => {
  const p = parseLogLine('2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=x');
  assert.ok(p);
  assert.equal(p.at, Date.UTC(2026, 4, 27, 12, 6, 18, 902) + 0.114);
});

test('the documented ANSI eviction line parses like the plain one', () => {
  const ansi = '\x1b[2m2026-05-27T12:06:18.902114Z\x1b[0m \x1b[33m WARN\x1b[0m worker.cell.evict.lru \x1b[3mevicted_sid\x1b[0m\x1b[2m=\x1b[0msid-daman-operator';
  assert.deepEqual(parseLogLine(ansi), parseLogLine(stripAnsi(ansi)));
  assert.equal(parseLogLine(ansi)?.fields.evicted_sid, 'sid-daman-operator');
});

test('values with spaces and quoted Debug values', () => {
  const err = parseLogLine('2026-12-03T18:20:09.685412Z  INFO serve_worker: thrum dropped, reconnecting err=connection reset by peer (os error 54)');
  assert.equal(err?.message, 'serve_worker: thrum dropped, reconnecting');
  assert.equal(err?.fields.err, 'connection reset by peer (os error 54)');
  const q = parseLogLine('2026-12-03T18:20:09.548412Z  WARN worker.result.error sid=sid-daman-bee-2 subtype="error_during_execution" detail="Credit balance is too low x=1"');
  assert.equal(q?.fields.subtype, 'error_during_execution');
  assert.equal(q?.fields.detail, 'Credit balance is too low x=1');
  assert.equal(q?.fields.sid, 'sid-daman-bee-2');
});

test('JSON-per-line tracing output gives the same events', () => {
  const json = '{"timestamp":"2026-05-27T12:06:18.902114Z","level":"WARN","fields":{"message":"worker.cell.evict.lru","evicted_sid":"sid-daman-operator"},"target":"claude_cli_worker"}';
  const plain = '2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=sid-daman-operator';
  assert.deepEqual(toWorkerEvent(parseLogLine(json)!, 0), toWorkerEvent(parseLogLine(plain)!, 0));
  const spawned = '{"timestamp":"2026-05-27T12:05:03.412871Z","level":"TRACE","fields":{"message":"spawned pid=Some(48213)"}}';
  assert.deepEqual(toWorkerEvent(parseLogLine(spawned)!, 3), { kind: 'spawned-pid', pid: 48213, at: parseLogLine(spawned)!.at, seq: 3 });
});

test('CRLF is tolerated', () => {
  const p = parseLogLine('2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=sid-a\r');
  assert.equal(p?.fields.evicted_sid, 'sid-a');
});

test('the ANSI and plain fixtures yield identical events', () => {
  const ansi = eventsOf(readFileSync(fixture('worker-0.31.16.ansi.log'), 'utf8'));
  const plain = eventsOf(readFileSync(fixture('worker-0.31.16.plain.log'), 'utf8'));
  assert.deepEqual(ansi, plain);
  const kinds = new Set(ansi.map((e) => e.kind));
  for (const k of ['evicted', 'idle-killed', 'spawned-pid', 'cell-spawned', 'cell-reused', 'cell-exit', 'bridge-up', 'connecting', 'reconnecting']) {
    assert.ok(kinds.has(k as WorkerEvent['kind']), `fixture has a ${k} event`);
  }
  const ports = ansi.filter((e) => e.kind === 'bridge-up').map((e) => (e as { port: number }).port);
  assert.ok(ports.length >= 2 && new Set(ports).size >= 2, 'reconnect brings a new bridge port');
});

test('garbage, binary and foreign lines are skipped and counted, never thrown on', () => {
  const c = new EventCollector();
  const junk = ['', 'hello world', '\x00\x01\x02\xff', '{"not":"tracing"}', '{broken json', '2026-13-45T99:99:99.000000Z  WARN worker.cell.evict.lru evicted_sid=x', '2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=', '2026-05-27T12:06:18.902114Z  NOPE worker.cell.evict.lru evicted_sid=x'];
  for (const line of junk) assert.equal(c.take(line), null, JSON.stringify(line));
  assert.equal(c.counts.events, 0);
  assert.equal(c.counts.skipped, 6);
});

test('a pid that is not Some(n) gives no event', () => {
  for (const v of ['None', 'Some(-1)', 'Some(0)', 'Some(99999999999)', 'Some(12', '12']) {
    const p = parseLogLine(`2026-05-27T12:05:03.412871Z TRACE spawned pid=${v}`);
    assert.equal(p && toWorkerEvent(p, 0), null, v);
  }
});
