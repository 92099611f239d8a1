// The results chart, as SVG text: a grouped bar chart of median ops/s per workload and engine (log
// scale, min–max whiskers), and below it the latency distribution of each single-op workload
// (one panel per workload, one line per engine: latency against percentile, both log scale).
import { fmtNum } from './report.mjs';

const COLORS = ['#2f6fb0', '#d9822b', '#3a9a5b', '#8e5ea2', '#c0392b'];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const fmtMicros = (x) => (x >= 1e6 ? `${+(x / 1e6).toPrecision(3)} s` : x >= 1000 ? `${+(x / 1000).toPrecision(3)} ms` : `${+x.toPrecision(3)} µs`);

/** The bar chart: { width, height, body } with body drawn from (0, 0). */
function bars(summary, engines) {
  const workloads = Object.keys(summary);
  const barW = 16;
  const groupW = engines.length * barW + 24;
  const left = 60, top = 10, plotH = 300, bottom = 110, right = 40;
  const width = left + workloads.length * groupW + right;
  const height = top + plotH + bottom;
  const values = workloads.flatMap((w) => engines.map((e) => summary[w][e]?.opsPerSec).filter(Boolean));
  if (!values.length) return { width, height: 0, body: [] };
  const lo = Math.floor(Math.log10(Math.max(1, Math.min(...values.map((v) => v.min)))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values.map((v) => v.max)))));
  const y = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;

  const out = [];
  for (let p = lo; p <= hi; p++) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y(10 ** p)}" y2="${y(10 ** p)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(10 ** p) + 4}" text-anchor="end">${fmtNum(10 ** p)}</text>`);
  }
  out.push(`<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">ops/s (log)</text>`);
  workloads.forEach((w, wi) => {
    const x0 = left + wi * groupW + 12;
    engines.forEach((e, ei) => {
      const s = summary[w][e]?.opsPerSec;
      if (!s) return;
      const x = x0 + ei * barW;
      out.push(`<rect x="${x}" y="${y(s.median)}" width="${barW - 2}" height="${top + plotH - y(s.median)}" fill="${COLORS[ei % COLORS.length]}"><title>${esc(`${w} ${e}: ${fmtNum(s.median)} ops/s [${fmtNum(s.min)}–${fmtNum(s.max)}]`)}</title></rect>`,
        `<line x1="${x + barW / 2 - 1}" x2="${x + barW / 2 - 1}" y1="${y(s.min)}" y2="${y(s.max)}" stroke="black"/>`);
    });
    const cx = x0 + (engines.length * barW) / 2;
    out.push(`<text transform="translate(${cx} ${top + plotH + 10}) rotate(40)" text-anchor="start">${esc(w)}</text>`);
  });
  return { width, height, body: out };
}

/**
 * Latency panels for the workloads whose samples are single ops. x is the percentile on the
 * usual "nines" scale (-log10(1 - p): 0%, 90%, 99%, 99.9%, ...), y is latency (log). Quantiles
 * finer than the sample count resolves are dropped; the last point of each line is the maximum.
 */
function latencyPanels(summary, engines) {
  const workloads = Object.keys(summary).filter((w) => engines.some((e) => summary[w][e]?.latencyUnit === 'op' && summary[w][e].latencyQuantiles));
  if (!workloads.length) return { width: 0, height: 0, body: [] };
  const panelW = 300, panelH = 190, gapX = 70, gapY = 70, left = 60, top = 30, perRow = 3;
  const rowsN = Math.ceil(workloads.length / perRow);
  const width = left + Math.min(perRow, workloads.length) * (panelW + gapX);
  const height = top + rowsN * (panelH + gapY);
  const out = [`<text x="${left}" y="16" font-size="13">Latency distribution of the single-op workloads (median of rounds per percentile; µs, log)</text>`];

  workloads.forEach((w, wi) => {
    const px = left + (wi % perRow) * (panelW + gapX);
    const py = top + Math.floor(wi / perRow) * (panelH + gapY) + 14;
    const lines = engines.map((e, ei) => {
      const s = summary[w][e];
      if (!s?.latencyQuantiles) return null;
      const n = s.latencySamples ?? 1;
      const points = s.latencyQuantiles.filter(([p]) => (1 - p) * n >= 1).map(([p, v]) => [-Math.log10(1 - p), v, `p${+(100 * p).toFixed(2)}`]);
      if (s.maxMicros !== undefined) points.push([Math.log10(Math.max(n, 10)), s.maxMicros, 'max']);
      return { e, ei, points: points.filter(([, v]) => Number.isFinite(v) && v > 0) };
    }).filter(Boolean);
    const xs = lines.flatMap((l) => l.points.map(([x]) => x));
    const vs = lines.flatMap((l) => l.points.map(([, v]) => v));
    if (!vs.length) return;
    const xHi = Math.max(1, Math.ceil(Math.max(...xs)));
    const lo = Math.floor(Math.log10(Math.min(...vs)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...vs))));
    const X = (x) => px + (x / xHi) * panelW;
    const Y = (v) => py + panelH - ((Math.log10(v) - lo) / (hi - lo)) * panelH;
    out.push(`<text x="${px}" y="${py - 6}" font-size="12">${esc(w)}</text>`,
      `<rect x="${px}" y="${py}" width="${panelW}" height="${panelH}" fill="none" stroke="#bbb"/>`);
    for (let p = lo; p <= hi; p++) {
      out.push(`<line x1="${px}" x2="${px + panelW}" y1="${Y(10 ** p)}" y2="${Y(10 ** p)}" stroke="#eee"/>`,
        `<text x="${px - 4}" y="${Y(10 ** p) + 4}" text-anchor="end">${fmtMicros(10 ** p)}</text>`);
    }
    for (let x = 0; x <= xHi; x++) {
      const label = x === 0 ? '0%' : `${(100 - 100 / 10 ** x).toFixed(Math.max(0, x - 2))}%`;
      out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${py}" y2="${py + panelH}" stroke="#eee"/>`,
        `<text x="${X(x)}" y="${py + panelH + 14}" text-anchor="middle">${label}</text>`);
    }
    out.push(`<text x="${px + panelW / 2}" y="${py + panelH + 30}" text-anchor="middle" fill="#555">percentile</text>`);
    for (const { e, ei, points } of lines) {
      const color = COLORS[ei % COLORS.length];
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${points.map(([x, v]) => `${X(x).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}"><title>${esc(`${w} ${e}`)}</title></polyline>`);
      for (const [x, v, label] of points) {
        out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2" fill="${color}"><title>${esc(`${w} ${e}: ${label} ${fmtMicros(v)}`)}</title></circle>`);
      }
    }
  });
  return { width, height, body: out };
}

/** The whole chart: title, bars, latency panels, legend. */
export function chart(summary, engines, title) {
  const b = bars(summary, engines);
  const l = latencyPanels(summary, engines);
  const titleH = 30, legendH = 30;
  const width = Math.max(b.width, l.width, 420);
  const height = titleH + b.height + l.height + legendH;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="60" y="20" font-size="14">${esc(title)}</text>`,
    `<g transform="translate(0 ${titleH})">`, ...b.body, '</g>',
    `<g transform="translate(0 ${titleH + b.height})">`, ...l.body, '</g>'];
  engines.forEach((e, ei) => {
    const x = 60 + ei * 130;
    out.push(`<rect x="${x}" y="${height - 20}" width="10" height="10" fill="${COLORS[ei % COLORS.length]}"/>`,
      `<text x="${x + 14}" y="${height - 11}">${esc(e)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
