// Fault injection, hostile input: a property-based fuzzer over worker log lines. Whatever the
// bytes, the parser never throws and never yields a sid that was not in the line; a sid the
// worker really logs comes back exactly, in plain, ANSI and JSON form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventCollector } from '../../src/events/collect.js';
import { parseLogLine, stripAnsi, toWorkerEvent } from '../../src/events/parse.js';
import type { WorkerEvent } from '../../src/events/types.js';
import { LineSplitter } from '../../src/sources/lines.js';
import { report } from './support.js';

const RUNS = Number(process.env.FAULT_FUZZ_RUNS) || 1500;
const SEED = Number(process.env.FAULT_SEED) || undefined;
const params = (numRuns = RUNS) => ({ numRuns, ...(SEED ? { seed: SEED } : {}) });

// The SID rule of src/events/parse.ts, restated: no whitespace, no control characters, no U+FFFD, 1–256 units.
const SID_RULE = /^[^\s\x00-\x1f\x7f\ufffd]{1,256}$/;

// ---------------------------------------------------------------- the line under test

type Sided = Extract<WorkerEvent, { sid: string }>;
const hasSid = (e: WorkerEvent | null): e is Sided => e !== null && 'sid' in e;

/** Every string literal in the text that JSON can decode (a quoted value the parser may unquote). */
function decodedLiterals(text: string): string[] {
  const out: string[] = [];
  for (let open = text.indexOf('"'); open >= 0; open = text.indexOf('"', open + 1)) {
    for (let i = open + 1; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '"') {
        try {
          const s: unknown = JSON.parse(text.slice(open, i + 1));
          if (typeof s === 'string') out.push(s);
        } catch {
          /* not JSON: the parser keeps such a value verbatim */
        }
        break;
      }
    }
  }
  return out;
}

