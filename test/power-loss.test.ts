// Power loss: a writer process journals what every one of its threads made durable
// (src/common/power-loss-fs.ts), is SIGKILLed at a random moment, and the parent rebuilds the
// directory a machine would find after losing power at that moment: only synced bytes, only
// directory entries made durable by a directory fsync (plus, in some cycles, a random part of
// the unsynced bytes and entry changes, as real file systems write back on their own). The
// parent opens that image with the ordinary file system and checks:
//   1. every acknowledged sync write survived;
//   2. the database holds exactly the state after some prefix of the issued writes (no holes,
//      no half batches), at least up to the last acknowledged sync write.
// Cycles chain: the next writer opens (recovers) the previous image, so power loss during
// recovery, during flushes and compactions and between group commits is all covered. A cycle
// can also start with plain process crashes (the next writer recovers from the page cache)
// before its power cut: see EXERCISE.
//
// Writer: test/fixtures/power-loss-writer.mjs; ops: test/fixtures/power-loss-ops.mjs.
// Replay a run with STEMEDB_POWER_LOSS_SEED=<seed>; more cycles with STEMEDB_POWER_LOSS_CYCLES.
// A failing run keeps its directories and prints where they are.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { simulatePowerLoss, type DataLoss, type DirLoss, type PowerLossReport } from '../dist/common/power-loss-fs.js';
import { rng, seedFromEnv } from './helpers/tmp.js';
// @ts-ignore plain ESM fixture shared with the writer child
import { applyOp, opStream, subSeed } from './fixtures/power-loss-ops.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const WRITER = path.join(here, 'fixtures', 'power-loss-writer.mjs');
const STEPS = path.join(here, 'fixtures', 'power-loss-steps.mjs');
const CYCLES = Number(process.env.STEMEDB_POWER_LOSS_CYCLES ?? 12);
const WRITE_BUFFER = 64 * 1024;

// Harsher scenarios, on by default since their engine fixes landed (regression tests for each
// are at the end of this file). STEMEDB_POWER_LOSS_EXERCISE=none turns them off to isolate the
// basic model.
const OFF = process.env.STEMEDB_POWER_LOSS_EXERCISE === 'none';
const EXERCISE = {
  /** Data loss mode 'pages': unsynced pages written back out of order (regression 3). */
  pagesWriteback: !OFF,
  /** Process crashes before the power cut, so recovery replays unsynced WAL bytes (regression 2). */
  crashesBeforePowerLoss: !OFF,
};

type State = Map<string, string>;
interface Op { index: number; sync: boolean; kind: string; entries: { key: string; value: string | undefined }[] }

interface WriterRun { opened: boolean; issued: number; acked: Set<number>; errors: string[] }

function collect(child: ReturnType<typeof spawn>, onLine: (out: string) => void): Promise<{ out: string; err: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (c: string) => { out += c; onLine(out); });
    child.stderr!.on('data', (c: string) => { err += c; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ out, err, code, signal }));
  });
}

const trackedEnv = (dir: string, shadow: string) => ({ ...process.env, STEMEDB_FAULTS: '', STEMEDB_POWER_LOSS: JSON.stringify({ root: dir, shadow }) });

/** Runs the writer and SIGKILLs it killAfterMs after it starts opening the database (its 'O' line). */
async function runWriter(dir: string, shadow: string, seed: number, stream: number, killAfterMs: number): Promise<WriterRun> {
  const child = spawn(process.execPath, [WRITER, dir, String(seed), String(stream), String(WRITE_BUFFER)], { env: trackedEnv(dir, shadow), stdio: ['ignore', 'pipe', 'pipe'] });
  let timer: NodeJS.Timeout | undefined;
  // Backstop: a writer that never reaches open() is killed anyway (and reported by its output).
  const backstop = setTimeout(() => child.kill('SIGKILL'), 20_000 + killAfterMs);
  const { out, err, code, signal } = await collect(child, (o) => {
    if (!timer && (o.startsWith('O\n') || o.includes('\nO\n'))) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  });
  clearTimeout(timer);
  clearTimeout(backstop);
  const lines = out.split('\n').filter((l) => l.length > 0);
  const errors = lines.filter((l) => l.startsWith('E '));
  if (signal !== 'SIGKILL') errors.push(`writer exited by itself (code ${code}, signal ${signal}): ${err.slice(-2000)}`);
  let issued = 0;
  const acked = new Set<number>();
  for (const l of lines) {
    if (l.startsWith('I ')) issued = Math.max(issued, Number(l.slice(2)) + 1);
    else if (l.startsWith('A ')) acked.add(Number(l.slice(2)));
  }
  return { opened: lines.includes('R'), issued, acked, errors };
}

