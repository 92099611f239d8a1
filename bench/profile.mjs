// CPU profile of one workload on one engine: runs bench/child.mjs under `node --cpu-prof` (every
// thread writes its own .cpuprofile) and prints the top functions by self time for each thread.
// Usage: node bench/profile.mjs --workload readrandom-sync [--engine stemedb] [--keys N] [--top 12] [--seed S]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WORKLOADS } from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: flags } = parseArgs({
  options: {
    workload: { type: 'string', default: 'fillrandom-batch' },
    engine: { type: 'string', default: 'stemedb' },
    keys: { type: 'string', default: '200000' },
    'value-size': { type: 'string', default: '100' },
    seed: { type: 'string', default: '42' },
    top: { type: 'string', default: '12' },
  },
});
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-profile-'));
const spec = { engine: flags.engine, workload: flags.workload, dir: path.join(root, 'db'), keys: Number(flags.keys), valueSize: Number(flags['value-size']), seed: Number(flags.seed) };
const child = (s, nodeArgs = []) => execFileSync(process.execPath, [...nodeArgs, path.join(here, 'child.mjs'), JSON.stringify(s)], { encoding: 'utf8' });
if (WORKLOADS[spec.workload].prefilled) child({ ...spec, workload: 'prefill' });
const profiles = path.join(root, 'profiles');
const result = JSON.parse(child(spec, ['--cpu-prof', `--cpu-prof-dir=${profiles}`]));
console.log(`${spec.engine} ${spec.workload}: ${Math.round(result.opsPerSec)} ops/s over ${result.seconds.toFixed(2)} s`);

for (const file of fs.readdirSync(profiles).sort()) {
  const profile = JSON.parse(fs.readFileSync(path.join(profiles, file), 'utf8'));
  const selfMicros = new Map();
  profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFunction = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
    const t = selfMicros.get(node.id) ?? 0;
    byFunction.set(name, (byFunction.get(name) ?? 0) + t);
    total += t;
  }
  // Threads that slept almost the whole time (idle pool workers) are not worth printing.
  const idle = byFunction.get('(idle)') ?? 0;
  if (total - idle < 50_000) continue;
  console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(idle / 1e6).toFixed(2)} s idle`);
  const rows = [...byFunction].filter(([n]) => n !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, Number(flags.top));
  for (const [name, t] of rows) console.log(`  ${(100 * t / (total - idle)).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${name}`);
}
fs.rmSync(root, { recursive: true, force: true });