/** Was this sid in the line: verbatim once ANSI is stripped, or as a decoded string literal? */
function sidWasInLine(sid: string, raw: string): boolean {
  const line = stripAnsi(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  return line.includes(sid) || decodedLiterals(line).includes(sid);
}

interface Tally {
  lines: number;
  parsed: number;
  events: number;
  sids: number;
  fabricated: number;
}
const tally = (): Tally => ({ lines: 0, parsed: 0, events: 0, sids: 0, fabricated: 0 });

/** parseLogLine + toWorkerEvent + EventCollector on one line: no throw, no invented sid. */
function checkLine(raw: string, t: Tally): void {
  t.lines++;
  const parsed = parseLogLine(raw);
  const direct = parsed ? toWorkerEvent(parsed, 7) : null;
  const collected = new EventCollector().take(raw);
  if (parsed) t.parsed++;
  if (direct) t.events++;
  assert.deepEqual(collected === null ? null : { ...collected, seq: 7 }, direct, 'the collector agrees with parse + toWorkerEvent');
  if (!hasSid(direct)) return;
  t.sids++;
  assert.match(direct.sid, SID_RULE, `a sid breaking the SID rule: ${JSON.stringify(direct.sid)}`);
  if (!sidWasInLine(direct.sid, raw)) {
    t.fabricated++;
    assert.fail(`sid ${JSON.stringify(direct.sid)} is not in line ${JSON.stringify(raw.slice(0, 300))}`);
  }
}

/** The daemon's byte path: chunks → LineSplitter (64 KiB cap, UTF-8 decode) → each line checked. */
function checkBytes(chunks: Uint8Array[], t: Tally): void {
  const splitter = new LineSplitter();
  for (const c of chunks) splitter.push(Buffer.from(c), (line) => checkLine(line, t));
}

// ---------------------------------------------------------------- generators

const MESSAGES = [
  'worker.cell.evict.lru', 'worker.cell.idle.kill', 'spawned', 'worker.cell.spawned', 'worker.cell.reused',
  'worker.cell.exit', 'worker.mcp.bridge.up', 'worker.connecting', 'serve_worker: thrum dropped, reconnecting',
  'worker.result.error', 'spawned pid=Some(48213)', 'worker.cell.evict.lru evicted_sid=inline',
];
const KEYS = ['evicted_sid', 'sid', 'pid', 'mcp_url', 'age_ms', 'exit_code', 'err', 'subtype', 'detail', 'k.v', '_x'];
const LEVELS = ['TRACE', 'DEBUG', ' INFO', ' WARN', 'ERROR', 'warn', 'FATAL', ''];

const SHELL = [...'$;|&`\'"()<>*?![]{}~#\\=%/^,:@+'];
const UNICODE = ['é', 'ß', '日本', '🐝', '\u200b', '\u200f', 'e\u0301', 'ﬁ', '\u00a0', '\u3000', '\u2028', '\ufeff', '\ufffd', '\ud800', '\udc00'];
const CONTROL = ['\t', ' ', '\x00', '\x07', '\x7f', '\x1b', '\r', '\x0b'];

const sidChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abcxyz-_.0123456789'.split('')) },
  { weight: 3, arbitrary: fc.constantFrom(...SHELL) },
  { weight: 2, arbitrary: fc.constantFrom(...UNICODE) },
  { weight: 1, arbitrary: fc.constantFrom(...CONTROL) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);
/** Any sid-ish text: shell metacharacters, quotes, unicode, controls, empty. */
const anySid = fc.array(sidChar, { maxLength: 40 }).map((a) => a.join(''));
/** Sids the SID rule accepts: what the worker could really log. */
const ruleSid = anySid.filter((s) => SID_RULE.test(s));

const micros = fc.integer({ min: 0, max: 999_999 }).map((n) => String(n).padStart(6, '0'));
const timestamp = fc
  .tuple(fc.integer({ min: 0, max: 4_102_444_800_000 }), micros)
  .map(([ms, us]) => `${new Date(ms).toISOString().slice(0, 19)}.${us}Z`);
const looseTimestamp = fc.oneof(
  { weight: 4, arbitrary: timestamp },
  { weight: 1, arbitrary: fc.constantFrom('2026-13-45T25:61:61.000000Z', '2026-05-27T12:05:02Z', '2026-05-27T12:05:02.1234567891Z', '0000-00-00T00:00:00.0Z', '') },
);

const CSI = fc
  .tuple(fc.array(fc.constantFrom(...'0123456789;?:<'.split('')), { maxLength: 6 }), fc.array(fc.constantFrom(...' !"#$%&\'()*+,-./'.split('')), { maxLength: 2 }), fc.integer({ min: 0x40, max: 0x7e }))
  .map(([p, i, f]) => `\x1b[${p.join('')}${i.join('')}${String.fromCharCode(f)}`);
const ansiToken = fc.oneof(
  fc.constantFrom('\x1b[0m', '\x1b[2m', '\x1b[3m', '\x1b[33m', '\x1b[1;31m', '\x1b[', '\x1b', '\x1b]0;t\x07', '\x1b[38;5;208m', '\x1b[?25h', '\x1b\x1b[m'),
  CSI,
);

const value = fc.oneof(
  { weight: 4, arbitrary: anySid },
  { weight: 2, arbitrary: anySid.map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: anySid.map((s) => `"${s}`) },
  { weight: 1, arbitrary: fc.constantFrom('Some(48213)', 'Some(-1)', 'Some(99999999999)', 'None', 'http://127.0.0.1:53117', 'http://[::1]:0/', '"unterminated', '"a\\"b"', '"\\u0041"') },
);
const field = fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 6 })), value).map(([k, v]) => ` ${k}=${v}`);

const sidField = fc.tuple(fc.constantFrom('evicted_sid', 'sid'), value).map(([k, v]) => ` ${k}=${v}`);

/** A compact tracing line as the worker writes it, carrying hostile values. */
const wellFormedLine = fc
  .tuple(timestamp, fc.constantFrom('TRACE', 'DEBUG', ' INFO', ' WARN', 'ERROR'), fc.constantFrom(...MESSAGES), fc.array(fc.oneof(sidField, field), { maxLength: 4 }))
  .map(([ts, lvl, msg, fields]) => `${ts} ${lvl} ${msg}${fields.join('')}`);

