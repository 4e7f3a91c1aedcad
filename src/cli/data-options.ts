// Reading a dataset for the commands: a prepared dataset folder as is, or a raw file prepared with
// the paper's protocol (or a given train/test split).
import { VaecfInputError, type DataOptions } from '../index';

export { describe, loadOrPrepare, type DataOptions } from '../index';

export const DATA_FLAGS = {
  format: { type: 'string' },
  test: { type: 'string' },
  'held-out': { type: 'string' },
  'validation-users': { type: 'string' },
  threshold: { type: 'string' },
  'min-user-clicks': { type: 'string' },
  'min-item-clicks': { type: 'string' },
  seed: { type: 'string' },
  'user-col': { type: 'string' },
  'item-col': { type: 'string' },
  'rating-col': { type: 'string' },
  'time-col': { type: 'string' },
  delimiter: { type: 'string' },
} as const;

export function numberFlag(name: string, v: string | boolean | undefined): number | undefined {
  if (v === undefined || typeof v === 'boolean') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new VaecfInputError(`--${name}: expected a number, got "${v}"`);
  return n;
}

export function dataOptionsFrom(values: Record<string, string | boolean | undefined>): DataOptions {
  return {
    format: values.format as string | undefined,
    test: values.test as string | undefined,
    heldOut: numberFlag('held-out', values['held-out']),
    validationUsers: numberFlag('validation-users', values['validation-users']),
    threshold: values.threshold as string | undefined,
    minUserClicks: numberFlag('min-user-clicks', values['min-user-clicks']),
    minItemClicks: numberFlag('min-item-clicks', values['min-item-clicks']),
    seed: numberFlag('seed', values.seed),
    ...columnsFrom(values),
    ...(values.delimiter !== undefined ? { delimiter: delimiterFrom(values.delimiter as string) } : {}),
  };
}

// --user-col NAME etc.: the header names of a delimited file's columns.
function columnsFrom(values: Record<string, string | boolean | undefined>): { columns?: DataOptions['columns'] } {
  const columns = Object.fromEntries(
    (['user', 'item', 'rating', 'time'] as const)
      .filter((k) => typeof values[`${k}-col`] === 'string')
      .map((k) => [k === 'time' ? 'timestamp' : k, values[`${k}-col`] as string]),
  );
  return Object.keys(columns).length ? { columns } : {};
}

// --delimiter ',' / '\t' / tab / ';' / '|'.
function delimiterFrom(v: string): string {
  const d = v === 'tab' || v === '\\t' ? '\t' : v;
  if (d.length !== 1) throw new VaecfInputError(`--delimiter: expected one character (or tab), got "${v}"`);
  return d;
}

