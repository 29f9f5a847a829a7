// A trace-level worker log, generated: the lifecycle lines exactly as hum's claude-cli-worker
// 0.31.x writes them (../../shared/upstream-worker.md, test/sim/worker.mjs), between the
// per-message TRACE chatter a busy worker produces. The chatter's message names are
// *inferred* (not taken from upstream); only its volume and shape matter here: most of a
// trace log is lines the reaper must read and throw away.
import { closeSync, openSync, writeSync } from 'node:fs';
import { seededRandom } from '../../test/support/random.js';

const LEVEL_COLOR = { TRACE: 35, DEBUG: 34, INFO: 32, WARN: 33, ERROR: 31 } as const;
type Level = keyof typeof LEVEL_COLOR;

export interface TraceLogOptions {
  /** sids are `${sidPrefix}bee-<n>` */
  sidPrefix?: string;
  bees?: number;
  /** Cell table size (8 upstream). */
  table?: number;
  /** Epoch ms of the first line. */
  startMs?: number;
  /** ANSI colour, as the launchd log file holds it (default true). */
  color?: boolean;
  seed?: number;
  /** First pid handed out in `spawned pid=Some(N)` lines. */
  firstPid?: number;
}

/** Counts of what was generated, by message. */
export type LineCounts = Record<string, number>;

/**
 * Emits the log of a simulated worker: prompts to random bees (reuse, or evict the LRU cell
 * and spawn), each followed by a burst of stream TRACE lines; now and then an idle kill, a
 * result error, a child exit, a long stderr line, a reconnect.
 */
export class TraceLogGenerator {
  readonly counts: LineCounts = {};
  private readonly prefix: string;
  private readonly bees: number;
  private readonly table: number;
  private readonly color: boolean;
  private us: number;
  private rand: () => number;
  private cells: string[] = [];
  private pid: number;
  private port = 36719;
  private readonly hid = 'wbee_7f3a';

  constructor(o: TraceLogOptions = {}) {
    this.prefix = o.sidPrefix ?? 'sid-daman-';
    this.bees = o.bees ?? 30;
    this.table = o.table ?? 8;
    this.color = o.color ?? true;
    this.us = Math.round((o.startMs ?? Date.now() - 86_400_000) * 1000);
    this.rand = seededRandom(o.seed ?? 0x5eed);
    this.pid = o.firstPid ?? 40_000;
  }

