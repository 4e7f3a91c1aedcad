// The time `require('vaecf')` takes in a fresh Node process (median of 11), and what it loads.
// usage: node dist/bench/import-time.js
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const index = path.resolve(__dirname, '..', 'src', 'index.js');
const times: number[] = [];
for (let i = 0; i < 11; i++) {
  const out = execFileSync(process.execPath, ['-e', `const t = process.hrtime.bigint(); require(${JSON.stringify(index)}); console.log(Number(process.hrtime.bigint() - t) / 1e6)`], { encoding: 'utf8' });
  times.push(Number(out.trim()));
}
times.sort((a, b) => a - b);
console.log(`require('vaecf'): median ${times[5].toFixed(1)} ms, min ${times[0].toFixed(1)} ms, max ${times[10].toFixed(1)} ms (11 fresh processes, Node ${process.version})`);
