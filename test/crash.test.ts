// Crash safety: SIGKILL a writer process at random moments (during open/recovery, flushes,
// MANIFEST edits, group commits) and check after every kill that each acknowledged write
// survived, that no batch is partly applied and that no key holds a value never written.
// The driver is scripts/crash-test.mjs (also `npm run test:crash -- --cycles 200`); the writer
// is test/fixtures/crash-writer.mjs. Replay a seed with STEMEDB_CRASH_SEED=<seed>.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CYCLES = 20;

interface CrashResult {
  seed: number;
  seconds: number;
  cycles: number;
  issued: number;
  acknowledged: number;
  acknowledgedEntries: number;
  losses: number;
  violations: number;
  byType: Record<string, number>;
}

function runDriver(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts/crash-test.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => { output += c; });
    child.stderr.on('data', (c: string) => { output += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('crash safety', () => {
  it(`survives ${CYCLES} SIGKILLs with no lost, torn or phantom writes`, async () => {
    const seed = seedFromEnv('STEMEDB_CRASH_SEED');
    const { code, output } = await runDriver(['--cycles', String(CYCLES), '--seed', String(seed)]);
    console.log(output);
    const line = output.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, `crash driver printed no RESULT line (exit ${code}):\n${output.slice(-4000)}`).toBeDefined();
    const result = JSON.parse(line!.slice('RESULT '.length)) as CrashResult;
    const violations = output.split('\n').filter((l) => l.includes('VIOLATION')).slice(0, 20).join('\n');
    expect(result.seed).toBe(seed);
    expect(result.violations, `seed ${seed}: ${result.violations} violations ${JSON.stringify(result.byType)}:\n${violations}`).toBe(0);
    expect(result.losses).toBe(0);
    expect(result.cycles).toBeGreaterThanOrEqual(10);
    expect(result.acknowledged).toBeGreaterThan(0);
    expect(result.acknowledgedEntries).toBeGreaterThan(result.acknowledged);
    expect(code).toBe(0);
  }, 120_000);
});