  /** Append at least `bytes` bytes of whole lines to `path`; returns the bytes written. */
  writeFile(path: string, bytes: number): number {
    const fd = openSync(path, 'a');
    let written = 0;
    try {
      while (written < bytes) {
        const chunk = Buffer.from(this.text(4 << 20));
        for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done);
        written += chunk.length;
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  /** About `bytes` of whole lines, each ending in a newline. */
  text(bytes: number): string {
    const out: string[] = [];
    let size = 0;
    while (size < bytes) {
      for (const line of this.step()) {
        out.push(line);
        size += line.length + 1;
      }
    }
    out.push('');
    return out.join('\n');
  }

  /** The lines of one step of the worker's life. */
  step(): string[] {
    const r = this.rand();
    if (r < 0.0005) return this.reconnect();
    if (r < 0.002 && this.cells.length > 0) return [this.idleKill()];
    if (r < 0.004 && this.cells.length > 0) return this.exit();
    if (r < 0.006 && this.cells.length > 0) return [this.line('WARN', 'worker.result.error', [['sid', this.anyCell()], ['subtype', '"error_during_execution"'], ['detail', '"Credit balance is too low"']])];
    if (r < 0.008) return [this.longStderr()];
    return this.prompt();
  }

  private prompt(): string[] {
    const sid = `${this.prefix}bee-${1 + Math.floor(this.rand() * this.bees)}`;
    const lines: string[] = [];
    const at = this.cells.indexOf(sid);
    if (at >= 0) {
      this.cells.splice(at, 1);
      lines.push(this.line('TRACE', 'worker.cell.reused', [['sid', sid]]));
    } else {
      if (this.cells.length >= this.table) lines.push(this.line('WARN', 'worker.cell.evict.lru', [['evicted_sid', this.cells.shift()!]]));
      lines.push(this.line('TRACE', `spawned pid=Some(${this.pid++})`));
      lines.push(this.line('TRACE', 'worker.cell.spawned', [['sid', sid]]));
    }
    this.cells.push(sid);
    // The answer streams back: a few TRACE lines per message chunk (inferred names).
    lines.push(this.line('DEBUG', 'worker.dispatch.prompt', [['sid', sid], ['bytes', String(200 + Math.floor(this.rand() * 4000))]]));
    const chunks = 4 + Math.floor(this.rand() * 12);
    for (let i = 0; i < chunks; i++) {
      lines.push(this.line('TRACE', 'worker.stdout.event', [['sid', sid], ['type', '"stream_event"'], ['bytes', String(80 + Math.floor(this.rand() * 900))]]));
    }
    lines.push(this.line('TRACE', 'worker.stdout.event', [['sid', sid], ['type', '"result"'], ['subtype', '"success"'], ['duration_ms', String(Math.floor(this.rand() * 90_000))]]));
    return lines;
  }

  private idleKill(): string {
    const sid = this.cells.shift()!;
    return this.line('WARN', 'worker.cell.idle.kill', [['sid', sid], ['age_ms', String(300_000 + Math.floor(this.rand() * 1000))]]);
  }

  private exit(): string[] {
    const sid = this.cells.splice(Math.floor(this.rand() * this.cells.length), 1)[0]!;
    return [this.line('TRACE', 'worker.cell.exit', [['sid', sid], ['exit_code', '0']]), this.line('TRACE', 'worker.dispatch.exit', [['sid', sid]])];
  }

  private longStderr(): string {
    const n = 1000 + Math.floor(this.rand() * 6000);
    return this.line('TRACE', `stderr: {"type":"debug","message":"${'x'.repeat(n)}"}`);
  }

  private reconnect(): string[] {
    this.cells = [];
    this.port = 30_000 + Math.floor(this.rand() * 30_000);
    return [
      this.line('INFO', 'serve_worker: thrum dropped, reconnecting', [['err', 'connection reset by peer (os error 54)']]),
      this.line('INFO', 'worker.connecting', [['socket', '/tmp/hum/thrum.sock'], ['hive', 'claude-cli']]),
      this.line('INFO', 'worker.hello.sent', [['hive', 'claude-cli'], ['hid', this.hid], ['models', '"claude-opus-4-7"']]),
      this.line('INFO', 'worker.mcp.bridge.up', [['mcp_url', `http://127.0.0.1:${this.port}`]]),
    ];
  }

  private anyCell(): string {
    return this.cells[Math.floor(this.rand() * this.cells.length)]!;
  }

  /** One line in tracing's compact format (no newline). */
  line(level: Level, message: string, fields: [string, string][] = []): string {
    this.us += 20 + Math.floor(this.rand() * 2000);
    const key = message.startsWith('spawned') ? 'spawned' : message.startsWith('stderr') ? 'stderr' : message;
    this.counts[key] = (this.counts[key] ?? 0) + 1;
    return formatLine(this.us, level, message, fields, this.color);
  }
}

/** tracing's compact format: `<RFC 3339 µs>Z <LEVEL> <message> key=value …`, ANSI optional. */
export function formatLine(us: number, level: Level, message: string, fields: readonly [string, string][] = [], color = true): string {
  const ts = timestamp(us);
  const lvl = level.padStart(5);
  if (!color) return `${ts} ${lvl} ${message}${fields.map(([k, v]) => ` ${k}=${v}`).join('')}`;
  let line = `\x1b[2m${ts}\x1b[0m \x1b[${LEVEL_COLOR[level]}m${lvl}\x1b[0m ${message}`;
  for (const [k, v] of fields) line += ` \x1b[3m${k}\x1b[0m\x1b[2m=\x1b[0m${v}`;
  return line;
}

let cachedSecond = NaN;
let cachedPrefix = '';
/** RFC 3339 UTC with microseconds, from epoch µs (exact in a double until the year 2255). */
export function timestamp(us: number): string {
  const second = Math.floor(us / 1e6);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${cachedPrefix}.${String(us - second * 1e6).padStart(6, '0')}Z`;
}

