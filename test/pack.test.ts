// Packaging: `npm pack` the repository (dist/ must be built), install the tarball into a fresh
// ESM project and use it from there by its package name. This proves the published files are
// complete: the entry point, the worker scripts (resolved relative to dist/ at run time) and the
// WASM dependencies (LZ4 compression, xxhash checksums) all load from the installed package.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const exec = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// Runs inside the temp project: `stemedb` must resolve to its node_modules, nowhere else.
const consumer = `
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StemeDB } from 'stemedb';

const location = process.argv[2];
const out = { resolved: fileURLToPath(import.meta.resolve('stemedb')) };
const value = (i) => 'value-' + i + '-' + 'abcdefgh'.repeat(40);
const db = new StemeDB(location, { writeBufferSize: 64 * 1024 });
await db.open();
await db.put('hello', 'world', { sync: true });
await db.batch(Array.from({ length: 2000 }, (_, i) => ({ type: 'put', key: 'k' + String(i).padStart(5, '0'), value: value(i) })));
await db.del('k00007');
out.getBeforeFlush = await db.get('hello');
await db.flush();
out.sstFiles = fs.readdirSync(path.join(location, 'kv')).filter((f) => f.endsWith('.sst')).length;
out.sstBytes = fs.readdirSync(path.join(location, 'kv')).filter((f) => f.endsWith('.sst')).reduce((s, f) => s + fs.statSync(path.join(location, 'kv', f)).size, 0);
out.getAfterFlush = db.getSync('hello');
await db.close();

const again = new StemeDB(location);
await again.open();
out.reopened = {
  hello: await again.get('hello'),
  k01999: await again.get('k01999'),
  k01999ok: (await again.get('k01999')) === value(1999),
  deleted: (await again.get('k00007')) ?? null,
  count: (await again.keys().all()).length,
  allValuesOk: (await again.iterator({ gte: 'k', lt: 'l' }).all()).every(([k, v]) => v === value(Number(k.slice(1)))),
};
await again.close();
console.log(JSON.stringify(out));
`;

describe('npm package', () => {
  it('installs from its tarball and works from another project', async () => {
    const tmp = tempDir('stemedb-pack-');
    const packDir = path.join(tmp, 'pack');
    const project = path.join(tmp, 'project');
    fs.mkdirSync(packDir);
    fs.mkdirSync(project);
    expect(fs.existsSync(path.join(root, 'dist/index.js')), 'dist/ must be built first (npx tsc -p .)').toBe(true);

    // --ignore-scripts: pack the dist/ that is already built rather than rebuilding it (prepare).
    const packed = await exec(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info.files.map((f) => f.path);
    expect(files).toContain('package.json');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files.some((f) => f.startsWith('dist/workers/') && f.endsWith('.js'))).toBe(true);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/'))).toEqual([]);
    const tarball = path.join(packDir, path.basename(info.filename));
    expect(fs.existsSync(tarball)).toBe(true);

    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'stemedb-pack-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
    await exec(npm, ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], { cwd: project, maxBuffer: 64 * 1024 * 1024 });
    const installed = path.join(project, 'node_modules', 'stemedb');
    expect(fs.existsSync(path.join(installed, 'dist', 'index.js'))).toBe(true);
    expect(fs.existsSync(path.join(installed, 'src'))).toBe(false);

    fs.writeFileSync(path.join(project, 'use.mjs'), consumer);
    const env = { ...process.env };
    delete env.NODE_PATH;
    const run = await exec(process.execPath, ['use.mjs', path.join(tmp, 'db')], { cwd: project, env, timeout: 60_000 });
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(fs.realpathSync(out.resolved)).toBe(fs.realpathSync(path.join(installed, 'dist', 'index.js')));
    expect(out.getBeforeFlush).toBe('world');
    expect(out.getAfterFlush).toBe('world');
    expect(out.sstFiles).toBeGreaterThan(0);
    // ~900 KB of repetitive values: LZ4 (WASM) must have compressed the tables well below that.
    expect(out.sstBytes).toBeLessThan(400_000);
    expect(out.reopened).toEqual({ hello: 'world', k01999: expect.stringMatching(/^value-1999-/), k01999ok: true, deleted: null, count: 2000, allValuesOk: true });
  }, 180_000);
});
