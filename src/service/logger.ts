import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';

export type { Logger };

/**
 * Our own logs: one pino JSON line per event, the stable event name in `event`. On a TTY
 * the same events are shown as `time event key=value …` for a person to read.
 */
export function createLogger(opts: { level?: string; destination?: NodeJS.WritableStream; pretty?: boolean } = {}): Logger {
  const out = opts.destination ?? process.stdout;
  const pretty = opts.pretty ?? (out === process.stdout && process.stdout.isTTY === true);
  const base = { level: opts.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return pretty ? pino(base, prettyStream(out)) : pino(base, out as NodeJS.WritableStream & { write: (s: string) => boolean });
}

function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        try {
          const { time, event, level, pid: _pid, hostname: _h, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
          const lvl = typeof level === 'number' && level >= 50 ? 'ERROR ' : typeof level === 'number' && level >= 40 ? 'WARN ' : '';
          const kv = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
          out.write(`${String(time).slice(11, 23)} ${lvl}${String(event ?? msg ?? '')} ${kv.join(' ')}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}
