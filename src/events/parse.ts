import type { LogLine, WorkerEvent } from './types.js';

// SGR and other CSI sequences tracing writes when colour is on.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;
// RFC 3339 UTC with up to nanoseconds: (whole second)(fraction). One pattern for every form.
const TS = String.raw`(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?Z`;
const COMPACT = new RegExp(String.raw`^${TS}\s+(TRACE|DEBUG|INFO|WARN|ERROR) (.*)$`);
const JSON_TS_VALUE = new RegExp(`^${TS}$`);
const JSON_TIMESTAMP = new RegExp(String.raw`"timestamp"\s*:\s*"${TS}"`);
// A field starts at a space followed by `key=`; tracing keys are Rust identifiers.
const FIELD_START = / ([A-Za-z_][A-Za-z0-9_.]*)=/g;
const LEVELS = new Set(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']);

/**
 * Byte strings every line we act on contains (plain, ANSI or JSON). A reader may pass over
 * lines with none of them undecoded (LineSplitter markers): that is most of a trace log.
 */
export const EVENT_MARKERS = ['evict.lru', 'idle.kill', 'spawned pid', 'bridge.up', 'connecting'] as const;

export const stripAnsi = (s: string): string => (s.includes('\x1b') ? s.replace(ANSI, '') : s);

/** RFC 3339 UTC timestamp → epoch ms, keeping microseconds as the fraction. */
export function parseTimestamp(date: string, fraction = ''): number {
  // Consecutive lines share their second: Date.parse once per second, not once per line.
  if (date !== lastDate) {
    lastDate = date;
    lastWhole = Date.parse(`${date}Z`);
  }
  if (Number.isNaN(lastWhole)) return NaN;
  const frac = fraction ? Number(`0${fraction}`) * 1000 : 0;
  return lastWhole + frac;
}
let lastDate = '';
let lastWhole = NaN;

/**
 * The timestamp of a line, from its first bytes alone (a JSON line cut short does not
 * parse, but its timestamp can still be read); NaN when it has none.
 */
export function lineTimestamp(head: string): number {
  const line = stripAnsi(head);
  const m = line.startsWith('{') ? JSON_TIMESTAMP.exec(line) : COMPACT.exec(line);
  return m ? parseTimestamp(m[1]!, m[2]) : NaN;
}

/** Parse one line (no trailing newline) of compact or JSON `tracing` output; null if it is neither. */
export function parseLogLine(text: string): LogLine | null {
  const line = stripAnsi(text.endsWith('\r') ? text.slice(0, -1) : text);
  if (line.startsWith('{')) return parseJsonLine(line);
  const m = COMPACT.exec(line);
  if (!m) return null;
  const at = parseTimestamp(m[1]!, m[2]);
  if (Number.isNaN(at)) return null;
  const { message, fields, raw } = splitFields(m[4]!);
  return { at, level: m[3] as LogLine['level'], message, fields, raw };
}

function splitFields(rest: string): { message: string; fields: Record<string, string>; raw: Record<string, string> } {
  const starts: { key: string; at: number; valueAt: number }[] = [];
  const text = ` ${rest}`;
  // exec, not matchAll: matchAll clones the regex on every call (parsing 1M event lines: 1.6 → 1.35 s).
  FIELD_START.lastIndex = 0;
  for (let m = FIELD_START.exec(text); m; m = FIELD_START.exec(text)) {
    starts.push({ key: m[1]!, at: m.index, valueAt: m.index + m[0].length });
  }
  // A value that opens a quote runs to its closing quote, even across ` key=` look-alikes.
  const fields: Record<string, string> = {};
  const raw: Record<string, string> = {};
  const message = (starts.length ? text.slice(0, starts[0]!.at) : text).trim();
  let i = 0;
  while (i < starts.length) {
    const s = starts[i]!;
    let end = i + 1 < starts.length ? starts[i + 1]!.at : text.length;
    let next = i + 1;
    if (text[s.valueAt] === '"') {
      const close = closingQuote(text, s.valueAt);
      // Quoted (Debug) only when the quote closes the value; `"a"b` is a bare Display value.
      if (close > 0 && (close + 1 === text.length || text[close + 1] === ' ')) {
        end = close + 1;
        while (next < starts.length && starts[next]!.at < end) next++;
      }
    }
    const value = text.slice(s.valueAt, end);
    raw[s.key] = value;
    fields[s.key] = unquote(value);
    i = next;
  }
  return { message, fields, raw };
}

function closingQuote(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    // An escaped last quote closes nothing: no JSON.parse (a throw per field is slow on junk).
    if (escapedAt(value, value.length - 1)) return value.slice(1, -1);
    try {
      const s: unknown = JSON.parse(value);
      if (typeof s === 'string') return s;
    } catch {
      // Rust Debug escapes are close to JSON's, not identical; keep the inner text.
    }
    return value.slice(1, -1);
  }
  return value;
}

