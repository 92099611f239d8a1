// Threads: WAL worker. The database LOCK file.
//
// Node has no flock(), so the lock is a file created with O_EXCL holding
// "pid threadId bootId". A LOCK left by a dead process (SIGKILL), by an earlier boot (after a
// power cut the pid may belong to an unrelated process now), or torn (it does not parse) is
// stale and is taken over; a LOCK held by a live process of this boot, or by another thread of
// this process, refuses the open with LEVEL_LOCKED.
// This is advisory: two processes racing through the stale-takeover path at the same
// instant could both win; the window is one unlink+create.

import { StemeError } from '../../common/errors.js';
import { fileSystem, writeAllSync } from '../../common/fs.js';
import { lockFile } from '../../common/files.js';
import { sleepWorker } from '../../shm/signals.js';

/**
 * A LOCK that does not parse may be one another thread or process has just created and not yet
 * written (create and write are two steps). Re-read it this often, this many times, before
 * calling it torn and stale. Found by the two-worker race test: the loser read the winner's
 * empty LOCK, took it over, and both went on to create the database.
 */
const UNWRITTEN_LOCK_RETRY_MS = 5;
const UNWRITTEN_LOCK_RETRIES = 100;

let cachedBootId: string | undefined;

/** Linux's per-boot id; empty where it is unavailable (then only the pid decides). */
function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fileSystem().readFileSync('/proc/sys/kernel/random/boot_id').toString('utf8').trim();
    } catch {
      cachedBootId = '';
    }
  }
  return cachedBootId;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireLock(location: string, ownerThreadId: number, heldHere: Set<string>): void {
  const fs = fileSystem();
  const file = lockFile(location);
  if (heldHere.has(file)) throw new StemeError('LEVEL_LOCKED', `${location} is already open in this thread`);
  const me = `${process.pid} ${ownerThreadId} ${bootId()}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try { writeAllSync(fd, Buffer.from(me), 0); } finally { fs.closeSync(fd); }
      heldHere.add(file);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const readHolder = (): string => {
      try { return fs.readFileSync(file).toString('utf8'); } catch { return ''; /* vanished: retry */ }
    };
    let holder = readHolder();
    for (let i = 0; i < UNWRITTEN_LOCK_RETRIES && !holder.endsWith('\n') && fs.existsSync(file); i++) {
      sleepWorker(UNWRITTEN_LOCK_RETRY_MS);
      holder = readHolder();
    }
    const [pidText, threadText, holderBoot] = holder.trim().split(' ');
    const pid = Number(pidText);
    const sameBoot = holderBoot === undefined ? bootId() === '' : holderBoot === bootId();
    const live = sameBoot && Number.isInteger(pid) && pid > 0 && threadText !== undefined && isAlive(pid);
    const sameProcessOtherThread = live && pid === process.pid && Number(threadText) !== ownerThreadId;
    if (holder && (live && pid !== process.pid || sameProcessOtherThread)) {
      throw new StemeError('LEVEL_LOCKED', `${location} is locked by pid ${pid}${sameProcessOtherThread ? ` thread ${threadText}` : ''}`);
    }
    // Stale: the holder died (or is this very thread after a lost close). Take it over.
    try { fs.unlinkSync(file); } catch { /* raced with another taker; the retry decides */ }
  }
  throw new StemeError('LEVEL_LOCKED', `${location} is locked`);
}

export function releaseLock(location: string, heldHere: Set<string>): void {
  const file = lockFile(location);
  heldHere.delete(file);
  try { fileSystem().unlinkSync(file); } catch { /* already gone */ }
}
