// Compressed sparse rows: the user x item click matrix, and the small helpers everything shares.
import type { NativeCsr } from '../native';

/** Users are rows, items are columns; `values` absent means binary clicks. */
export interface CsrMatrix extends NativeCsr {
  readonly rows: number;
  readonly cols: number;
  /** [rows + 1] offsets into indices */
  readonly indptr: Int32Array;
  /** [nnz] item index of each click */
  readonly indices: Int32Array;
  /** [nnz] click weight, or undefined for all ones */
  readonly values?: Float32Array;
}

export class VaecfInputError extends Error {
  readonly code = 'ERR_VAECF_INVALID_ARGUMENT';
  constructor(message: string) {
    super(message);
    this.name = 'VaecfInputError';
  }
}

/** Build a CSR matrix from per-user lists of item indices (duplicates within a row are kept once). */
export function csrFromRows(rows: ReadonlyArray<ArrayLike<number>>, cols: number): CsrMatrix {
  const indptr = new Int32Array(rows.length + 1);
  let nnz = 0;
  for (let r = 0; r < rows.length; r++) nnz += rows[r].length;
  const indices = new Int32Array(nnz);
  let at = 0;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const seen = new Set<number>();
    for (let k = 0; k < row.length; k++) {
      const item = row[k];
      if (seen.has(item)) continue;
      seen.add(item);
      indices[at++] = item;
    }
    indptr[r + 1] = at;
  }
  return { rows: rows.length, cols, indptr, indices: at === nnz ? indices : indices.slice(0, at) };
}

export function nnz(m: CsrMatrix): number {
  return m.indptr[m.rows];
}

export function rowItems(m: CsrMatrix, r: number): Int32Array {
  return m.indices.subarray(m.indptr[r], m.indptr[r + 1]);
}

/** The rows `rows` of m, in that order, as a new matrix. */
export function selectRows(m: CsrMatrix, rows: ArrayLike<number>): CsrMatrix {
  const indptr = new Int32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) indptr[i + 1] = indptr[i] + (m.indptr[rows[i] + 1] - m.indptr[rows[i]]);
  const indices = new Int32Array(indptr[rows.length]);
  const values = m.values ? new Float32Array(indptr[rows.length]) : undefined;
  for (let i = 0; i < rows.length; i++) {
    const b = m.indptr[rows[i]];
    const e = m.indptr[rows[i] + 1];
    indices.set(m.indices.subarray(b, e), indptr[i]);
    if (values && m.values) values.set(m.values.subarray(b, e), indptr[i]);
  }
  return { rows: rows.length, cols: m.cols, indptr, indices, values };
}

/**
 * Check a matrix before it reaches the engine; errors name the argument, the row and what was expected.
 */
export function validateCsr(m: CsrMatrix, name: string, options: { allowEmptyRows?: boolean; cols?: number } = {}): void {
  checkCsrShape(m, name, options);
  const fail = (msg: string): never => {
    throw new VaecfInputError(`${name}: ${msg}`);
  };
  for (let r = 0; r < m.rows; r++) {
    const b = m.indptr[r];
    const e = m.indptr[r + 1];
    if (e < b) fail(`indptr decreases at row ${r}`);
    if (e === b && !options.allowEmptyRows) fail(`row ${r} has no items; every user needs at least one click`);
    for (let k = b; k < e; k++) {
      const c = m.indices[k];
      if (c < 0 || c >= m.cols) fail(`row ${r} has item index ${c}, expected 0 <= index < ${m.cols}`);
      if (m.values) {
        const v = m.values[k];
        if (!Number.isFinite(v) || v <= 0) fail(`row ${r} has click value ${v}, expected a finite positive number`);
      }
    }
  }
}

/**
 * The checks of validateCsr that take constant time: types, shape, lengths, indptr's ends. The native
 * engine checks the contents (every row and click, with the same messages) where it reads them, off the
 * event loop, so a matrix handed to it is validated once.
 */
export function checkCsrShape(m: CsrMatrix, name: string, options: { cols?: number } = {}): void {
  const fail = (msg: string): never => {
    throw new VaecfInputError(`${name}: ${msg}`);
  };
  if (m === null || typeof m !== 'object') fail('expected a CSR matrix {rows, cols, indptr, indices, values?}');
  if (!Number.isInteger(m.rows) || m.rows < 0) fail(`rows: expected a non-negative integer, got ${m.rows}`);
  if (!Number.isInteger(m.cols) || m.cols <= 0) fail(`cols: expected a positive integer, got ${m.cols}`);
  if (options.cols !== undefined && m.cols !== options.cols)
    fail(`expected ${options.cols} item columns (the model's items), got ${m.cols}`);
  if (!(m.indptr instanceof Int32Array)) fail('indptr: expected an Int32Array');
  if (!(m.indices instanceof Int32Array)) fail('indices: expected an Int32Array');
  if (m.indptr.length !== m.rows + 1) fail(`indptr: expected length rows + 1 = ${m.rows + 1}, got ${m.indptr.length}`);
  if (m.indptr[0] !== 0) fail(`indptr[0]: expected 0, got ${m.indptr[0]}`);
  if (m.indptr[m.rows] > m.indices.length)
    fail(`indptr[${m.rows}] = ${m.indptr[m.rows]} exceeds the ${m.indices.length} indices`);
  if (m.values !== undefined) {
    if (!(m.values instanceof Float32Array)) fail('values: expected a Float32Array or undefined');
    if (m.values.length !== m.indices.length) fail('values: expected the same length as indices');
  }
}
