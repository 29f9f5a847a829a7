import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { EventCollector, type ParseCounts } from '../events/collect.js';
import { EVENT_MARKERS, lineTimestamp } from '../events/parse.js';
import type { WorkerEvent } from '../events/types.js';
import type { LogSource } from '../config/schema.js';
import { LineSplitter, type LineCounts } from './lines.js';
import { errnoCode } from '../errors.js';
import { openLog } from './open-log.js';

export interface LogRead {
  events: WorkerEvent[];
  /** False when the range could not be read whole: then no log evidence may be used. */
  complete: boolean;
  /** Where the log came from, for messages. */
  origin: string;
  warnings: string[];
  bytes: number;
  counts: ParseCounts & LineCounts;
}

const CHUNK = 1 << 20;
// Worker timestamps are not strictly ordered (concurrent tasks), so read a margin earlier.
const ORDER_SLACK_MS = 60_000;

/** Read the worker's lifecycle events written since `sinceMs` (epoch ms). */
export async function readLogSince(source: LogSource, sinceMs: number, opts: ReadOptions = {}): Promise<LogRead> {
  if (source.type === 'none') return emptyRead('(log disabled)', []);
  if (source.type === 'file') return readFileSince(source.path, sinceMs, opts);
  return readCommand(source.argv, sinceMs, opts);
}

export interface ReadOptions {
  /** Decode every line (to count what does not parse, as `doctor` does), not only lines with an event marker. */
  everyLine?: boolean;
}

const splitterFor = (opts: ReadOptions) => new LineSplitter(undefined, opts.everyLine ? [] : EVENT_MARKERS);

function emptyRead(origin: string, warnings: string[], complete = true): LogRead {
  return { events: [], complete, origin, warnings, bytes: 0, counts: { skipped: 0, ignored: 0, events: 0, lines: 0, oversize: 0 } };
}

export async function readFileSince(path: string, sinceMs: number, opts: ReadOptions = {}): Promise<LogRead> {
  let fh;
  try {
    fh = await openLog(path);
  } catch (err) {
    return emptyRead(path, [`worker log ${path}: cannot open (${errnoCode(err) ?? String(err)}); using only the log-free rules (superseded, unparented)`], false);
  }
  const collector = new EventCollector();
  const splitter = splitterFor(opts);
  const events: WorkerEvent[] = [];
  let bytes = 0;
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return emptyRead(path, [`worker log ${path}: not a regular file; using only the log-free rules (superseded, unparented)`], false);
    }
    // Read up to the size seen now, so a growing log gives a stable answer.
    const end = st.size;
    const start = await findStartOffset(fh, end, sinceMs - ORDER_SLACK_MS);
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = start;
    while (pos < end) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, end - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      bytes += bytesRead;
      splitter.push(buf.subarray(0, bytesRead), (line) => {
        const e = collector.take(line);
        if (e) events.push(e);
      });
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    return {
      ...emptyRead(path, [`worker log ${path}: read failed after ${bytes} bytes (${errnoCode(err) ?? String(err)}); using only the log-free rules (superseded, unparented)`], false),
      bytes,
    };
  }
  await fh.close();
  return { events, complete: true, origin: path, warnings: [], bytes, counts: { ...collector.counts, ...splitter.counts } };
}

/** Where in the file at `path` the lines logged since `sinceMs` begin (0 if unreadable). */
export async function startOffsetSince(path: string, sinceMs: number): Promise<number> {
  try {
    const fh = await openLog(path);
    try {
      const st = await fh.stat();
      return st.isFile() ? await findStartOffset(fh, st.size, sinceMs - ORDER_SLACK_MS) : 0;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}

/**
 * Walk back from the end a chunk at a time until a line older than the cutoff: only the
 * tail is read, however large the file (a 1 GB log costs one chunk per MB of recent log).
 */
async function findStartOffset(fh: import('node:fs/promises').FileHandle, size: number, cutoffMs: number): Promise<number> {
  if (!Number.isFinite(cutoffMs)) return 0;
  const buf = Buffer.allocUnsafe(CHUNK);
  let chunkStart = size;
  while (chunkStart > 0) {
    chunkStart = Math.max(0, chunkStart - CHUNK);
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - chunkStart), chunkStart);
    const chunk = buf.subarray(0, bytesRead);
    // First line that starts inside this chunk.
    let lineStart = chunkStart === 0 ? 0 : chunk.indexOf(10) + 1;
    while (lineStart > 0 || chunkStart === 0) {
      if (lineStart >= chunk.length) break;
      const nl = chunk.indexOf(10, lineStart);
      const head = chunk.subarray(lineStart, nl < 0 ? Math.min(chunk.length, lineStart + 512) : Math.min(nl, lineStart + 512));
      const at = lineTimestamp(head.toString('utf8'));
      if (!Number.isNaN(at)) {
        if (at < cutoffMs) return chunkStart + lineStart;
        break; // this chunk is newer than the cutoff: look further back
      }
      if (nl < 0) break;
      lineStart = nl + 1;
    }
  }
  return 0;
}

async function readCommand(argv: string[], sinceMs: number, opts: ReadOptions): Promise<LogRead> {
  const [cmd, ...args] = argv as [string, ...string[]];
  const origin = argv.join(' ');
  if (basename(cmd) === 'journalctl' && Number.isFinite(sinceMs)) {
    args.push(`--since=@${Math.floor((sinceMs - ORDER_SLACK_MS) / 1000)}`);
  }
  const collector = new EventCollector();
  const splitter = splitterFor(opts);
  const events: WorkerEvent[] = [];
  let bytes = 0;
  return new Promise<LogRead>((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      splitter.push(chunk, (line) => {
        const e = collector.take(line);
        if (e) events.push(e);
      });
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    const fail = (why: string) =>
      resolve({ ...emptyRead(origin, [`worker log command \`${origin}\`: ${why}; using only the log-free rules (superseded, unparented)`], false), bytes });
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(errnoCode(err) === 'ENOENT' ? `${cmd} not found` : String(err));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return fail(`exited with ${signal ?? code}${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`);
      resolve({ events, complete: true, origin, warnings: [], bytes, counts: { ...collector.counts, ...splitter.counts } });
    });
  });
}
