// Memory of the processes the demo started, as the kernel reports it.
import { readFileSync } from 'node:fs';

/** Resident set size of one process (VmRSS), 0 when it is gone or unreadable. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
