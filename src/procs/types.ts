/** One process as the reaper sees it. Identity is (pid, startKey); argv and uid are re-checked too. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  /** Kernel process name (Linux comm, 15 bytes) or argv[0]'s basename. */
  name: string;
  argv: string[];
  /** Stable start-time token from the OS (Linux: clock ticks since boot; macOS: lstart). */
  startKey: string;
  /** Start time as epoch ms, good to `startPrecisionMs`. */
  startedAt: number;
  rssBytes: number;
  /** A zombie has exited; it only waits for its parent to reap it. */
  zombie: boolean;
}

export interface ProcessSnapshot {
  processes: ProcessInfo[];
  /** When the listing began (epoch ms): every process started before it is in it. */
  takenAt: number;
  /** How far `startedAt` may be from the true start (tick size plus clock estimate). */
  startPrecisionMs: number;
}

/** The OS adapter: a full table, or one pid read on its own (the hot path). */
export interface ProcessReader {
  snapshot(): Promise<ProcessSnapshot>;
  read(pid: number): Promise<ProcessInfo | null>;
  /** Direct children of a pid, for descendants found after the snapshot. */
  children(pid: number): Promise<number[]>;
  /** Only the processes whose argv contains `token` (cheaper than a snapshot where the OS
   *  lets argv be read alone); takenAt as for snapshot. */
  withArgv?(token: string): Promise<ProcessSnapshot>;
  readonly startPrecisionMs: number;
}

export const sameIdentity = (a: ProcessInfo, b: ProcessInfo): boolean =>
  a.pid === b.pid && a.startKey === b.startKey && a.uid === b.uid;

export const sameArgv = (a: ProcessInfo, b: ProcessInfo): boolean =>
  a.argv.length === b.argv.length && a.argv.every((v, i) => v === b.argv[i]);
