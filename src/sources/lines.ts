import { StringDecoder } from 'node:string_decoder';

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

export interface LineCounts {
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

  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  /** Bytes received but not yet ended by a newline. */
  get pendingLength(): number {
    return this.pendingBytes;
  }

  /** Calls onLine(text, endOffsetInChunk) for each line completed by this chunk. */
  push(chunk: Buffer, onLine: (line: string, endInChunk: number) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      if (this.skipping || this.pendingBytes + piece.length > this.maxLineBytes) {
        this.counts.oversize++;
      } else {
        const bytes = this.pendingBytes ? Buffer.concat([...this.pending, piece]) : piece;
        this.counts.lines++;
        onLine(decodeUtf8(bytes), nl + 1);
      }
      this.pending = [];
      this.pendingBytes = 0;
      this.skipping = false;
      start = nl + 1;
    }
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
