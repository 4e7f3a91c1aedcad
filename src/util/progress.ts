// Progress output for long work: a one-line bar on a terminal (with elapsed time, rate and time left),
// plain lines otherwise.

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export class ProgressLine {
  private lastDraw = 0;
  private label = '';
  private lastDone = 0;
  private startedAt = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly now: () => number = Date.now,
  ) {}

  get interactive(): boolean {
    return Boolean(this.stream.isTTY);
  }

  /**
   * Redraw the bar (throttled); no output when not a terminal. A new label, or `done` going back, starts
   * a new phase: its elapsed time, rate and time left are measured from there.
   */
  update(label: string, done: number, total: number, suffix = ''): void {
    if (!this.interactive) return;
    const now = this.now();
    if (label !== this.label || done < this.lastDone) {
      this.label = label;
      this.startedAt = now;
    }
    this.lastDone = done;
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const elapsed = (now - this.startedAt) / 1000;
    const rate = elapsed > 0 ? done / elapsed : NaN;
    const speed = done > 0 && elapsed > 0 ? ` ${duration(elapsed)}, ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)}/s` : '';
    // total <= 0: the total is not known (a file being read): a count and a rate, no bar.
    if (total <= 0) {
      this.stream.write(`\r${label} ${done}${speed} ${suffix}`.padEnd(this.stream.columns ? this.stream.columns - 1 : 100));
      return;
    }
    const width = 28;
    const filled = Math.round((Math.min(done, total) / total) * width);
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    const timing = speed ? `${speed}, ${done < total ? `${duration((total - done) / rate)} left` : 'done'}` : '';
    this.stream.write(`\r${label} [${bar}] ${done}/${total}${timing} ${suffix}`.padEnd(this.stream.columns ? this.stream.columns - 1 : 100));
  }

  clear(): void {
    if (this.interactive) this.stream.write(`\r${' '.repeat(this.stream.columns ? this.stream.columns - 1 : 100)}\r`);
  }
}
