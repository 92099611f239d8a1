// SharedMutex (src/shm/lock.ts): mutual exclusion across threads, timeouts, and no lost wakeups.
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SharedMutex } from '../dist/shm/lock.js';

const fixture = path.join(__dirname, 'fixtures', 'cache-lock-worker.mjs');
const LOCK = 0;
const COUNTER = 16; // its own cache line, like a real structure would keep it

function startWorker(buffer: SharedArrayBuffer, data: Record<string, unknown>): Worker {
  return new Worker(fixture, { workerData: { buffer, index: LOCK, counterIndex: COUNTER, ...data } });
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('SharedMutex', () => {
  it('tryLock/unlock move through Unlocked and Locked; unlock of a free lock is an assertion', () => {
    const m = SharedMutex.create();
    expect(m.state).toBe(0);
    expect(m.tryLock()).toBe(true);
    expect(m.state).toBe(1);
    expect(m.tryLock()).toBe(false);
    m.unlock();
    expect(m.state).toBe(0);
    expect(() => m.unlock()).toThrow(/not locked/);
  });

  it('lockSync refuses to run on the main thread', () => {
    expect(() => SharedMutex.create().lockSync(10)).toThrow(/main thread/);
  });

  it('mutual exclusion: 2 workers and the main thread increment a counter non-atomically under the lock', async () => {
    const buffer = new SharedArrayBuffer(128);
    const words = new Int32Array(buffer);
    const mutex = new SharedMutex(words, LOCK);
    const perWorker = 20_000;
    const mainIterations = 2_000;
    const workers = [0, 1].map(() => startWorker(buffer, { mode: 'count', iterations: perWorker, timeoutMs: 10_000 }));
    const results = workers.map((w) => once(w, 'message'));
    let maxMainWaitMs = 0;
    for (let i = 0; i < mainIterations; i++) {
      const t0 = performance.now();
      await mutex.lockAsync(10_000);
      maxMainWaitMs = Math.max(maxMainWaitMs, performance.now() - t0);
      const seen = words[COUNTER];
      // Give other threads a chance to run inside our critical section if exclusion were broken.
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      words[COUNTER] = seen + 1;
      mutex.unlock();
    }
    const done = (await Promise.all(results)).map(([m]) => m);
    await Promise.all(workers.map((w) => w.terminate()));
    expect(words[COUNTER]).toBe(2 * perWorker + mainIterations);
    expect(mutex.state).toBe(0);
    console.log(`lock: max wait main ${maxMainWaitMs.toFixed(1)} ms, workers ${done.map((d) => d.maxWaitMs.toFixed(1)).join(', ')} ms`);
  });

  it("times out with code LEVEL_TIMEOUT (worker lockSync and main lockAsync) instead of deadlocking", async () => {
    const buffer = new SharedArrayBuffer(128);
    const mutex = new SharedMutex(new Int32Array(buffer), LOCK);
    const holder = startWorker(buffer, { mode: 'hold', timeoutMs: 1000 });
    expect((await once(holder, 'message'))[0]).toBe('held');

    const t0 = performance.now();
    const err: any = await mutex.lockAsync(50).catch((e) => e);
    expect(err.code).toBe('LEVEL_TIMEOUT');
    expect(err.name).toBe('StemeError');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);

    const trier = startWorker(buffer, { mode: 'try', timeoutMs: 50 });
    const [tried] = await once(trier, 'message');
    expect(tried).toMatchObject({ acquired: false, code: 'LEVEL_TIMEOUT' });
    expect(tried.waitedMs).toBeGreaterThanOrEqual(45);

    holder.postMessage('release');
    expect((await once(holder, 'message'))[0]).toBe('released');
    // The timed-out waiters left the slot Contended; that only costs one spurious notify.
    await mutex.lockAsync(1000);
    mutex.unlock();
    expect(mutex.state).toBe(0);
    await Promise.all([holder.terminate(), trier.terminate()]);
  });

  it('no lost wakeups: a parked worker and a parked main-thread waiter are woken by unlock, not by their timeout', async () => {
    const buffer = new SharedArrayBuffer(128);
    const mutex = new SharedMutex(new Int32Array(buffer), LOCK);
    for (let round = 0; round < 8; round++) {
      expect(mutex.tryLock()).toBe(true);
      const trier = startWorker(buffer, { mode: 'try', timeoutMs: 30_000 });
      // Wait until the worker has announced itself (Contended) and so is parked or about to park.
      await until(() => mutex.state === 2);
      await new Promise((r) => setTimeout(r, round % 3));
      mutex.unlock();
      const [tried] = await once(trier, 'message');
      expect(tried.acquired).toBe(true);
      expect(tried.waitedMs).toBeLessThan(5_000);
      await trier.terminate();
    }
    // Main thread parked in waitAsync, a worker holding and releasing.
    for (let round = 0; round < 8; round++) {
      const holder = startWorker(buffer, { mode: 'hold', timeoutMs: 5000 });
      expect((await once(holder, 'message'))[0]).toBe('held');
      const t0 = performance.now();
      const acquired = mutex.lockAsync(30_000);
      await until(() => mutex.state === 2);
      holder.postMessage('release');
      await acquired;
      expect(performance.now() - t0).toBeLessThan(5_000);
      mutex.unlock();
      await holder.terminate();
    }
  });

  it('no lost wakeups under churn: 2 workers and main, short critical sections, no wait near the timeout', async () => {
    const buffer = new SharedArrayBuffer(128);
    const words = new Int32Array(buffer);
    const mutex = new SharedMutex(words, LOCK);
    const workers = [0, 1].map(() => startWorker(buffer, { mode: 'count', iterations: 50_000, timeoutMs: 20_000 }));
    const results = workers.map((w) => once(w, 'message'));
    let mainCount = 0;
    let finished = false;
    void Promise.all(results).then(() => { finished = true; });
    while (!finished) {
      await mutex.lockAsync(20_000);
      words[COUNTER]++;
      mainCount++;
      mutex.unlock();
      if (mainCount % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    const done = (await Promise.all(results)).map(([m]) => m);
    await Promise.all(workers.map((w) => w.terminate()));
    expect(words[COUNTER]).toBe(100_000 + mainCount);
    for (const d of done) expect(d.maxWaitMs).toBeLessThan(5_000);
  });
});
