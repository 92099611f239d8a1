// The run plan shared by run.mjs and scale.mjs: every workload runs the engines alternately, each
// run in a fresh child process (bench/child.mjs) and a fresh directory, for N rounds.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENGINES } from './engines.mjs';
import { WORKLOADS } from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Checks engine and workload names; throws on an unknown one. */
export function checkNames(engines, workloads) {
  for (const e of engines) if (!ENGINES[e]) throw new Error(`unknown engine ${e}; known: ${Object.keys(ENGINES)}`);
  const known = Object.keys(WORKLOADS).filter((w) => !WORKLOADS[w].hidden);
  for (const w of workloads) if (!known.includes(w)) throw new Error(`unknown workload ${w}; known: ${known}`);
}

/**
 * How long one child may run before it is killed: 30 min, or 10 min per million keys when that is
 * more (a 10M-key fill or overwrite on a slow disk may take tens of minutes; a hung child should
 * still end the run eventually).
 */
export function defaultTimeoutMinutes(keys) {
  return Math.max(30, Math.ceil(keys / 1e6) * 10);
}

/** A one-line status on stderr, redrawn every second with the elapsed times; off unless stderr is a TTY. */
export function progressLine(started = performance.now()) {
  const tty = process.stderr.isTTY;
  let text = '';
  let since = performance.now();
  const draw = () => {
    if (!text) return;
    const s = (t) => Math.round((performance.now() - t) / 1000);
    process.stderr.write(`\r\x1b[K${text} · ${s(since)} s (total ${s(started)} s)`);
  };
  const timer = tty ? setInterval(draw, 1000) : null;
  timer?.unref();
  return {
    set(t) { text = t; since = performance.now(); if (tty) draw(); },
    /** Writes a whole line above the status line. */
    log(line) { process.stderr.write(tty ? `\r\x1b[K${line}\n` : `${line}\n`); if (tty) draw(); },
    end() { if (timer) clearInterval(timer); if (tty) process.stderr.write('\r\x1b[K'); text = ''; },
  };
}

let active = null; // the running child, killed if this process is interrupted

function child(spec, timeoutMs) {
  return new Promise((resolve, reject) => {
    active = execFile(process.execPath, [path.join(here, 'child.mjs'), JSON.stringify(spec)], { maxBuffer: 1 << 24, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      active = null;
      if (err) {
        const why = err.killed ? `killed after the ${Math.round(timeoutMs / 60_000)} min child timeout` : err.message;
        reject(new Error(`${spec.engine} ${spec.workload} (${spec.keys} keys) failed: ${why}\n${stderr.slice(-2000)}`));
      } else {
        try { resolve(JSON.parse(stdout.trim().split('\n').pop())); } catch (e) { reject(new Error(`${spec.engine} ${spec.workload}: bad child output: ${e.message}\n${stdout.slice(-500)}`)); }
      }
    });
  });
}

/**
 * Runs the plan and returns { results, failures, seconds }.
 * opts: keys, valueSize, engines, workloads, rounds, seed, dir (parent of the scratch directory),
 * maxOps (cap for capped workloads; 0 = none), timeoutMs, progress (from progressLine), label.
 *
 * Prefilled workloads start from a copy of a database built by `prefill` (one per engine and round).
 * A fillrandom-batch run builds exactly that database, so when it comes first its directory is kept
 * as the prefill instead of building another one.
 */
export async function runMatrix(opts) {
  const { keys, valueSize, engines, workloads, rounds, seed, maxOps = 0, progress, label = '' } = opts;
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMinutes(keys) * 60_000;
  const root = fs.mkdtempSync(path.join(opts.dir ?? os.tmpdir(), 'stemedb-bench-'));
  const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
  const onSignal = (sig) => { active?.kill('SIGKILL'); cleanup(); process.kill(process.pid, sig); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const base = { keys, valueSize, seed, ...(maxOps > 0 ? { maxOps } : {}) };
  const needsPrefill = workloads.some((w) => WORKLOADS[w].prefilled);
  const prefilled = new Map();
  const prefillDir = (engine, round) => path.join(root, `prefill-${engine}-${round}`);
  async function prefilledCopy(engine, round, dir, status) {
    const key = `${engine}-${round}`;
    if (!prefilled.has(key)) {
      progress?.set(`${status}: building its prefilled database`);
      await child({ ...base, engine, workload: 'prefill', dir: prefillDir(engine, round) }, timeoutMs);
      prefilled.set(key, prefillDir(engine, round));
    }
    fs.cpSync(prefilled.get(key), dir, { recursive: true });
  }

  const results = [];
  const failures = [];
  const total = workloads.length * rounds * engines.length;
  const started = performance.now();
  let done = 0;
  try {
    for (const workload of workloads) {
      for (let round = 0; round < rounds; round++) {
        // Rotate which engine goes first, so no engine always runs on the coolest (or hottest) machine.
        const order = engines.map((_, i) => engines[(i + round) % engines.length]);
        for (const engine of order) {
          const dir = path.join(root, `${workload}-${engine}-${round}`);
          let ok = false;
          const status = `${label}[${++done}/${total}] ${workload} ${engine} round ${round + 1}`;
          try {
            if (WORKLOADS[workload].prefilled) await prefilledCopy(engine, round, dir, status);
            progress?.set(status);
            results.push({ round, ...(await child({ ...base, engine, workload, dir }, timeoutMs)) });
            ok = true;
          } catch (e) {
            failures.push(String(e.message));
            (progress ? progress.log : (l) => process.stderr.write(`${l}\n`))(e.message);
          }
          if (ok && workload === 'fillrandom-batch' && needsPrefill && !prefilled.has(`${engine}-${round}`)) {
            fs.renameSync(dir, prefillDir(engine, round));
            prefilled.set(`${engine}-${round}`, prefillDir(engine, round));
          } else {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return { results, failures, seconds: (performance.now() - started) / 1000 };
}
