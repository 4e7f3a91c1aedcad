// Progress output for long work: a one-line bar on a terminal, plain lines otherwise.
export class ProgressLine {
  private lastDraw = 0;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  get interactive(): boolean {
    return Boolean(this.stream.isTTY);
  }

  /** Redraw the bar (throttled); no output when not a terminal. */
  update(label: string, done: number, total: number, suffix = ''): void {
    if (!this.interactive) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const width = 28;
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    this.stream.write(`\r${label} [${bar}] ${done}/${total} ${suffix}`.padEnd(this.stream.columns ? this.stream.columns - 1 : 100));
  }

  clear(): void {
    if (this.interactive) this.stream.write(`\r${' '.repeat(this.stream.columns ? this.stream.columns - 1 : 100)}\r`);
  }
}
