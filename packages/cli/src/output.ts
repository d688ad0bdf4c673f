import type { Writable } from 'node:stream';

/** Fixed-width text table; numbers are pre-formatted by the caller. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function seconds(value: number): string {
  return `${value.toFixed(1)} s`;
}

/** Prints a result: JSON on stdout with --json, else the human text. */
export function emit(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

export interface Progress {
  /** Reports `done` of `total` for a phase; extra fields (e.g. loss) are shown and logged. */
  update(phase: string, done: number, total: number, extra?: Readonly<Record<string, number>>): void;
  /** A one-off event (phase started, file written). */
  note(message: string, fields?: Readonly<Record<string, unknown>>): void;
  finish(): void;
}

/**
 * Progress on stderr, so stdout stays clean for results: a redrawn bar on a TTY, JSON lines
 * (at most one per second per phase, plus each phase's last) otherwise.
 */
export function createProgress(stream: Writable & { isTTY?: boolean; columns?: number } = process.stderr, quiet = false): Progress {
  const lastEmitted = new Map<string, number>();
  let barShown = false;
  const clearBar = () => {
    if (barShown) stream.write('\r\x1b[2K');
    barShown = false;
  };
  return {
    update(phase, done, total, extra = {}) {
      if (quiet) return;
      const now = performance.now();
      const finished = done >= total;
      if (!finished && now - (lastEmitted.get(phase) ?? -Infinity) < (stream.isTTY ? 100 : 1000)) return;
      lastEmitted.set(phase, now);
      if (!stream.isTTY) {
        stream.write(`${JSON.stringify({ event: 'progress', phase, done, total, ...extra })}\n`);
        return;
      }
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const width = 24;
      const filled = Math.round(fraction * width);
      const details = Object.entries(extra)
        .map(([key, value]) => `${key} ${Number.isInteger(value) ? value : value.toPrecision(4)}`)
        .join('  ');
      stream.write(
        `\r\x1b[2K${phase.padEnd(12)} [${'█'.repeat(filled)}${'·'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%  ${done}/${total}  ${details}`,
      );
      barShown = true;
      if (finished) {
        stream.write('\n');
        barShown = false;
      }
    },
    note(message, fields = {}) {
      if (quiet) return;
      clearBar();
      stream.write(stream.isTTY ? `${message}\n` : `${JSON.stringify({ event: 'note', message, ...fields })}\n`);
    },
    finish() {
      clearBar();
    },
  };
}
