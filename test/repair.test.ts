// verify and repair: a flipped byte in any kind of file is detected, and repair recovers every
// intact record and never yields a wrong value.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { rng, seedFromEnv, tempDir } from './helpers/tmp.js';

const root = tempDir();
const cli = path.join(__dirname, '..', 'dist', 'cli', 'stemedb.js');
const TABLES = 4;
const PER_TABLE = 300;
const IN_WAL = 200;
const value = (k: string) => `${k}:${'v'.repeat(60)}`;

/** A closed database with TABLES SSTs (keys t<i>-*) and IN_WAL keys only in the WAL (w-*). */
async function build(location: string): Promise<Map<string, string>> {
  const model = new Map<string, string>();
  const db = new StemeDB(location, { autoCompaction: false, compression: false });
  await db.open();
  for (let t = 0; t < TABLES; t++) {
    const ops = Array.from({ length: PER_TABLE }, (_, i) => `t${t}-${String(i).padStart(4, '0')}`).map((key) => ({ type: 'put' as const, key, value: value(key) }));
    await db.batch(ops);
    for (const op of ops) model.set(op.key, op.value);
    await db.flush();
  }
  for (let i = 0; i < IN_WAL; i++) {
    const key = `w-${String(i).padStart(4, '0')}`;
    await db.put(key, value(key));
    model.set(key, value(key));
  }
  await db.close();
  return model;
}

function flip(file: string, random: () => number, from = 0): number {
  const bytes = fs.readFileSync(file);
  const at = from + Math.floor(random() * (bytes.length - from));
  bytes[at] ^= 1 + Math.floor(random() * 255);
  fs.writeFileSync(file, bytes);
  return at;
}

async function readAll(location: string, model: Map<string, string>): Promise<{ present: Set<string>; wrong: string[] }> {
  const db = new StemeDB(location);
  await db.open();
  const present = new Set<string>();
  const wrong: string[] = [];
  for (const [k, v] of model) {
    const got = await db.get(k);
    if (got === undefined) continue;
    if (got !== v) wrong.push(k);
    present.add(k);
  }
  for (const [k] of await db.iterator().all()) if (!model.has(k)) wrong.push(k);
  await db.close();
  return { present, wrong };
}

describe('verify and repair', () => {
  it('verify passes a clean database; the CLI exits 0', async () => {
    const location = path.join(root, 'clean');
    await build(location);
    const result = await StemeDB.verify(location);
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.tablesChecked).toBe(TABLES);
    const run = spawnSync(process.execPath, [cli, 'verify', location], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^ok: 4 tables/m);
  });

  const seed = seedFromEnv('STEMEDB_REPAIR_SEED');
  const kinds = ['sst', 'wal', 'manifest', 'current'] as const;
  for (const kind of kinds) {
    it(`a flipped byte in the ${kind} is detected, and repair recovers every intact record`, async () => {
      const random = rng(seed + kinds.indexOf(kind));
      for (let round = 0; round < 3; round++) {
        const location = path.join(root, `${kind}-${round}`);
        const model = await build(location);
        const kv = path.join(location, 'kv');
        const walDir = path.join(location, 'wal');
        const tables = fs.readdirSync(kv).filter((f) => f.endsWith('.sst')).sort();
        let target: string;
        if (kind === 'sst') target = path.join(kv, tables[Math.floor(random() * tables.length)]);
        else if (kind === 'wal') target = fs.readdirSync(walDir).map((f) => path.join(walDir, f)).find((f) => fs.statSync(f).size > 0)!;
        else if (kind === 'manifest') target = path.join(kv, fs.readdirSync(kv).find((f) => f.startsWith('MANIFEST-'))!);
        else target = path.join(kv, 'CURRENT');
        const damagedTableKeys = kind === 'sst' ? new Set(readKeysOfTable(target, model)) : new Set<string>();
        const at = flip(target, random);

        const result = await StemeDB.verify(location);
        expect(result.ok, `${kind} flip at ${at} undetected`).toBe(false);
        expect(result.problems.some((p) => p.file === target)).toBe(true);
        const cliRun = spawnSync(process.execPath, [cli, 'verify', location], { encoding: 'utf8' });
        expect(cliRun.status).toBe(1);

        const report = await StemeDB.repair(location);
        const { present, wrong } = await readAll(location, model);
        expect(wrong, `${kind} round ${round}: wrong values after repair`).toEqual([]);
        for (const k of model.keys()) {
          const mayBeLost = (kind === 'sst' && damagedTableKeys.has(k)) || (kind === 'wal' && k.startsWith('w-'));
          if (!mayBeLost) expect(present.has(k), `${kind} round ${round}: intact record ${k} lost`).toBe(true);
        }
        if (kind === 'sst') expect(report.tablesLost.map((t) => t.file)).toEqual([target]);
        if (kind === 'manifest' || kind === 'current') expect(present.size).toBe(model.size);
        expect((await StemeDB.verify(location)).ok).toBe(true);
      }
    });
  }

  it('the runbook spelling stemedb-api --rebuild-from-wal works', async () => {
    const location = path.join(root, 'runbook');
    const model = await build(location);
    fs.rmSync(path.join(location, 'kv', 'CURRENT'));
    const run = spawnSync(process.execPath, [cli, '--rebuild-from-wal', '--wal-path', path.join(location, 'wal'), '--kv-path', path.join(location, 'kv')], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).tablesKept).toBe(TABLES);
    const { present, wrong } = await readAll(location, model);
    expect(wrong).toEqual([]);
    expect(present.size).toBe(model.size);
  });
});

/** Keys of the model that the (still intact) table file holds, found by their bytes. */
function readKeysOfTable(file: string, model: Map<string, string>): string[] {
  const bytes = fs.readFileSync(file).toString('latin1');
  const prefix = /t\d-/.exec(bytes)?.[0];
  return [...model.keys()].filter((k) => prefix !== undefined && k.startsWith(prefix));
}
