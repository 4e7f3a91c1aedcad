import * as fs from 'node:fs';
import * as path from 'node:path';

/** The package version from package.json. */
export const VERSION: string = (() => {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();
