// The scoring queue of a recommendation service. A model scores one call at a time, so requests wait
// in one queue, and the queue micro-batches: single-user requests that wait together and ask for the
// same k, with no allow / exclude lists, are scored in one call, one pass over the output layer's
// weights for all of them.
// Up to 4 users run on the calling thread in the few-users kernel (about the cost of one); larger
// groups run in the thread pool and leave the event loop free to accept more requests meanwhile.
import type { ItemId, RecommendOptions, Recommendation } from '../models/types';

export interface BatchableModel {
  recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options?: RecommendOptions): Promise<Recommendation[]>;
}

interface Job {
  histories: ReadonlyArray<ReadonlyArray<ItemId>>;
  options: RecommendOptions;
  /** single-user requests without lists may be merged with others of the same k */
  mergeable: boolean;
  resolve: (r: Recommendation[]) => void;
  reject: (e: unknown) => void;
}

export interface BatcherStats {
  /** calls made to the model */
  calls: number;
  /** users scored */
  users: number;
  /** the largest number of users scored in one merged call */
  largestGroup: number;
}

export class RecommendBatcher {
  private readonly queue: Job[] = [];
  private running = false;
  readonly stats: BatcherStats = { calls: 0, users: 0, largestGroup: 0 };

  /**
   * coalesce: merge single-user requests (false: one call per request, still one at a time);
   * maxUsers: the most users merged into one call.
   */
  constructor(private readonly model: BatchableModel, private readonly coalesce = true, private readonly maxUsers = 64) {
    if (!Number.isInteger(maxUsers) || maxUsers < 1) throw new RangeError(`maxUsers: expected a positive integer, got ${maxUsers}`);
  }

  /** Recommendations for the histories, in order, when the model is free. */
  recommend(histories: ReadonlyArray<ReadonlyArray<ItemId>>, options: RecommendOptions = {}): Promise<Recommendation[]> {
    const mergeable = this.coalesce && histories.length === 1 && options.allow === undefined && options.exclude === undefined &&
      options.excludeSeen !== false;
    return new Promise((resolve, reject) => {
      this.queue.push({ histories, options, mergeable, resolve, reject });
      if (!this.running) {
        this.running = true;
        // After this turn's I/O callbacks, so that requests arriving together are queued together.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue.shift() as Job;
        const jobs = [head];
        if (head.mergeable) {
          // Every waiting mergeable request with the same k joins the head, up to maxUsers.
          const k = head.options.k ?? 10;
          for (let i = 0; i < this.queue.length && jobs.length < this.maxUsers;) {
            const j = this.queue[i];
            if (j.mergeable && (j.options.k ?? 10) === k) {
              jobs.push(j);
              this.queue.splice(i, 1);
            } else i++;
          }
        }
        const histories = jobs.length === 1 ? head.histories : jobs.map((j) => j.histories[0]);
        this.stats.calls++;
        this.stats.users += histories.length;
        if (jobs.length > 1) this.stats.largestGroup = Math.max(this.stats.largestGroup, jobs.length);
        try {
          const recs = await this.model.recommend(histories, head.options);
          if (jobs.length === 1) head.resolve(recs);
          else jobs.forEach((j, i) => j.resolve([recs[i]]));
        } catch (e) {
          for (const j of jobs) j.reject(e);
        }
        // Let the requests that arrived meanwhile join the queue before the next call.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = false;
    }
  }
}
