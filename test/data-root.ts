// Where the shared real datasets are: ../shared/data beside the checkout (override: VAECF_SHARED_DATA).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DATA_ROOT = process.env.VAECF_SHARED_DATA ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'data');

export function sharedFile(...parts: string[]): string {
  const file = path.join(DATA_ROOT, ...parts);
  if (!fs.existsSync(file))
    throw new Error(`${file} is missing: the tests read the shared datasets from ../shared/data beside the checkout (or set VAECF_SHARED_DATA)`);
  return file;
}
