import { execFile } from 'node:child_process';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import type { ProcessInfo, ProcessReader, ProcessSnapshot } from './types.js';

const run = promisify(execFile);
const FIELDS = 'pid=,ppid=,uid=,rss=,state=,lstart=,args=';

/**
 * macOS (and any other Unix): BSD/procps `ps`. argv arrives space-joined, so it is split on
 * whitespace; the hum signature (compact JSON, flags) survives that. lstart is to the second,
 * and printed in UTC: local time repeats an hour when DST ends, which would age a process by 1 h.
 */
export class PsProcessReader implements ProcessReader {
  readonly startPrecisionMs = 1000;

  async snapshot(): Promise<ProcessSnapshot> {
    const takenAt = Date.now();
    const out = await this.ps(['-axww', '-o', FIELDS]);
    return { processes: parsePsOutput(out ?? ''), takenAt, startPrecisionMs: this.startPrecisionMs };
  }

  async read(pid: number): Promise<ProcessInfo | null> {
    const out = await this.ps(['-ww', '-o', FIELDS, '-p', String(pid)]);
    return parsePsOutput(out ?? '').find((p) => p.pid === pid) ?? null;
  }

  /** `pgrep -P`: one small process, not a whole `ps` listing, on the hot path. */
  async children(pid: number): Promise<number[]> {
    try {
      const { stdout } = await run('pgrep', ['-P', String(pid)]);
      return stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
    } catch (err) {
      // pgrep exits 1 when there is no child; without pgrep, fall back to a listing.
      if ((err as { code?: unknown }).code === 1) return [];
      const snap = await this.snapshot();
      return snap.processes.filter((p) => p.ppid === pid).map((p) => p.pid);
    }
  }

  private async ps(args: string[]): Promise<string | null> {
    try {
      const { stdout } = await run('ps', args, { env: { ...process.env, LC_ALL: 'C', TZ: 'UTC0' }, maxBuffer: 256 << 20 });
      return stdout;
    } catch (err) {
      // `ps -p` exits 1 when the pid is gone; anything else is a real failure.
      if ((err as { code?: unknown }).code === 1) return (err as { stdout?: string }).stdout ?? '';
      throw err;
    }
  }
}

// `  123   1   501  20480 S    Thu Dec  3 18:20:07 2026 /path/claude -p …`
const LINE = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) ?(.*)$/;

/** Output of `ps -o FIELDS` run with LC_ALL=C and TZ=UTC0, as PsProcessReader runs it. */
export function parsePsOutput(out: string): ProcessInfo[] {
  const procs: ProcessInfo[] = [];
  for (const line of out.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const argv = m[7]!.trim() ? m[7]!.trim().split(/\s+/) : [];
    const startedAt = Date.parse(`${m[6]!.replace(/\s+/g, ' ')} UTC`);
    procs.push({
      pid: Number(m[1]),
      ppid: Number(m[2]),
      uid: Number(m[3]),
      rssBytes: Number(m[4]) * 1024,
      // macOS marks a process that is exiting with E among the state letters.
      zombie: m[5]!.startsWith('Z') || m[5]!.includes('E'),
      startKey: m[6]!,
      startedAt,
      name: basename(argv[0] ?? ''),
      argv,
    });
  }
  return procs;
}
