// Runs every test runner `npm test` covers and prints one closing line, summed over all of
// them: "N passed, N failed". Exits non-zero when anything failed or a runner crashed.
//   1. vitest (unit, integration, crash and packaging tests under test/*.test.ts)
//   2. the abstract-level compliance suite (tape), counted by its assertions
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const outDir = path.join(root, '.tmp');
fs.mkdirSync(outDir, { recursive: true });
let passed = 0;
let failed = 0;

// 1. vitest
const vitestJson = path.join(outDir, 'vitest.json');
fs.rmSync(vitestJson, { force: true });
const vitest = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`], { cwd: root, stdio: 'inherit' });
if (fs.existsSync(vitestJson)) {
  const report = JSON.parse(fs.readFileSync(vitestJson, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  // A file that fails to load has no tests but must still count as a failure.
  failed += report.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
} else {
  console.error(`vitest produced no report (exit ${vitest.status})`);
  failed += 1;
}

// 2. abstract-level suite (tape)
const suiteStart = Date.now();
const tape = spawnSync(process.execPath, [path.join(root, 'test/abstract-level-suite.mjs')], { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
fs.writeFileSync(path.join(outDir, 'abstract-level-suite.tap'), tape.stdout + tape.stderr);
const pass = /^# pass\s+(\d+)/m.exec(tape.stdout);
const fail = /^# fail\s+(\d+)/m.exec(tape.stdout);
const suitePassed = pass ? Number(pass[1]) : 0;
const suiteFailed = fail ? Number(fail[1]) : 0;
for (const line of tape.stdout.split('\n')) if (line.startsWith('not ok')) console.log(`abstract-level suite: ${line}`);
console.log(`abstract-level suite: ${suitePassed} passed, ${suiteFailed} failed in ${((Date.now() - suiteStart) / 1000).toFixed(1)} s (TAP in .tmp/abstract-level-suite.tap)`);
passed += suitePassed;
failed += suiteFailed;
if (tape.status !== 0 && suiteFailed === 0) {
  console.error(`abstract-level suite exited with ${tape.status}${tape.signal ? ` (${tape.signal})` : ''}`);
  console.error(tape.stderr.slice(-4000));
  failed += 1;
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