/** A compact line bent out of shape: bad timestamps, levels, spacing, line ends. */
const bentLine = fc
  .tuple(looseTimestamp, fc.constantFrom(' ', '  ', '\t', ''), fc.constantFrom(...LEVELS), fc.constantFrom(' ', ''), fc.oneof(fc.constantFrom(...MESSAGES), fc.string({ maxLength: 20 })), fc.array(field, { maxLength: 5 }), fc.constantFrom('', '\r', ' ', '\r\r'))
  .map(([ts, sp, lvl, sp2, msg, fields, end]) => `${ts}${sp}${lvl}${sp2}${msg}${fields.join('')}${end}`);

const compactLine = fc.oneof({ weight: 3, arbitrary: wellFormedLine }, { weight: 1, arbitrary: bentLine });

/** ANSI sprinkled anywhere in a compact line: between tokens, inside keys, inside sids. */
const ansiSoup = fc
  .tuple(compactLine, fc.array(fc.tuple(fc.nat(), ansiToken), { maxLength: 8 }))
  .map(([line, inserts]) => {
    let s = line;
    for (const [at, tok] of inserts) {
      const i = s.length === 0 ? 0 : at % (s.length + 1);
      s = s.slice(0, i) + tok + s.slice(i);
    }
    return s;
  });

const jsonFieldValue = fc.oneof(anySid, fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(1e21, 1e400 as number, -0, 1.5, true, null));
const jsonRecord = fc.record({
  timestamp: fc.oneof(timestamp, fc.string({ maxLength: 10 }), fc.integer()),
  level: fc.constantFrom('WARN', 'warn', ' INFO ', 'TRACE', 'nope', ''),
  fields: fc.oneof(
    fc.record({ message: fc.constantFrom(...MESSAGES), evicted_sid: jsonFieldValue, sid: jsonFieldValue }, { requiredKeys: ['message'] }),
    fc.jsonValue({ maxDepth: 2 }),
  ),
});
/** JSON text a formatter could write that JSON.stringify would not: escapes in strings, exponents, spaces. */
const rawJsonLine = (values: string[]) =>
  fc
    .tuple(timestamp, fc.constantFrom('evicted_sid', 'sid'), fc.constantFrom(...values), fc.constantFrom('worker.cell.evict.lru', 'worker.cell.idle.kill'))
    .map(([ts, key, v, msg]) => `{"timestamp":"${ts}","level":"WARN","fields":{"message":"${msg}","${key}":${v}}}`);
const RAW_STRINGS = ['"\\u0062ee-1"', '"bee\\/1"', '"\\"q\\""', 'true', 'null', '12'];
/** Non-string sid values whose JSON.stringify differs from the line's text. */
const RAW_NON_STRINGS = ['1E3', '-0.0', '1e400', '0.1e1', '{ "s": "bee-1" }', '[ 1, 2 ]', '{"s":"\\u0062"}'];

/** JSON-per-line records, whole, cut short at any byte, or with junk around them. */
const jsonLine = fc.oneof(
  rawJsonLine(RAW_STRINGS),
  jsonRecord.map((r) => JSON.stringify(r)),
  fc.tuple(jsonRecord, fc.nat()).map(([r, n]) => {
    const s = JSON.stringify(r);
    return s.slice(0, n % (s.length + 1));
  }),
  fc.tuple(jsonRecord, fc.string({ maxLength: 8 })).map(([r, junk]) => `${JSON.stringify(r)}${junk}`),
  fc.tuple(jsonRecord, ansiToken).map(([r, a]) => `${a}${JSON.stringify(r)}`),
);

// ---------------------------------------------------------------- properties

test('fuzz: random strings, ANSI soup, compact and JSON lines never throw and never invent a sid', (t) => {
  const n = tally();
  fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), compactLine, ansiSoup, jsonLine), (line) => checkLine(line, n)), params(RUNS * 4));
  report(t, { events: n.events, kills: 0, wrongKills: 0, misses: n.fabricated, lines: n.lines, parsed: n.parsed, sids: n.sids });
  assert.ok(n.sids > RUNS / 20, `the generators reach the sid paths (${n.sids} sids)`);
});

