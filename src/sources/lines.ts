import { StringDecoder } from 'node:string_decoder';

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

export interface LineCounts {
  /** Complete lines decoded (with markers: only the lines that hold one). */
  lines: number;
  /** Lines longer than the cap, dropped whole without being buffered. */
  oversize: number;
}

/**
 * Splits a byte stream into complete lines without ever buffering more than one line
 * (capped). The bytes after the last newline stay pending: a partial line is not an event.
 */
export class LineSplitter {
  readonly counts: LineCounts = { lines: 0, oversize: 0 };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private skipping = false;
  private readonly markers: readonly string[];
  private readonly markerRe: RegExp | null;

  /**
   * With `markers`, a line that contains none of them is counted but never decoded: most of
   * a trace-level log is chatter, and finding markers in bytes is what makes catch-up fast.
   */
  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES, markers: readonly string[] = []) {
    this.markers = markers;
    this.markerRe = markers.length ? new RegExp(markers.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g') : null;
  }

  /** Bytes received but not yet ended by a newline. */
  get pendingLength(): number {
    return this.pendingBytes;
  }

  /** Calls onLine(text, endOffsetInChunk) for each line completed by this chunk. */
  push(chunk: Buffer, onLine: (line: string, endInChunk: number) => void): void {
    let start = 0;
    // A line begun in an earlier chunk is finished (or found oversize) the plain way.
    while (start < chunk.length && (this.pendingBytes > 0 || this.skipping || this.markers.length === 0)) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      this.complete(chunk.subarray(start, nl), nl + 1, onLine);
      start = nl + 1;
    }
    if (this.markers.length > 0 && this.pendingBytes === 0 && !this.skipping) start = this.scanMarkers(chunk, start, onLine);
    const rest = chunk.subarray(start);
    if (rest.length === 0) return;
    if (this.skipping || this.pendingBytes + rest.length > this.maxLineBytes) {
      this.skipping = true;
      this.pending = [];
      this.pendingBytes = 0;
    } else {
      // Copy: the caller may reuse its read buffer.
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
  }

  private complete(piece: Buffer, end: number, onLine: (line: string, endInChunk: number) => void): void {
    if (this.skipping || this.pendingBytes + piece.length > this.maxLineBytes) {
      this.counts.oversize++;
    } else {
      const bytes = this.pendingBytes ? Buffer.concat([...this.pending, piece]) : piece;
      this.counts.lines++;
      onLine(decodeUtf8(bytes), end);
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.skipping = false;
  }

  /**
   * Jump from marker to marker instead of from newline to newline: one regex pass over the
   * chunk as latin1 (byte offsets = string offsets), and only the lines around a match are
   * delimited and decoded as UTF-8. Returns where the unfinished last line starts.
   */
  private scanMarkers(chunk: Buffer, from: number, onLine: (line: string, endInChunk: number) => void): number {
    const lastNl = chunk.lastIndexOf(10);
    if (lastNl < from) return from;
    const text = chunk.toString('latin1', from, lastNl + 1);
    const re = this.markerRe!;
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const lineStart = text.lastIndexOf('\n', m.index) + 1;
      const nl = text.indexOf('\n', m.index);
      this.complete(chunk.subarray(from + lineStart, from + nl), from + nl + 1, onLine);
      re.lastIndex = nl + 1;
    }
    return lastNl + 1;
  }

  /** Forget a partial line (after truncation or rotation). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.skipping = false;
  }
}

const decoder = new StringDecoder('utf8');
/** Invalid UTF-8 becomes U+FFFD: such a line cannot match a sid, so it parses to nothing. */
function decodeUtf8(bytes: Buffer): string {
  return decoder.end(bytes);
}
