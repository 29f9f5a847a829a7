import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStat } from '../../src/procs/linux.js';
import { parsePsOutput } from '../../src/procs/ps.js';

// Real /proc/<pid>/stat lines (a shell, kthreadd), with the flags field (9th) varied.
const statLine = (flags: number, state = 'S') =>
  `6600 (sh) ${state} 6598 6598 1187 0 -1 ${flags} 100 0 0 0 0 0 0 0 20 0 1 0 45860 3133440 357 18446744073709551615 0 0 0 0`;
const KTHREADD = '2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 15 0 0 18446744073709551615 0 0 0';
const argv = Buffer.from('/bin/sh\0-c\0sleep 30\0');

test('parseStat: a running process with its argv is live', () => {
  const p = parseStat(6600, statLine(4194304), argv, 1000, 0)!;
  assert.deepEqual(p.argv, ['/bin/sh', '-c', 'sleep 30']);
  assert.equal(p.ppid, 6598);
  assert.equal(p.zombie, false);
});

test('parseStat: a process past the start of exit() counts as dead (PF_EXITING, or its cmdline already empty)', () => {
  assert.equal(parseStat(6600, statLine(4194304 | 0x4), argv, 1000, 0)!.zombie, true, 'PF_EXITING set');
  assert.equal(parseStat(6600, statLine(4194304), Buffer.alloc(0), 1000, 0)!.zombie, true, 'memory released, not yet Z');
  assert.equal(parseStat(6600, statLine(4194304, 'Z'), Buffer.alloc(0), 1000, 0)!.zombie, true, 'zombie');
});

test('parseStat: a kernel thread has an empty cmdline and is not taken for an exiting process', () => {
  const k = parseStat(2, KTHREADD, Buffer.alloc(0), 0, 0)!;
  assert.equal(k.name, 'kthreadd');
  assert.equal(k.zombie, false);
});

test('parsePsOutput: state Z and macOS E (trying to exit) count as dead', () => {
  const row = (stat: string) => `  501   1   501   1234 ${stat} Thu Dec  3 21:00:01 2026 /bin/sh -c x`;
  const [live, exiting, zombie] = parsePsOutput([row('Ss'), row('SE'), row('Z')].join('\n'));
  assert.equal(live!.zombie, false);
  assert.equal(exiting!.zombie, true);
  assert.equal(zombie!.zombie, true);
});

test('parsePsOutput: lstart is UTC (as the reader asks ps for it), so the hour DST repeats is not misread', () => {
  // Local-time parsing would give the first 01:30 of that night, an hour before the second.
  const tz = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const [p] = parsePsOutput('  4242   100   501 204800 S    Sun Nov  1 01:30:00 2026 /usr/local/bin/claude -p');
    assert.equal(new Date(p!.startedAt).toISOString(), '2026-11-01T01:30:00.000Z');
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});
