// StemeDB used from an application's own worker thread, and the lock between threads.
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { tempDir } from './helpers/tmp.js';

const root = tempDir();
const fixture = path.join(__dirname, 'fixtures', 'worker-thread-user.mjs');

describe('worker threads', () => {
  it('opens, writes, reads and closes inside a Worker; the main thread is refused with LEVEL_LOCKED meanwhile', async () => {
    const location = path.join(root, 'shared');
    const worker = new Worker(fixture, { workerData: { location } });
    const [first] = await once(worker, 'message');
    expect(first).toEqual({ opened: true, value: 'hello', sync: 'hello', files: 1 });

    const main = new StemeDB(location);
    const err: any = await main.open().catch((e) => e);
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
    expect(err.cause?.code).toBe('LEVEL_LOCKED');

    worker.postMessage('close');
    const [second] = await once(worker, 'message');
    expect(second).toEqual({ closed: true });
    await worker.terminate();

    await main.open();
    expect(await main.get('from-worker')).toBe('hello');
    await main.close();
  });

  it('two workers opening one location: exactly one wins, the other gets LEVEL_LOCKED', async () => {
    const location = path.join(root, 'race');
    const workers = [new Worker(fixture, { workerData: { location } }), new Worker(fixture, { workerData: { location } })];
    const results = await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0]));
    const winners = results.filter((r) => r.opened);
    const losers = results.filter((r) => !r.opened);
    expect(winners).toHaveLength(1);
    expect(losers).toEqual([{ opened: false, code: 'LEVEL_DATABASE_NOT_OPEN', cause: 'LEVEL_LOCKED' }]);
    const winner = workers[results.indexOf(winners[0])];
    winner.postMessage('close');
    await once(winner, 'message');
    await Promise.all(workers.map((w) => w.terminate()));
  });
});
