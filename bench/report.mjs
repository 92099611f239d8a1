// Statistics over rounds, the stdout tables (markdown, so docs can quote them) and the targets check.

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function spread(xs) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** results: per-run objects from child.mjs -> { [workload]: { [engine]: summary } } */
export function summarize(results) {
  const out = {};
  for (const r of results) ((out[r.workload] ??= {})[r.engine] ??= []).push(r);
  for (const [workload, byEngine] of Object.entries(out)) {
    for (const [engine, runs] of Object.entries(byEngine)) {
      const pick = (f) => runs.map(f).filter((x) => Number.isFinite(x));
      const s = { rounds: runs.length, ops: runs[0].ops, opsPerSec: spread(pick((r) => r.opsPerSec)) };
      for (const k of ['p50Micros', 'p99Micros', 'p999Micros', 'maxMicros', 'latencySamples', 'peakRssBytes', 'rssBeforeOpenBytes',
        'bytesWritten', 'bytesCancelled', 'diskBytes', 'openSeconds', 'closeSeconds']) {
        const xs = pick((r) => r[k]);
        if (xs.length) s[k] = median(xs);
      }
      // The latency distribution: each quantile's median over the rounds.
      const withQ = runs.filter((r) => r.latencyQuantiles);
      if (withQ.length) {
        s.latencyUnit = withQ[0].latencyUnit;
        s.latencyQuantiles = withQ[0].latencyQuantiles.map(([p], i) => [p, median(withQ.map((r) => r.latencyQuantiles[i][1]))]);
      }
      if (runs[0].userBytes > 0) s.writeAmp = median(runs.map((r) => r.bytesWritten / r.userBytes));
      const engineWa = pick((r) => r.engineStats?.writeAmplification);
      if (engineWa.length) s.engineWriteAmp = median(engineWa);
      byEngine[engine] = s;
    }
  }
  return out;
}

