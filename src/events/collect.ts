import { parseLogLine, toWorkerEvent } from './parse.js';
import type { WorkerEvent } from './types.js';

export interface ParseCounts {
  /** Lines that were not worker log lines at all (garbage, binary, foreign output). */
  skipped: number;
  /** Worker log lines that announce nothing we act on. */
  ignored: number;
  events: number;
}

/** Turns log lines into worker events, numbering them in log order and counting the rest. */
export class EventCollector {
  readonly counts: ParseCounts = { skipped: 0, ignored: 0, events: 0 };
  private seq: number;

  constructor(firstSeq = 0) {
    this.seq = firstSeq;
  }

  /** The event the line announces, or null; never throws on any input. */
  take(line: string): WorkerEvent | null {
    const parsed = line.length === 0 ? null : parseLogLine(line);
    if (!parsed) {
      if (line.trim().length > 0) this.counts.skipped++;
      return null;
    }
    const event = toWorkerEvent(parsed, this.seq++);
    if (event) this.counts.events++;
    else this.counts.ignored++;
    return event;
  }
}