test('fuzz: random bytes through the line splitter (UTF-8 decode, 64 KiB cap) never throw and never invent a sid', (t) => {
  const n = tally();
  const bytesOfLine = fc.oneof(compactLine, ansiSoup, jsonLine).map((l) => Buffer.from(`${l}\n`));
  const chunk = fc.oneof(fc.uint8Array({ maxLength: 300 }), bytesOfLine.map((b) => new Uint8Array(b)));
  fc.assert(fc.property(fc.array(chunk, { maxLength: 8 }), (chunks) => checkBytes(chunks, n)), params());
  report(t, { events: n.events, kills: 0, wrongKills: 0, misses: n.fabricated, lines: n.lines, parsed: n.parsed, sids: n.sids });
});

test('fuzz: huge lines (70 KiB – 1 MiB) parse in bounded time and never invent a sid', (t) => {
  const n = tally();
  let slowestMs = 0;
  let slowestPer64KiB = 0;
  const piece = fc.oneof(ansiToken, field, fc.constantFrom(' a="', ' a="\\', '\\', '"', ' x=', '\x1b[', '=', ' '));
  const huge = fc
    .tuple(compactLine, fc.array(piece, { minLength: 1, maxLength: 6 }), fc.integer({ min: 70 * 1024, max: 1024 * 1024 }))
    .map(([head, parts, size]) => {
      // One line: a newline from a generated sid would make it several.
      const unit = parts.join('').replace(/\n/g, ' ') || ' ';
      return `${head}${unit.repeat(Math.ceil(size / unit.length))}`;
    });
  fc.assert(
    fc.property(huge, (line) => {
      const t0 = performance.now();
      checkLine(line, n);
      const ms = performance.now() - t0;
      slowestMs = Math.max(slowestMs, ms);
      slowestPer64KiB = Math.max(slowestPer64KiB, ms / (line.length / 65536));
      // Through the daemon's splitter a line over the cap is dropped, never buffered.
      const splitter = new LineSplitter();
      let delivered = 0;
      splitter.push(Buffer.from(`${line}\n`), () => delivered++);
      assert.equal(delivered, Buffer.byteLength(line) > 64 * 1024 ? 0 : 1);
    }),
    params(40),
  );
  // The worst known shape, ` a="\` repeated (every value a quote that does not close), at the 64 KiB cap.
  const worst = `2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=x${' a="\\'.repeat(65536 / 5)}`;
  const t0 = performance.now();
  checkLine(worst, n);
  const worstMs = performance.now() - t0;
  report(t, { events: n.events, kills: 0, wrongKills: 0, misses: n.fabricated, lines: n.lines, slowestMs: Math.round(slowestMs), slowestMsPer64KiB: Math.round(slowestPer64KiB), worst64KiBLineMs: Math.round(worstMs) });
  // A bound that catches a quadratic parse (minutes for 1 MiB), not a speed target: a CI
  // machine under load has run this over 10× slower than an idle one.
  assert.ok(slowestMs < 10_000, `slowest huge line took ${Math.round(slowestMs)} ms`);
  assert.ok(worstMs < 500, `a worst-case 64 KiB line took ${Math.round(worstMs)} ms`);
});

// Round trip: the forms the worker really writes (shared/upstream-worker.md).
const FORMS: Record<string, (sid: string, ts: string) => string> = {
  plain: (sid, ts) => `${ts}  WARN worker.cell.evict.lru evicted_sid=${sid}`,
  ansi: (sid, ts) => `\x1b[2m${ts}\x1b[0m \x1b[33m WARN\x1b[0m worker.cell.evict.lru \x1b[3mevicted_sid\x1b[0m\x1b[2m=\x1b[0m${sid}`,
  json: (sid, ts) => JSON.stringify({ timestamp: ts, level: 'WARN', fields: { message: 'worker.cell.evict.lru', evicted_sid: sid } }),
  'plain idle.kill': (sid, ts) => `${ts}  WARN worker.cell.idle.kill sid=${sid} age_ms=300412`,
  'ansi idle.kill': (sid, ts) => `\x1b[2m${ts}\x1b[0m \x1b[33m WARN\x1b[0m worker.cell.idle.kill \x1b[3msid\x1b[0m\x1b[2m=\x1b[0m${sid} \x1b[3mage_ms\x1b[0m\x1b[2m=\x1b[0m300412`,
};