/** Opens a copy of dir with the ordinary file system (the original stays as it is) and reads everything. */
async function readAll(dir: string): Promise<State> {
  const copy = `${dir}.opened`;
  fs.rmSync(copy, { recursive: true, force: true });
  fs.cpSync(dir, copy, { recursive: true });
  try {
    const db = new StemeDB(copy, { writeBufferSize: WRITE_BUFFER });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: Error }).cause;
      throw new Error(`${(e as Error).message}${cause ? `: ${(cause as { code?: string }).code} ${cause.message}` : ''}`);
    }
    try {
      const state: State = new Map();
      for (const [k, v] of await db.iterator().all()) state.set(String(k), String(v));
      return state;
    } finally {
      await db.close();
    }
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
}

interface Check {
  /** Prefix lengths of the history that give the recovered state. */
  matches: number[];
  lostSyncWrites: string[];
  closest: { prefix: number; differences: string[] };
}

/**
 * Compares the recovered state with start + every prefix of history, in O(entries).
 * ackedSync: history positions of acknowledged sync ops.
 */
function checkPrefixes(start: State, history: Op[], recovered: State, ackedSync: number[]): Check {
  const model: State = new Map(start);
  const differs = (k: string) => model.get(k) !== recovered.get(k);
  let diff = 0;
  for (const k of new Set([...model.keys(), ...recovered.keys()])) if (differs(k)) diff++;
  const matches: number[] = [];
  let best = { prefix: 0, diff };
  if (diff === 0) matches.push(0);
  for (let i = 0; i < history.length; i++) {
    for (const { key } of history[i].entries) diff -= differs(key) ? 1 : 0;
    applyOp(model, history[i]);
    for (const { key } of history[i].entries) diff += differs(key) ? 1 : 0;
    if (diff === 0) matches.push(i + 1);
    if (diff < best.diff) best = { prefix: i + 1, diff };
  }
  // Check 1 on its own: an acknowledged sync write's value is there unless a later op touched the key.
  const lastTouch = new Map<string, number>();
  history.forEach((op, i) => op.entries.forEach((e) => lastTouch.set(e.key, i)));
  const lostSyncWrites: string[] = [];
  for (const j of ackedSync) {
    for (const { key, value } of history[j].entries) {
      if (lastTouch.get(key) === j && recovered.get(key) !== value) {
        lostSyncWrites.push(`history op ${j} ${value === undefined ? 'del' : 'put'} ${key}: recovered ${JSON.stringify(recovered.get(key)?.slice(0, 40))}`);
      }
    }
  }
  const closestModel: State = new Map(start);
  for (let i = 0; i < best.prefix; i++) applyOp(closestModel, history[i]);
  const differences: string[] = [];
  for (const k of new Set([...closestModel.keys(), ...recovered.keys()])) {
    if (closestModel.get(k) !== recovered.get(k)) {
      differences.push(`${k}: expected ${JSON.stringify(closestModel.get(k)?.slice(0, 40))}, recovered ${JSON.stringify(recovered.get(k)?.slice(0, 40))}`);
    }
  }
  return { matches, lostSyncWrites, closest: { prefix: best.prefix, differences: differences.slice(0, 20) } };
}

async function createEmptyDatabase(location: string): Promise<void> {
  const db = new StemeDB(location, { writeBufferSize: WRITE_BUFFER });
  await db.open();
  await db.close();
}

/**
 * A LOCK cut short by the power loss can name a live process (pid "1"), and the engine then
 * refuses to open with LEVEL_LOCKED: an availability issue with its own regression test (regression 4),
 * not a durability one. Such a LOCK is removed so that it does not mask the durability checks.
 */