/** Whether the character at i is preceded by an odd number of backslashes. */
function escapedAt(text: string, i: number): boolean {
  let n = 0;
  while (i - n - 1 >= 0 && text[i - n - 1] === '\\') n++;
  return n % 2 === 1;
}

function parseJsonLine(line: string): LogLine | null {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof obj !== 'object' || obj === null) return null;
  const rec = obj as Record<string, unknown>;
  const ts = typeof rec.timestamp === 'string' ? JSON_TS_VALUE.exec(rec.timestamp) : null;
  const level = typeof rec.level === 'string' ? rec.level.trim().toUpperCase() : '';
  const rawFields = rec.fields;
  if (!ts || !LEVELS.has(level) || typeof rawFields !== 'object' || rawFields === null) return null;
  const fields: Record<string, string> = {};
  let message = '';
  for (const [k, v] of Object.entries(rawFields as Record<string, unknown>)) {
    // Only strings: re-serialising a number or object would invent text the line never held.
    if (typeof v !== 'string') continue;
    if (k === 'message') message = v;
    else fields[k] = v;
  }
  const at = parseTimestamp(ts[1]!, ts[2]);
  if (Number.isNaN(at)) return null;
  // `spawned pid=Some(N)` arrives in JSON as message "spawned pid=Some(N)" too.
  const inline = splitFields(message);
  return { at, level: level as LogLine['level'], message: inline.message, fields: { ...inline.fields, ...fields } };
}

// A sid is what hum puts in a URL path segment: no whitespace, no control characters, and
// no U+FFFD (what invalid UTF-8 decodes to: such a sid was never in the line).
const SID = /^[^\s\x00-\x1f\x7f\ufffd]{1,256}$/;
const sidOf = (v: string | undefined): string | null => (v !== undefined && SID.test(v) ? v : null);

/** Map a parsed line to the lifecycle event it announces, or null if it announces none. */
export function toWorkerEvent(line: LogLine, seq: number): WorkerEvent | null {
  const { at, fields } = line;
  // The worker writes sids with Display: bare, so a quote in one is part of the sid.
  const sidField = (key: 'sid' | 'evicted_sid') => (line.raw ? line.raw[key] : fields[key]);
  switch (line.message) {
    case 'worker.cell.evict.lru': {
      const sid = sidOf(sidField('evicted_sid'));
      return sid ? { kind: 'evicted', sid, at, seq } : null;
    }
    case 'worker.cell.idle.kill': {
      const sid = sidOf(sidField('sid'));
      return sid ? { kind: 'idle-killed', sid, at, seq } : null;
    }
    case 'spawned': {
      const m = /^Some\((\d{1,10})\)$/.exec(fields.pid ?? '');
      const pid = m ? Number(m[1]) : NaN;
      return pid > 0 && pid <= 0x7fffffff ? { kind: 'spawned-pid', pid, at, seq } : null;
    }
    case 'worker.cell.spawned':
    case 'worker.cell.reused':
    case 'worker.cell.exit': {
      const sid = sidOf(sidField('sid'));
      if (!sid) return null;
      const kind = line.message === 'worker.cell.spawned' ? 'cell-spawned' : line.message === 'worker.cell.reused' ? 'cell-reused' : 'cell-exit';
      return { kind, sid, at, seq };
    }
    case 'worker.mcp.bridge.up': {
      const m = /^https?:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})\/?$/.exec(fields.mcp_url ?? '');
      const port = m ? Number(m[1]) : NaN;
      return port >= 1 && port <= 65535 ? { kind: 'bridge-up', port, at, seq } : null;
    }
    case 'worker.connecting':
      return { kind: 'connecting', at, seq };
    default:
      if (line.message.startsWith('serve_worker:') && line.message.includes('reconnecting')) {
        return { kind: 'reconnecting', at, seq };
      }
      return null;
  }
}