export function fmtNum(x) {
  if (!Number.isFinite(x)) return '–';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${Math.round(x / 1e3)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return `${Math.round(x)}`;
}
const fmtMicros = (x) => (x === undefined ? '' : x >= 1000 ? `${(x / 1000).toFixed(1)} ms` : `${x.toFixed(1)} µs`);
const fmtMB = (x) => (x === undefined ? '' : `${(x / 1e6).toFixed(1)}`);
const fmtSpread = (s) => `${fmtNum(s.median)} [${fmtNum(s.min)}–${fmtNum(s.max)}]`;

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Throughput table: median [min–max] ops/s per engine and StemeDB's ratio to each peer. */
export function throughputTable(summary, engines) {
  const peers = engines.filter((e) => e !== 'stemedb');
  const showRatio = engines.includes('stemedb');
  const header = ['workload', 'ops', ...engines.map((e) => `${e} ops/s`), ...(showRatio ? peers.map((p) => `stemedb ÷ ${p}`) : [])];
  const rows = Object.entries(summary).map(([workload, byEngine]) => {
    const any = Object.values(byEngine)[0];
    const cells = engines.map((e) => (byEngine[e] ? fmtSpread(byEngine[e].opsPerSec) : '–'));
    const ratios = showRatio ? peers.map((p) => ratioText(byEngine.stemedb?.opsPerSec.median, byEngine[p]?.opsPerSec.median)) : [];
    return [workload, fmtNum(any.ops), ...cells, ...ratios];
  });
  return table(header, rows);
}

function ratioText(a, b) {
  return a && b ? `${(a / b).toFixed(2)}×` : '–';
}

const UNIT_SHORT = { op: 'op', batch: 'batch', nextv: 'nextv' };

/**
 * Latency and resource medians per workload and engine. Latency is per op for the single-op
 * workloads, per db.batch of 1000 for the batched fills, per nextv(1000) for readseq. Peak RSS is
 * the child process's (all threads), with the harness's own share (RSS before open) beside it.
 */
export function detailTable(summary, engines) {
  const header = ['workload', 'engine', 'latency of', 'p50', 'p99', 'p99.9', 'peak RSS MB', 'RSS before open MB', 'written MB', 'write amp', 'on disk MB', 'close s'];
  const rows = [];
  for (const [workload, byEngine] of Object.entries(summary)) {
    for (const e of engines) {
      const s = byEngine[e];
      if (!s) continue;
      const wa = s.writeAmp === undefined ? '' : `${s.writeAmp.toFixed(2)}${s.engineWriteAmp ? ` (own ${s.engineWriteAmp.toFixed(2)})` : ''}`;
      rows.push([workload, e, UNIT_SHORT[s.latencyUnit] ?? '', fmtMicros(s.p50Micros), fmtMicros(s.p99Micros), fmtMicros(s.p999Micros),
        fmtMB(s.peakRssBytes), fmtMB(s.rssBeforeOpenBytes), fmtMB(s.bytesWritten), wa, fmtMB(s.diskBytes), s.closeSeconds === undefined ? '' : s.closeSeconds.toFixed(2)]);
    }
  }
  return table(header, rows);
}

/** 1000000 -> '1M', 200000 -> '200k'. */
export function fmtCount(n) {
  if (n >= 1e6 && n % 1e5 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 100 === 0) return `${n / 1e3}k`;
  return String(n);
}

/**
 * The scale table: per workload and engine, median ops/s at the small and the large key count and
 * large ÷ small (1.00× = no slowdown as the database grows), with p99 and peak RSS at both sizes.
 */
export function scaleTable(small, large, engines) {
  const a = fmtCount(small.keys), b = fmtCount(large.keys);
  const header = ['workload', 'engine', `ops @${a}`, `ops/s @${a}`, `ops @${b}`, `ops/s @${b}`, `${b} ÷ ${a}`, 'latency of', `p99 @${a}`, `p99 @${b}`, `peak RSS MB @${a}`, `peak RSS MB @${b}`];
  const rows = [];
  const workloads = [...new Set([...Object.keys(small.summary), ...Object.keys(large.summary)])];
  for (const w of workloads) {
    for (const e of engines) {
      const s = small.summary[w]?.[e], l = large.summary[w]?.[e];
      if (!s && !l) continue;
      rows.push([w, e, fmtNum(s?.ops), s ? fmtSpread(s.opsPerSec) : '–', fmtNum(l?.ops), l ? fmtSpread(l.opsPerSec) : '–',
        ratioText(l?.opsPerSec.median, s?.opsPerSec.median), UNIT_SHORT[(s ?? l).latencyUnit] ?? '', fmtMicros(s?.p99Micros), fmtMicros(l?.p99Micros), fmtMB(s?.peakRssBytes), fmtMB(l?.peakRssBytes)]);
    }
  }
  return table(header, rows);
}

/** Rows for the scale JSON: the same comparison, as numbers. */
export function scaleRows(small, large, engines) {
  const out = [];
  for (const w of new Set([...Object.keys(small.summary), ...Object.keys(large.summary)])) {
    for (const e of engines) {
      const s = small.summary[w]?.[e], l = large.summary[w]?.[e];
      if (!s && !l) continue;
      out.push({ workload: w, engine: e, smallKeys: small.keys, largeKeys: large.keys,
        smallOpsPerSec: s?.opsPerSec.median, largeOpsPerSec: l?.opsPerSec.median,
        ratio: s && l ? l.opsPerSec.median / s.opsPerSec.median : undefined });
    }
  }
  return out;
}

// The benchmark issue's targets (defined for 1M keys, median of 3). ratio = StemeDB / peer.
const TARGETS = [
  { what: 'fillrandom-batch ops/s', workload: 'fillrandom-batch', peer: 'classic-level', min: 1.5 },
  { what: 'fillrandom-concurrent ops/s', workload: 'fillrandom-concurrent', peer: 'classic-level', min: 2 },
  { what: 'fillsync-concurrent ops/s', workload: 'fillsync-concurrent', peer: 'lmdb', min: 1.5 },
  { what: 'readrandom-sync ops/s', workload: 'readrandom-sync', peer: 'lmdb', min: 1 },
  { what: 'readrandom-async ops/s', workload: 'readrandom-async', peer: 'classic-level', min: 3 },
  { what: 'readseq ops/s', workload: 'readseq', peer: 'lmdb', min: 1 },
  { what: 'on-disk size after fillrandom-batch', workload: 'fillrandom-batch', peer: 'classic-level', max: 1, field: (s) => s.diskBytes },
  { what: 'peak RSS, fillrandom-batch', workload: 'fillrandom-batch', peer: 'classic-level', max: 1.5, field: (s) => s.peakRssBytes },
  { what: 'write amp (bytes written ÷ user bytes), fillrandom-batch', workload: 'fillrandom-batch', peer: 'classic-level', max: 1, field: (s) => s.writeAmp },
  { what: 'write amp, overwrite', workload: 'overwrite', peer: 'classic-level', max: 1, field: (s) => s.writeAmp },
];

export function targets(summary) {
  return TARGETS.flatMap((t) => {
    const mine = summary[t.workload]?.stemedb;
    const peer = summary[t.workload]?.[t.peer];
    if (!mine || !peer) return [];
    const field = t.field ?? ((s) => s.opsPerSec.median);
    const ratio = field(mine) / field(peer);
    const holds = t.min !== undefined ? ratio >= t.min : ratio <= t.max;
    return [{ what: t.what, peer: t.peer, target: t.min !== undefined ? `≥ ${t.min}×` : `≤ ${t.max}×`, ratio, holds }];
  });
}

export function targetsTable(rows) {
  return table(['target', 'vs', 'wanted', 'measured', 'holds'], rows.map((r) => [r.what, r.peer, r.target, `${r.ratio.toFixed(2)}×`, r.holds ? 'yes' : 'NO']));
}
