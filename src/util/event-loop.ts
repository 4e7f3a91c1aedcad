// How long the event loop was held: the longest time between two runs of a 1 ms timer while some work
// runs (for tests and benchmarks of the promise that the API never blocks the event loop).
import { performance } from 'node:perf_hooks';

/** The worst gap in milliseconds between timer ticks while `work` runs, and the number of ticks. */
export async function worstEventLoopGap(work: () => Promise<unknown>): Promise<{ worst: number; ticks: number }> {
  let last = performance.now();
  let worst = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
    ticks++;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  worst = Math.max(worst, performance.now() - last);
  return { worst, ticks };
}
