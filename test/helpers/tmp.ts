import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

export { rng } from './random.mjs';

/** A fresh directory under the OS temp dir, removed after the file's tests. */
export function tempDir(prefix = 'stemedb-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}


export function seedFromEnv(name: string): number {
  const v = process.env[name];
  const seed = v ? Number(v) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${name}=${seed}`);
  return seed;
}