function removeTornLock(image: string, report: PowerLossReport): void {
  const lock = path.join(image, 'LOCK');
  if (fs.existsSync(lock) && fs.statSync(lock).size > 0 && !/^\d+ \d+\n$/.test(fs.readFileSync(lock, 'utf8'))) {
    report.lines.push(`LOCK: torn (${JSON.stringify(fs.readFileSync(lock, 'utf8'))}), removed by the test`);
    fs.rmSync(lock);
  }
}

describe('power loss', () => {
  it(`keeps every acknowledged sync write and a prefix of the history over ${CYCLES} power cuts`, async () => {
    const seed = seedFromEnv('STEMEDB_POWER_LOSS_SEED');
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-power-loss-'));
    const say = (line: string) => console.log(line);
    let failed = true;
    try {
      // The starting image: a database created and closed normally, so durable as a whole.
      // (Creating a database right before a power cut has its own regression test, regression 1.)
      let image = path.join(work, 'image-0');
      fs.mkdirSync(image);
      await createEmptyDatabase(image);
      let state: State = new Map();
      const totals = { issued: 0, ackedSync: 0, aboveLastSync: 0, killedInOpen: 0, crashes: 0 };
      const dataModes: DataLoss[] = EXERCISE.pagesWriteback ? ['synced', 'tail', 'pages'] : ['synced', 'tail'];
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        const random = rng(subSeed(seed, cycle, 'loss'));
        const data = dataModes[Math.floor(random() * dataModes.length)];
        const dirs: DirLoss = random() < 0.5 ? 'synced' : 'prefix';
        const runs = EXERCISE.crashesBeforePowerLoss && random() < 0.4 ? 2 + Math.floor(random() * 2) : 1;
        const live = path.join(work, `live-${cycle}`);
        const shadow = path.join(work, `shadow-${cycle}`);
        const next = path.join(work, `image-${cycle}`);
        fs.cpSync(image, live, { recursive: true });
        fs.mkdirSync(shadow);

        // The history since the last power cut: what each writer got into its WAL, in order.
        const history: Op[] = [];
        const ackedSync: number[] = [];
        let required = 0;
        let where = '';
        for (let run = 1; run <= runs; run++) {
          const stream = cycle * 10 + run;
          // A quarter of the kills land in open() and recovery (~200 ms), the rest mid-workload.
          const killAfterMs = random() < 0.25 ? Math.floor(random() * 250) : 250 + Math.floor(random() * 1750);
          where = `seed ${seed} cycle ${cycle} run ${run}/${runs} (data ${data}, dirs ${dirs}, killed ${killAfterMs} ms after open() began)`;
          const result = await runWriter(live, shadow, seed, stream, killAfterMs);
          expect(result.errors, `${where}: the writer failed:\n${result.errors.join('\n')}\nkept in ${work}`).toEqual([]);
          totals.killedInOpen += result.opened ? 0 : 1;
          totals.issued += result.issued;
          const nextOp = opStream(seed, stream);
          const offset = history.length;
          for (let i = 0; i < result.issued; i++) history.push(nextOp());
          for (const i of [...result.acked].sort((a, b) => a - b)) {
            if (history[offset + i].sync) { ackedSync.push(offset + i); required = Math.max(required, offset + i + 1); }
          }
          if (run === runs) break;

          // A process crash only: everything acknowledged must be there (page cache), and the
          // next writer goes on from exactly this state, so the history keeps only that prefix.
          totals.crashes++;
          const recovered = await readAll(live);
          const check = checkPrefixes(state, history, recovered, ackedSync);
          const crashRequired = Math.max(offset + Math.max(-1, ...result.acked) + 1, offset);
          const good = check.matches.filter((p) => p >= crashRequired);
          say(`power-loss ${where}: process crash only, issued ${result.issued}, acked ${result.acked.size}; recovered prefix ${check.matches.join('|').slice(0, 40) || 'none'}`);
          expect(good.length, `${where}: after a process crash the state is not a prefix of the history at or past every acknowledged write (${crashRequired})`
            + `\nclosest prefix ${check.closest.prefix} differs in:\n${check.closest.differences.join('\n')}\nkept in ${work}`).toBeGreaterThan(0);
          history.length = good[good.length - 1];
        }

        // The power cut.
        const report = simulatePowerLoss({ shadow, root: live, baseline: image, out: next, data, dirs, random });
        removeTornLock(next, report);
        const detail = (check?: Check) => (check ? `\nclosest prefix ${check.closest.prefix} differs in:\n${check.closest.differences.join('\n')}` : '')
          + `\nimage decisions:\n${report.lines.slice(0, 80).join('\n')}\nkept in ${work}`;
        let recovered: State;
        try {
          recovered = await readAll(next);
        } catch (e) {
          throw new Error(`${where}: the power-loss image does not open: ${(e as Error).message}${detail()}`);
        }
        const check = checkPrefixes(state, history, recovered, ackedSync);
        const good = check.matches.filter((p) => p >= required);
        say(`power-loss ${where}: history ${history.length} ops (${ackedSync.length} acked sync, the last at ${required - 1}); `
          + `journal ${report.events} events; image ${report.files} files, ${report.entriesLost} live entries lost, ${report.filesCut} files cut; `
          + `recovered ${recovered.size} keys = prefix ${check.matches.join('|').slice(0, 40) || 'none'}`);
        expect(check.lostSyncWrites, `${where}: acknowledged sync writes lost:\n${check.lostSyncWrites.slice(0, 20).join('\n')}${detail(check)}`).toEqual([]);
        expect(check.matches.length, `${where}: the recovered state is not the state after any prefix of the history${detail(check)}`).toBeGreaterThan(0);
        expect(good.length, `${where}: recovered prefix ${check.matches.join(',')} ends before the last acknowledged sync op (${required})${detail(check)}`).toBeGreaterThan(0);

        totals.ackedSync += ackedSync.length;
        if (good.some((p) => p > required)) totals.aboveLastSync++;
        state = recovered;
        for (const d of [live, shadow, image]) fs.rmSync(d, { recursive: true, force: true });
        image = next;
      }
      say(`power-loss seed ${seed}: ${CYCLES} power cuts, ${totals.crashes} process crashes before them, ${totals.issued} ops issued, `
        + `${totals.ackedSync} acknowledged sync ops checked, ${totals.killedInOpen} kills during open(), ${totals.aboveLastSync} cuts kept unsynced writes`);
      expect(totals.ackedSync).toBeGreaterThan(0);
      failed = false;
    } finally {
      if (!failed) fs.rmSync(work, { recursive: true, force: true });
      else console.log(`power-loss: seed ${seed}; directories kept in ${work}`);
    }
  }, 240_000);
});

