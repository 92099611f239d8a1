// Threads: all. tryLock() and unlock() run on any thread; lockSync() only on worker threads (it
// may block in Atomics.wait); lockAsync() on any thread, and is the only way the main thread
// waits (Atomics.waitAsync; the event loop never blocks).
//
// A mutex in one Int32 slot of a SharedArrayBuffer, after Drepper's "Futexes Are Tricky"
// mutex #2. The slot holds a LockState (layout.ts): Unlocked 0, Locked 1, Contended 2.
// Protocol:
//   1. Acquire fast path: compareExchange(Unlocked -> Locked). Success means nobody waits, so the
//      matching unlock() needs no Atomics.notify.
//   2. Slow path: a thread that finds the lock held retries step 1 at most LOCK_SPIN_TRIES times
//      (no pause loop: on 2 cores a spinning thread steals the CPU from the holder), then
//      exchange(Contended). If the old value was Unlocked it now owns the lock (in state
//      Contended, which at worst costs one spurious notify). Otherwise it sleeps while the slot is
//      Contended (Atomics.wait in a worker, Atomics.waitAsync on the main thread) and repeats
//      this step when woken or when the wait returns for any reason.
//   3. Release: Atomics.sub(1). Old value Locked means no sleeper announced itself: done, no
//      futex call. Old value Contended: store Unlocked and notify ONE sleeper.
//   4. No lost wakeup: a sleeper only sleeps while the slot is Contended (the wait rechecks the
//      value atomically), and every thread that goes to sleep first wrote Contended, so the
//      holder's release sees Contended and notifies. A woken thread that loses the race to a
//      newcomer writes Contended again before sleeping, so the next release notifies again.
//   5. Timeouts: after a wake for any reason, a waiter tries step 2's exchange before it checks
//      its deadline, so a notify is never swallowed by a waiter that then gives up. On timeout it
//      throws StemeError('LEVEL_TIMEOUT') and leaves the slot Contended (harmless: one extra
//      notify by the holder).
// Invariants: only the holder calls unlock(); the lock is not reentrant (a holder that locks
// again deadlocks until its timeout). Locking is not fair.

import { isMainThread } from 'node:worker_threads';
import { assert } from '../common/assert.js';
import { StemeError } from '../common/errors.js';
import { LockState } from './layout.js';

/** Extra fast-path attempts before sleeping. Small on purpose: see step 2. */
export const LOCK_SPIN_TRIES = 8;

/** Where the slot lives; lets several structures keep their lock inside their own buffer. */
export class SharedMutex {
  readonly words: Int32Array;
  readonly index: number;

  /** `words` must view a SharedArrayBuffer; `index` is the Int32 slot, initially Unlocked. */
  constructor(words: Int32Array, index: number) {
    assert(words.buffer instanceof SharedArrayBuffer, 'SharedMutex needs an Int32Array over a SharedArrayBuffer');
    assert(Number.isInteger(index) && index >= 0 && index < words.length, 'SharedMutex slot out of range');
    this.words = words;
    this.index = index;
  }

  /** A mutex in a fresh 4-byte SharedArrayBuffer; pass `.words.buffer` to other threads. */
  static create(): SharedMutex {
    return new SharedMutex(new Int32Array(new SharedArrayBuffer(4)), 0);
  }

  /** Any thread: acquires the lock if it is free right now; never waits. */
  tryLock(): boolean {
    // Atomics.compareExchange: acquire (seq-cst) so the previous holder's writes are visible.
    return Atomics.compareExchange(this.words, this.index, LockState.Unlocked, LockState.Locked) === LockState.Unlocked;
  }

  /**
   * Worker threads only: acquires the lock, sleeping in Atomics.wait while it is held.
   * Throws StemeError('LEVEL_TIMEOUT') after timeoutMs instead of waiting forever.
   */
  lockSync(timeoutMs: number): void {
    assert(!isMainThread, 'lockSync blocks; the main thread must use lockAsync or tryLock');
    assert(timeoutMs >= 0, 'lock timeout must be non-negative');
    for (let i = 0; i <= LOCK_SPIN_TRIES; i++) if (this.tryLock()) return;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // Atomics.exchange: announce a sleeper (Contended) and take the lock if it was just freed.
      if (Atomics.exchange(this.words, this.index, LockState.Contended) === LockState.Unlocked) return;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw timeoutError(timeoutMs);
      // Atomics.wait: sleep only while the slot is still Contended; unlock() notifies it.
      Atomics.wait(this.words, this.index, LockState.Contended, remainingMs);
    }
  }

  /**
   * Any thread, never blocks: resolves once the lock is held. Rejects with
   * StemeError('LEVEL_TIMEOUT') after timeoutMs.
   */
  async lockAsync(timeoutMs: number): Promise<void> {
    assert(timeoutMs >= 0, 'lock timeout must be non-negative');
    for (let i = 0; i <= LOCK_SPIN_TRIES; i++) if (this.tryLock()) return;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // Atomics.exchange: as in lockSync, announce a sleeper and take a just-freed lock.
      if (Atomics.exchange(this.words, this.index, LockState.Contended) === LockState.Unlocked) return;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw timeoutError(timeoutMs);
      // Atomics.waitAsync: the event loop must never block; unlock()'s notify resolves the promise.
      const result = Atomics.waitAsync(this.words, this.index, LockState.Contended, remainingMs);
      if (result.async) await result.value;
    }
  }

  /** The holder only: releases the lock and wakes one sleeper if any announced itself. */
  unlock(): void {
    // Atomics.sub: release (seq-cst) the critical section's writes; the old value says whether
    // anyone may sleep on the slot.
    const old = Atomics.sub(this.words, this.index, 1);
    if (old === LockState.Locked) return;
    assert(old === LockState.Contended, 'unlock() of a SharedMutex that was not locked');
    // Atomics.store: Contended - 1 left Locked; the lock is free now.
    Atomics.store(this.words, this.index, LockState.Unlocked);
    // Atomics.notify: wake one sleeper; it re-announces Contended if others remain (step 4).
    Atomics.notify(this.words, this.index, 1);
  }

  /** For tests and assertions: the slot's LockState. */
  get state(): LockState {
    // Atomics.load: another thread writes the slot.
    return Atomics.load(this.words, this.index) as LockState;
  }
}

function timeoutError(timeoutMs: number): StemeError {
  return new StemeError('LEVEL_TIMEOUT', `timed out after ${timeoutMs} ms waiting for a shared-memory lock`);
}
