import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandTail, type CommandNotice } from '../../src/sources/command-tail.js';
import { EVENT_MARKERS, lineTimestamp } from '../../src/events/parse.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../support/sim.js';

const dir = mkdtempSync(join(tmpdir(), 'hum-reaper-cmd-'));

/** A stand-in `journalctl` that records its argv, prints a few lines per run and exits. */
function fakeJournalctl(): { path: string; argvFile: string } {
  const path = join(dir, 'journalctl');
  const argvFile = join(dir, 'argv.txt');
  writeFileSync(
    path,
    `#!/bin/sh
printf '%s\\n' "$*" >> '${argvFile}'
n=$(wc -l < '${argvFile}')
for a in "$@"; do case "$a" in --cursor-file=*) echo "cursor-$n" > "\${a#--cursor-file=}";; esac; done
echo "2026-12-03T12:00:0\${n}.000000Z  WARN worker.cell.evict.lru evicted_sid=sid-run-$n"
echo "2026-12-03T12:00:0\${n}.000000Z TRACE worker.cell.reused sid=chatter"
printf 'partial line without newline'
exit 3
`,
  );
  chmodSync(path, 0o755);
  return { path, argvFile };
}

test('follows a command, restarts it with growing backoff, resumes from its cursor file', async () => {
  const { path, argvFile } = fakeJournalctl();
  // basename must be journalctl for the cursor/since arguments to be added.
  const cursorFile = join(dir, 'journal.cursor');
  const batches: string[][] = [];
  const notices: CommandNotice[] = [];
  const tail = new CommandTail({
    argv: [path, '--user', '-u', 'hum-claude-cli-worker', '-o', 'cat', '-f'],
    cursorFile,
    sinceMs: Date.UTC(2026, 11, 3, 11, 0, 0),
    markers: EVENT_MARKERS,
    onBatch: async (lines) => {
      batches.push(lines);
    },
    onNotice: (n) => notices.push(n),
    maxBackoffMs: 1000,
  });
  tail.start();
  try {
    assert.ok(await waitFor(() => notices.filter((n) => n.event === 'source.exited').length >= 3, 8000), 'restarted after each exit');
  } finally {
    await tail.stop();
  }
  const lines = batches.flat();
  assert.deepEqual(lines.slice(0, 3).map((l) => l.split('evicted_sid=')[1]), ['sid-run-1', 'sid-run-2', 'sid-run-3'], 'only marker lines, no partial line');
  assert.ok(!lines.some((l) => l.includes('chatter') || l.includes('partial')));
  const runs = readFileSync(argvFile, 'utf8').trim().split('\n');
  assert.match(runs[0]!, /--cursor-file=.*journal\.cursor --since=@\d+$/, 'first run: no cursor yet, so a start time');
  assert.ok(runs.slice(1).every((r) => r.includes('--cursor-file=') && !r.includes('--since')), 'later runs resume from the cursor alone');
  assert.ok(existsSync(cursorFile));
  const waits = notices.filter((n) => n.event === 'source.exited').map((n) => n.retryMs as number);
  assert.deepEqual(waits.slice(0, 3), [500, 1000, 1000], 'backoff doubles up to its cap');
  assert.equal(notices.find((n) => n.event === 'source.exited')?.code, 3);
});

test('a cursor left by an earlier run is not trusted at start; without a cursor, a restart resumes near the last line handled', async () => {
  // A journalctl that never writes its cursor file, as `-f` does on some systemd versions.
  const path = join(dir, 'journalctl');
  const argvFile = join(dir, 'argv-nocursor.txt');
  const lineAt = Date.now() - 2 * 3_600_000; // replaying old history when it died
  const line = `${new Date(lineAt).toISOString().replace('Z', '000Z')}  WARN worker.cell.evict.lru evicted_sid=sid-old`;
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvFile}'\necho '${line}'\nexit 3\n`);
  chmodSync(path, 0o755);
  const cursorFile = join(dir, 'stale.cursor');
  const sinceMs = Date.now() - 3 * 3_600_000;
  const runs = async (lineTime?: (line: string) => number) => {
    writeFileSync(argvFile, '');
    writeFileSync(cursorFile, 'cursor-from-an-earlier-run\n');
    const notices: CommandNotice[] = [];
    const tail = new CommandTail({ argv: [path, '-f'], cursorFile, sinceMs, onBatch: async () => undefined, onNotice: (n) => notices.push(n), maxBackoffMs: 200, ...(lineTime ? { lineTime } : {}) });
    tail.start();
    try {
      assert.ok(await waitFor(() => notices.filter((n) => n.event === 'source.exited').length >= 2, 5000));
    } finally {
      await tail.stop();
    }
    return readFileSync(argvFile, 'utf8').trim().split('\n').map((r) => Number(/--since=@(\d+)/.exec(r)?.[1]) * 1000);
  };
  const s = Math.floor(sinceMs / 1000) * 1000;
  const timed = await runs(lineTimestamp);
  assert.equal(timed[0], s, 'the first run reads the history, not the stale cursor');
  assert.equal(timed[1], Math.floor((lineAt - 60_000) / 1000) * 1000, 'the next resumes a minute before the last line handled (its own time, not when it was read)');
  assert.deepEqual((await runs()).slice(0, 2), [s, s], 'without line times, from the start again');
});

test('stop() during a retry wait: returns at once, and the batch is not offered again', async () => {
  let calls = 0;
  let afterStop = 0;
  let stopped = false;
  const tail = new CommandTail({
    argv: ['sh', '-c', 'echo only; exec sleep 5'],
    onBatch: async () => {
      calls++;
      if (stopped) afterStop++;
      throw new Error('always');
    },
  });
  tail.start();
  // The fifth try comes after waits of 0.25 + 0.5 + 1 + 2 s; the next wait is 4 s.
  assert.ok(await waitFor(() => calls >= 5, 10_000));
  const t0 = Date.now();
  stopped = true;
  await tail.stop();
  assert.ok(Date.now() - t0 < 2000, `stop() took ${Date.now() - t0} ms, not cut short`);
  await sleep(300);
  assert.equal(afterStop, 0);
});

test('a command that does not exist is reported, retried, never thrown', async () => {
  const notices: CommandNotice[] = [];
  const tail = new CommandTail({ argv: [join(dir, 'no-such-command')], onBatch: async () => undefined, onNotice: (n) => notices.push(n), maxBackoffMs: 200 });
  tail.start();
  try {
    assert.ok(await waitFor(() => notices.filter((n) => n.event === 'source.exited').length >= 2, 5000));
  } finally {
    await tail.stop();
  }
  assert.ok(notices.some((n) => n.event === 'source.error' && String(n.error).includes('ENOENT')));
});

test('a batch whose handling fails is offered again, not skipped', async () => {
  const seen: string[] = [];
  const notices: CommandNotice[] = [];
  let calls = 0;
  const tail = new CommandTail({
    argv: ['sh', '-c', 'echo first; sleep 0.3; echo second; exec sleep 5'],
    onBatch: async (lines) => {
      if (++calls === 1) throw new Error('disk full');
      seen.push(...lines);
    },
    onNotice: (n) => notices.push(n),
  });
  tail.start();
  try {
    assert.ok(await waitFor(() => seen.length >= 2, 5000), `got ${JSON.stringify(seen)}`);
  } finally {
    await tail.stop();
  }
  assert.deepEqual(seen, ['first', 'second']);
  assert.ok(notices.some((n) => n.event === 'source.error' && String(n.error).includes('disk full')));
});
