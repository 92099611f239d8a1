// A grouped bar chart of median ops/s per workload and engine (log scale, min–max whiskers), as SVG text.
import { fmtNum } from './report.mjs';

const COLORS = ['#2f6fb0', '#d9822b', '#3a9a5b', '#8e5ea2', '#c0392b'];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

export function chart(summary, engines, title) {
  const workloads = Object.keys(summary);
  const barW = 16;
  const groupW = engines.length * barW + 24;
  const left = 60, top = 40, plotH = 300, bottom = 140, right = 110;
  const width = left + workloads.length * groupW + right;
  const height = top + plotH + bottom;
  const values = workloads.flatMap((w) => engines.map((e) => summary[w][e]?.opsPerSec).filter(Boolean));
  const lo = Math.floor(Math.log10(Math.max(1, Math.min(...values.map((v) => v.min)))));
  const hi = Math.ceil(Math.log10(Math.max(...values.map((v) => v.max))));
  const y = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;

  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(title)}</text>`];
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
  engines.forEach((e, ei) => {
    const x = left + ei * 130;
    out.push(`<rect x="${x}" y="${height - 18}" width="10" height="10" fill="${COLORS[ei % COLORS.length]}"/>`,
      `<text x="${x + 14}" y="${height - 9}">${esc(e)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