// ---- regressions ----
//
// Deterministic repros of the engine bugs the randomized test above found, now asserting the
// fixed behaviour.

const knownRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-power-loss-known-'));
afterAll(() => fs.rmSync(knownRoot, { recursive: true, force: true }));
let knownCount = 0;

/** Runs scripted steps under the power-loss journal; the process SIGKILLs itself after the last one. */
async function runSteps(dir: string, shadow: string, steps: unknown[]): Promise<void> {
  const child = spawn(process.execPath, [STEPS, dir, JSON.stringify(steps)], { env: trackedEnv(dir, shadow), stdio: ['ignore', 'pipe', 'pipe'] });
  const { out, err, signal } = await collect(child, () => {});
  const acked = out.split('\n').filter((l) => l.startsWith('A ')).length;
  if (signal !== 'SIGKILL' || acked !== steps.length) throw new Error(`steps writer: ${acked}/${steps.length} acked, signal ${signal}: ${out.slice(-2000)} ${err.slice(-2000)}`);
}

function knownCase(empty = false): Promise<{ baseline: string; live: string; shadow: string; image: string }> {
  const dir = path.join(knownRoot, `case-${knownCount++}`);
  const baseline = path.join(dir, 'baseline');
  const live = path.join(dir, 'live');
  const shadow = path.join(dir, 'shadow');
  fs.mkdirSync(baseline, { recursive: true });
  fs.mkdirSync(shadow);
  const ready = empty ? Promise.resolve() : createEmptyDatabase(baseline);
  return ready.then(() => {
    fs.cpSync(baseline, live, { recursive: true });
    return { baseline, live, shadow, image: path.join(dir, 'image') };
  });
}

const put = (key: string, value: string, sync = false) => ({ put: [key, value], sync });

