// Strong generalisation on a click matrix (rows = users in ascending id order, entries in file order):
// the paper's protocol without binarisation or activity filters. See prepare.ts.
import type { CsrMatrix } from './csr';
import { interactionsFromCsr, preparePaperProtocol, type PreparedDataset } from './prepare';

export interface StrongSplitOptions {
  /** users per held-out set: a count, or a fraction of all users when in (0, 1) */
  heldOutUsers: number;
  seed?: number;
  /** fraction of a held-out user's clicks that become targets (0.2) */
  targetFraction?: number;
}

export function strongGeneralizationSplit(m: CsrMatrix, options: StrongSplitOptions): PreparedDataset {
  return preparePaperProtocol(interactionsFromCsr(m), {
    threshold: null,
    minUserClicks: 1,
    heldOutUsers: options.heldOutUsers,
    seed: options.seed,
    targetFraction: options.targetFraction,
  });
}
