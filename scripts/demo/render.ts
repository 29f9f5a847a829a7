// Terminal output for the demo: aligned columns, colour only on a terminal.

export interface Paint {
  readonly on: boolean;
  bold: (s: string) => string;
  dim: (s: string) => string;
  red: (s: string) => string;
  green: (s: string) => string;
  yellow: (s: string) => string;
  cyan: (s: string) => string;
}

/** Colour when stdout is a terminal and NO_COLOR is unset (https://no-color.org). */
export function paintFor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): Paint {
  const on = stream.isTTY === true && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '') && env.TERM !== 'dumb';
  const sgr = (open: number, close: number) => (s: string) => (on ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { on, bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39) };
}

export interface Column {
  title: string;
  width: number;
  align: 'left' | 'right';
}

/** A cell: its text, and optionally how to colour it once padded (padding stays uncoloured-width-true). */
export type Cell = string | { text: string; style: (s: string) => string };

export function formatRow(cols: readonly Column[], cells: readonly Cell[], gap = '  '): string {
  return cols
    .map((c, i) => {
      const cell = cells[i] ?? '';
      const text = typeof cell === 'string' ? cell : cell.text;
      const padded = c.align === 'right' ? text.padStart(c.width) : text.padEnd(c.width);
      return typeof cell === 'string' ? padded : cell.style(padded);
    })
    .join(gap)
    .trimEnd();
}

export function formatHeader(cols: readonly Column[], gap = '  '): string {
  return formatRow(cols, cols.map((c) => c.title), gap);
}

/** Decimal units, as `ps` and Activity Monitor show them; one decimal below 100. */
export function fmtBytes(n: number): string {
  if (n === 0) return '0 MB';
  const [v, unit] = n >= 1e9 ? [n / 1e9, 'GB'] : n >= 1e6 ? [n / 1e6, 'MB'] : [n / 1e3, 'kB'];
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

export function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** `a 3 · b 1` in descending count order. */
export function fmtCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ');
}