describe('power loss: regressions', () => {
  it('regression 1: a database created just before the power cut keeps its acknowledged sync writes', async () => {
    // Bug: WalDatabase.open() created <location>/wal and <location>/kv but never fsynced
    // <location>, so after the cut the database was empty. It now fsyncs the directories.
    const c = await knownCase(true);
    await runSteps(c.live, c.shadow, [put('a', '1', true), put('b', '2', true)]);
    simulatePowerLoss({ shadow: c.shadow, root: c.live, out: c.image, data: 'synced', dirs: 'synced', random: Math.random });
    expect(Object.fromEntries(await readAll(c.image))).toEqual({ a: '1', b: '2' });
  });

  it('regression 2: writes recovered from the WAL after a process crash are durable before a later sync write is acknowledged', async () => {
    // The first process writes without sync and dies (a process crash: the bytes are in the
    // page cache). The second recovers them and acknowledges a sync write in a new segment.
    // Bug: the recovered segment was never synced, so a power cut lost a..c but kept d.
    // Recovery now fdatasyncs every replayed segment before starting the new one.
    const c = await knownCase();
    await runSteps(c.live, c.shadow, [put('a', '1'), put('b', '2'), put('c', '3')]);
    await runSteps(c.live, c.shadow, [put('d', '4', true)]);
    simulatePowerLoss({ shadow: c.shadow, root: c.live, baseline: c.baseline, out: c.image, data: 'synced', dirs: 'synced', random: Math.random });
    expect(Object.fromEntries(await readAll(c.image))).toEqual({ a: '1', b: '2', c: '3', d: '4' });
  });

  it('regression 3: a WAL tail written back out of order (a zeroed page before unsynced data) does not stop the database from opening', async () => {
    // The unsynced end of the newest segment may reach the disk in any order: here the page
    // after the synced prefix is zeros and the next one holds records. Bug: recovery called
    // that mid-segment corruption and open failed with LEVEL_CORRUPTION. A page of zeros in a
    // bad record now reads as a torn write-back, and the log ends there.
    const c = await knownCase();
    const big = 'x'.repeat(3000);
    await runSteps(c.live, c.shadow, [put('a', '1', true), put('b', big), put('c', big), put('d', big), put('e', big)]);
    // Keep every unsynced byte, then zero the page that follows the synced prefix of the newest segment.
    simulatePowerLoss({ shadow: c.shadow, root: c.live, baseline: c.baseline, out: c.image, data: 'tail', dirs: 'synced', random: () => 0.999999 });
    const syncs = fs.readFileSync(path.join(c.shadow, 'journal'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((e) => e.t === 'sync' && /^wal\/segment\.\d+\.wal$/.test(e.p));
    const last = syncs[syncs.length - 1];
    const segment = path.join(c.image, last.p);
    const bytes = fs.readFileSync(segment);
    expect(bytes.length).toBeGreaterThan(last.n + 8192);
    bytes.fill(0, last.n, (Math.floor(last.n / 4096) + 1) * 4096);
    fs.writeFileSync(segment, bytes);
    expect((await readAll(c.image)).get('a')).toBe('1');
  });

  it('regression 4: a LOCK left before the power cut does not block open when its pid now belongs to another process', async () => {
    // After a reboot the pid in LOCK names whatever process has it now. Bug: that counted as a
    // live holder (LEVEL_LOCKED until someone deleted LOCK). LOCK now records the boot id, and
    // a LOCK from another boot, or one that does not parse, is stale.
    const c = await knownCase();
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(c.live, 'LOCK'), `${other.pid} 0\n`);
      const db = new StemeDB(c.live, { writeBufferSize: WRITE_BUFFER });
      await db.open();
      await db.close();
      fs.writeFileSync(path.join(c.live, 'LOCK'), `${other.pid} 0 another-boot-id\n`);
      const otherBoot = new StemeDB(c.live, { writeBufferSize: WRITE_BUFFER });
      await otherBoot.open();
      await otherBoot.close();
      fs.writeFileSync(path.join(c.live, 'LOCK'), '1');
      const torn = new StemeDB(c.live, { writeBufferSize: WRITE_BUFFER });
      await torn.open();
      await torn.close();
    } finally {
      other.kill('SIGKILL');
    }
  });
});
