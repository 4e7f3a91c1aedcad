// Interaction logs in file order: (user, item, rating?, timestamp?) rows with ids interned to codes in
// order of first appearance. Built by the readers, consumed by the preparation.

/** Maps external ids (numeric or text) to dense codes in order of first appearance. */
export class IdInterner {
  private readonly numeric = new Map<number, number>();
  private readonly text = new Map<string, number>();
  readonly ids: Array<string | number> = [];

  /** Code of an id given as text; pure decimal integers are stored as numbers. */
  internText(s: string): number {
    // Canonical decimal integers only: "0005019281" (an ASIN) stays text.
    if (/^(0|-?[1-9][0-9]{0,14})$/.test(s)) return this.internNumber(Number(s));
    let c = this.text.get(s);
    if (c === undefined) {
      c = this.ids.length;
      this.text.set(s, c);
      this.ids.push(s);
    }
    return c;
  }

  internNumber(n: number): number {
    let c = this.numeric.get(n);
    if (c === undefined) {
      c = this.ids.length;
      this.numeric.set(n, c);
      this.ids.push(n);
    }
    return c;
  }

  get size(): number {
    return this.ids.length;
  }
}

/** A growable typed array (Int32Array or Float64Array), doubling its capacity when full. */
export class Growable<A extends Int32Array | Float64Array> {
  private data: A;
  length = 0;
  constructor(private readonly make: (n: number) => A) {
    this.data = make(1024);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  toArray(): A {
    return this.data.slice(0, this.length) as A;
  }
}

export interface Interactions {
  /** rows in file order */
  length: number;
  userCodes: Int32Array;
  itemCodes: Int32Array;
  /** rating (or play count, review score); null when the format has none */
  ratings: Float64Array | null;
  /**
   * What `ratings` holds: 'rating' (a score such as MovieLens stars; the protocol keeps rating > 3.5 by
   * default) or 'count' (plays, clicks, a weight; every count > 0 is a click). Absent: 'rating'.
   */
  valueKind?: 'rating' | 'count';
  timestamps: Float64Array | null;
  /** external id of each user / item code */
  userIds: Array<string | number>;
  itemIds: Array<string | number>;
  /** where the rows came from, for the manifest */
  source: { file: string; format: string };
}

export class InteractionsBuilder {
  readonly users = new IdInterner();
  readonly items = new IdInterner();
  private readonly userCodes = new Growable((n) => new Int32Array(n));
  private readonly itemCodes = new Growable((n) => new Int32Array(n));
  private readonly ratings = new Growable((n) => new Float64Array(n));
  private readonly timestamps = new Growable((n) => new Float64Array(n));
  hasRatings = false;
  hasTimestamps = false;
  valueKind: 'rating' | 'count' = 'rating';

  add(user: number, item: number, rating: number, timestamp: number): void {
    this.userCodes.push(user);
    this.itemCodes.push(item);
    if (this.hasRatings) this.ratings.push(rating);
    if (this.hasTimestamps) this.timestamps.push(timestamp);
  }

  build(file: string, format: string): Interactions {
    return {
      length: this.userCodes.length,
      userCodes: this.userCodes.toArray(),
      itemCodes: this.itemCodes.toArray(),
      ratings: this.hasRatings ? this.ratings.toArray() : null,
      ...(this.hasRatings ? { valueKind: this.valueKind } : {}),
      timestamps: this.hasTimestamps ? this.timestamps.toArray() : null,
      userIds: this.users.ids,
      itemIds: this.items.ids,
      source: { file, format },
    };
  }
}
