import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { ProcessInfo, ProcessReader, ProcessSnapshot } from './types.js';

// USER_HZ is 100 on every Linux ABI Node runs on.
const TICK_MS = 10;
const PAGE_BYTES = 4096;
const EMPTY = Buffer.alloc(0);
/** Pids read between two yields to the event loop during a snapshot (~2 ms of work). */
const SLICE = 64;

/** Reads /proc directly: exact argv (NUL-separated) and a tick-precise start time. */
export class LinuxProcessReader implements ProcessReader {
  readonly startPrecisionMs = TICK_MS * 3;
  private bootMs = 0;

  constructor(private readonly procRoot = '/proc') {}

  /**
   * Synchronous reads in slices of SLICE pids, yielding to the event loop between slices:
   * thousands of async reads would fill libuv's four-thread pool, and the log tail's own
   * reads (the hot path) would queue behind them for the whole sweep.
   */
  async snapshot(): Promise<ProcessSnapshot> {
    this.refreshBootTime();
    // The listing's moment: a process started later may be missing, one started before is not.
    const takenAt = Date.now();
    const pids = readdirSync(this.procRoot).filter((n) => /^\d+$/.test(n)).map(Number);
    const processes: ProcessInfo[] = [];
    for (let i = 0; i < pids.length; i += SLICE) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      for (const pid of pids.slice(i, i + SLICE)) {
        const p = this.readSync(pid);
        if (p) processes.push(p);
      }
    }
    return { processes, takenAt, startPrecisionMs: this.startPrecisionMs };
  }

  /** One read per pid (cmdline); the full read only for those whose argv holds `token`. */
  async withArgv(token: string): Promise<ProcessSnapshot> {
    this.refreshBootTime();
    const takenAt = Date.now();
    const needle = Buffer.from(token);
    const pids = readdirSync(this.procRoot).filter((n) => /^\d+$/.test(n)).map(Number);
    const processes: ProcessInfo[] = [];
    for (let i = 0; i < pids.length; i += SLICE * 4) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      for (const pid of pids.slice(i, i + SLICE * 4)) {
        let cmdline: Buffer;
        try {
          cmdline = readFileSync(`${this.procRoot}/${pid}/cmdline`);
        } catch {
          continue;
        }
        if (cmdline.indexOf(needle) < 0) continue;
        const p = this.readSync(pid);
        if (p) processes.push(p);
      }
    }
    return { processes, takenAt, startPrecisionMs: this.startPrecisionMs };
  }

  // One pid: synchronous reads. /proc answers from kernel memory in microseconds, and the
  // hot path must not queue behind other work in libuv's four-thread pool.
  async read(pid: number): Promise<ProcessInfo | null> {
    if (this.bootMs === 0) this.refreshBootTime();
    return this.readSync(pid);
  }

  private readSync(pid: number): ProcessInfo | null {
    try {
      const statText = readFileSync(`${this.procRoot}/${pid}/stat`, 'utf8');
      const cmdline = readFileSync(`${this.procRoot}/${pid}/cmdline`);
      return parseStat(pid, statText, cmdline, statSync(`${this.procRoot}/${pid}`).uid, this.bootMs);
    } catch {
      return null;
    }
  }

  async children(pid: number): Promise<number[]> {
    // /proc/<pid>/task/<tid>/children lists each thread's children (CONFIG_PROC_CHILDREN).
    let tids: string[];
    try {
      tids = readdirSync(`${this.procRoot}/${pid}/task`);
    } catch {
      return [];
    }
    const out: number[] = [];
    let listed = false;
    for (const tid of tids) {
      let text: string;
      try {
        text = readFileSync(`${this.procRoot}/${pid}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      listed = true;
      for (const c of text.split(' ')) if (c) out.push(Number(c));
    }
    // A kernel built without it: every process's ppid instead (a scan of /proc).
    return listed ? out : this.childrenByScan(pid);
  }

  private childrenByScan(pid: number): number[] {
    const out: number[] = [];
    for (const name of readdirSync(this.procRoot)) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // Only the ppid is wanted: no cmdline read.
        if (parseStat(Number(name), readFileSync(`${this.procRoot}/${name}/stat`, 'utf8'), EMPTY, 0, 0)?.ppid === pid) out.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  private refreshBootTime(): void {
    const uptime = readFileSync(`${this.procRoot}/uptime`, 'utf8');
    this.bootMs = Date.now() - Number(uptime.split(' ')[0]) * 1000;
  }
}

/** /proc/<pid>/stat: `pid (comm) state ppid …`; comm may hold spaces and parens, so split at the last ')'. */
export function parseStat(pid: number, statText: string, cmdline: Buffer, uid: number, bootMs: number): ProcessInfo | null {
  const close = statText.lastIndexOf(')');
  if (close < 0) return null;
  const name = statText.slice(statText.indexOf('(') + 1, close);
  const rest = statText.slice(close + 2).split(' ');
  // Fields after comm, 0-based: state=0, ppid=1, flags=6, starttime=19, rss=21.
  const state = rest[0] ?? '?';
  const flags = Number(rest[6] ?? 0);
  const ppid = Number(rest[1]);
  const startTicks = rest[19] ?? '0';
  const rssPages = Number(rest[21] ?? 0);
  const argv = cmdline.length ? cmdline.toString('utf8').replace(/\0$/, '').split('\0') : [];
  return {
    pid,
    ppid,
    uid,
    name,
    argv,
    startKey: startTicks,
    startedAt: bootMs + Number(startTicks) * TICK_MS,
    rssBytes: rssPages * PAGE_BYTES,
    zombie: state === 'Z' || state === 'X' || exiting(flags, cmdline.length),
  };
}

const PF_EXITING = 0x4;
const PF_KTHREAD = 0x200000;
/**
 * Past the start of exit(): it will never run user code again, but is not yet a zombie.
 * Its cmdline reads empty once its memory is released, which would look like a changed argv.
 */
const exiting = (flags: number, cmdlineBytes: number): boolean =>
  (flags & PF_EXITING) !== 0 || (cmdlineBytes === 0 && (flags & PF_KTHREAD) === 0);
