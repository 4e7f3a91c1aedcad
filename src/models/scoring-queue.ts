// Concurrent scoring calls on one model, run one after another. The native model runs one call at a
// time and refuses a second one while the first runs (for training, a refusal is the right answer);
// concurrent `recommend` calls, the normal case in a server, wait their turn here instead.
export class ScoringQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  /** true when no call is queued or running: a synchronous call may run now */
  get idle(): boolean {
    return this.pending === 0;
  }

  /** Runs `task` after every call queued before it; its result or error is the returned promise's. */
  async run<T>(task: () => T | Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      this.pending--;
    }
  }
}