/** Every form, as a string and as bytes through the splitter, must give exactly this sid. */
function roundTrip(sid: string, ts: string): string[] {
  const wrong: string[] = [];
  for (const [name, form] of Object.entries(FORMS)) {
    const line = form(sid, ts);
    const want = name.includes('idle') ? 'idle-killed' : 'evicted';
    const got = new EventCollector().take(line);
    if (got?.kind !== want || !hasSid(got) || got.sid !== sid) wrong.push(`${name}: ${JSON.stringify(got && hasSid(got) ? got.sid : got)}`);
    const viaBytes: (WorkerEvent | null)[] = [];
    const c = new EventCollector();
    new LineSplitter().push(Buffer.from(`${line}\r\n`), (l) => viaBytes.push(c.take(l)));
    const b = viaBytes[0];
    if (viaBytes.length !== 1 || !hasSid(b ?? null) || (b as Sided).sid !== sid) wrong.push(`${name} (bytes, CRLF): ${JSON.stringify(b)}`);
  }
  return wrong;
}

test('round trip: a sid the SID rule accepts comes back exactly in every form', (t) => {
  let checked = 0;
  fc.assert(
    fc.property(ruleSid.filter((s) => !/[\ud800-\udfff]/.test(s)), timestamp, (sid, ts) => {
      checked++;
      assert.deepEqual(roundTrip(sid, ts), [], `sid ${JSON.stringify(sid)}`);
    }),
    params(RUNS),
  );
  report(t, { events: checked * Object.keys(FORMS).length * 2, kills: 0, wrongKills: 0, misses: 0, sids: checked });
});

const sampleSeed = SEED ? { seed: SEED } : {};

test('round trip: a sid opening with a quote comes back exactly in every form', (t) => {
  const sids = ['"a"b', '""', '"bee-1"x', ...fc.sample(ruleSid.map((s) => `"${s}`).filter((s) => SID_RULE.test(s) && !/[\ud800-\udfff]/.test(s)), { numRuns: 200, ...sampleSeed })];
  const wrong = sids.map((sid) => ({ sid, wrong: roundTrip(sid, '2026-05-27T12:06:18.902114Z') })).filter((r) => r.wrong.length > 0);
  // A different sid is worse than none: it names another cell.
  const otherSid = wrong.filter((r) => r.wrong.some((w) => !w.endsWith('null'))).length;
  report(t, { events: sids.length, kills: 0, wrongKills: 0, misses: wrong.length, otherSid, example: wrong[0] ? `${JSON.stringify(wrong[0].sid)} → ${wrong[0].wrong[0]}` : '' });
  assert.deepEqual(wrong, []);
});

// tracing's JSON formatter writes a sid as a string. Any other value must give no sid: before
// a49cdc7 parseJsonLine re-serialised it (`"evicted_sid":1E3` gave sid `1000`).
test('fuzz: a JSON sid field that is not a string never yields a sid the line does not hold', (t) => {
  const n = tally();
  const invented: string[] = [];
  for (const line of fc.sample(rawJsonLine(RAW_NON_STRINGS), { numRuns: 200, ...sampleSeed })) {
    try {
      checkLine(line, n);
    } catch {
      invented.push(line);
    }
  }
  report(t, { events: n.events, kills: 0, wrongKills: 0, misses: invented.length, sids: n.sids, example: invented[0] ?? '' });
  assert.deepEqual(invented, []);
});

test('round trip: sids with a lone surrogate (only reachable from a JS string, never from bytes)', (t) => {
  // From bytes a lone surrogate cannot occur (invalid UTF-8 decodes to U+FFFD, refused).
  // From a string the rule accepts it; the string forms must still round-trip.
  const sid = 'bee-\ud800-1';
  const ts = '2026-05-27T12:06:18.902114Z';
  for (const name of ['plain', 'ansi', 'json'] as const) {
    const got = new EventCollector().take(FORMS[name]!(sid, ts));
    assert.equal(got && hasSid(got) ? got.sid : null, sid, name);
  }
  report(t, { events: 3, kills: 0, wrongKills: 0, misses: 0 });
});
