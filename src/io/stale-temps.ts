// Temporary files of atomic writes (`.NAME.PID.RAND.tmp`, renamed over NAME when complete) left behind by
// a writer that was killed: removed by the next write of the same NAME once their process is gone.
import * as fs from 'node:fs';
import * as path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes `dir/.base.PID.RAND.tmp` (files or folders) whose process PID no longer runs. A PID in use
 * (this process, or any live one, even an unrelated process that reused the number) is left alone.
 * Returns the names removed.
 */
export function removeStaleTemps(dir: string, base: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const prefix = `.${base}.`;
  const removed: string[] = [];
  for (const name of entries) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || alive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      /* another writer got there first, or no permission: leave it */
    }
  }
  return removed;
}
