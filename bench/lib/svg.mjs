// Hand-rolled SVG charts (grouped bars, lines): no chart dependency, deterministic output.

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#8cd17d',
  '#e15759',
  '#ff9d9a',
  '#b07aa1',
  '#76b7b2',
  '#edc948',
];
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(text) {
  return String(text).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );
}

/** A round tick step (1, 2, 2.5 or 5 × 10^k) giving at most `ticks` steps up to `value`. */
function tickStep(value, ticks = 5) {
  const raw = Math.max(value, 1) / ticks;
  const exp = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= raw) return m * exp;
  return 10 * exp;
}

function shortNumber(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v));
}

/** Pushes a chart's centred title and subtitle lines; returns the baseline of the last one. */
function titleBlock(parts, width, title, subtitle) {
  let y = 34;
  parts.push(
    `<text x="${width / 2}" y="${y}" text-anchor="middle" font-size="19" font-weight="600">${esc(title)}</text>`,
  );
  for (const line of subtitle) {
    y += 19;
    parts.push(
      `<text x="${width / 2}" y="${y}" text-anchor="middle" font-size="12.5" fill="#555">${esc(line)}</text>`,
    );
  }
  return y;
}

/**
 * @param {object} chart
 * @param {string} chart.title
 * @param {string[]} chart.subtitle  lines under the title (machine, date, mode)
 * @param {{ title: string, unit: string, series: { key: string, label: string, color?: string }[],
 *           groups: { label: string, values: Record<string, number> }[],
 *           references?: { label: string, value: number }[] }[]} chart.panels
 * @returns {string} an SVG document
 */
export function renderBarChart({ title, subtitle = [], panels }) {
  const width = 980;
  const margin = { left: 80, right: 215 };
  const plotWidth = width - margin.left - margin.right;
  const parts = [];
  let y = titleBlock(parts, width, title, subtitle);
  y += 16;

  for (const panel of panels) {
    const plotHeight = 300;
    y += 26;
    parts.push(
      `<text x="${margin.left}" y="${y}" font-size="15" font-weight="600">${esc(panel.title)}</text>`,
    );
    y += 14;
    const top = y;
    const bottom = top + plotHeight;
    const refs = panel.references ?? [];
    const all = [
      ...panel.groups.flatMap((g) => Object.values(g.values)),
      ...refs.map((r) => r.value),
    ].filter(Number.isFinite);
    const step = tickStep(Math.max(1, ...all) * 1.08);
    const steps = Math.ceil((Math.max(1, ...all) * 1.08) / step);
    const yMax = step * steps;
    const yOf = (v) => bottom - (v / yMax) * plotHeight;

    // grid and axis
    for (let i = 0; i <= steps; i++) {
      const v = step * i;
      const gy = yOf(v);
      parts.push(
        `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${gy}" y2="${gy}" stroke="${i ? '#e5e5e5' : '#333'}"/>`,
      );
      parts.push(
        `<text x="${margin.left - 8}" y="${gy + 4}" text-anchor="end" font-size="11" fill="#444">${shortNumber(v)}</text>`,
      );
    }
    parts.push(
      `<text transform="translate(${margin.left - 56} ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#444">${esc(panel.unit)}</text>`,
    );

    // bars
    const groupWidth = plotWidth / panel.groups.length;
    const n = panel.series.length;
    const barWidth = Math.min(46, (groupWidth * 0.8) / n);
    panel.groups.forEach((group, gi) => {
      const x0 = margin.left + gi * groupWidth + (groupWidth - barWidth * n) / 2;
      panel.series.forEach((s, si) => {
        const v = group.values[s.key];
        const x = x0 + si * barWidth;
        if (!Number.isFinite(v)) return;
        const by = yOf(v);
        parts.push(
          `<rect x="${x + 2}" y="${by}" width="${barWidth - 4}" height="${bottom - by}" fill="${s.color ?? PALETTE[si % PALETTE.length]}"><title>${esc(`${s.label} — ${group.label}: ${Math.round(v)} ${panel.unit}`)}</title></rect>`,
        );
        parts.push(
          `<text x="${x + barWidth / 2}" y="${by - 4}" text-anchor="middle" font-size="10.5" fill="#222">${shortNumber(v)}</text>`,
        );
      });
      parts.push(
        `<text x="${margin.left + gi * groupWidth + groupWidth / 2}" y="${bottom + 18}" text-anchor="middle" font-size="12.5">${esc(group.label)}</text>`,
      );
    });

    // reference lines (e.g. the pgbench ceiling)
    // Labels sit right of the plot, pushed apart when lines are close.
    let lastLabelY = -Infinity;
    [...refs]
      .filter((ref) => Number.isFinite(ref.value))
      .sort((p, q) => q.value - p.value)
      .forEach((ref) => {
        const ry = yOf(ref.value);
        const ty = Math.max(ry + 4, lastLabelY + 13);
        lastLabelY = ty;
        parts.push(
          `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${ry}" y2="${ry}" stroke="#333" stroke-dasharray="6 4"/>`,
        );
        parts.push(
          `<text x="${margin.left + plotWidth + 6}" y="${ty}" font-size="11" fill="#333">${esc(`${ref.label}: ${shortNumber(ref.value)}`)}</text>`,
        );
      });

    // legend
    let ly = bottom + 40;
    // Two columns unless a label would run into the next one (~6.7 px per character at 12 px).
    const columnWidth = plotWidth / 2 + 60;
    const widest = Math.max(...panel.series.map((s) => s.label.length));
    const perRow = 18 + widest * 6.7 < columnWidth ? 2 : 1;
    panel.series.forEach((s, si) => {
      const col = si % perRow;
      if (si && col === 0) ly += 18;
      const lx = margin.left + col * columnWidth;
      parts.push(
        `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color ?? PALETTE[si % PALETTE.length]}"/>`,
      );
      parts.push(`<text x="${lx + 18}" y="${ly}" font-size="12">${esc(s.label)}</text>`);
    });
    y = ly + 12;
  }

  const height = Math.ceil(y + 16);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/**
 * A line chart over a numeric x axis (one line per series, a labelled dot per point): the
 * server memory curve of the `affinity` suite.
 *
 * @param {object} chart
 * @param {string} chart.title
 * @param {string[]} [chart.subtitle]  lines under the title (machine, date, mode)
 * @param {string} chart.xLabel
 * @param {string} chart.yLabel
 * @param {{ key: string, label: string, color?: string, dashed?: boolean,
 *           markersOnly?: boolean, labels?: 'all' | 'last',
 *           points: { x: number, y: number }[] }[]} chart.series
 *   `markersOnly`: hollow squares, no line; `labels: 'last'`: only the last point's value shown
 * @returns {string} an SVG document
 */
export function renderLineChart({ title, subtitle = [], xLabel, yLabel, series }) {
  const width = 980;
  const margin = { left: 80, right: 40 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = 340;
  const parts = [];
  let y = titleBlock(parts, width, title, subtitle);
  const top = y + 30;
  const bottom = top + plotHeight;
  const points = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const xMaxRaw = Math.max(1, ...xs);
  const yMaxRaw = Math.max(1, ...points.map((p) => p.y)) * 1.1;
  const yStep = tickStep(yMaxRaw);
  const yMax = yStep * Math.ceil(yMaxRaw / yStep);
  const xOf = (v) => margin.left + (v / xMaxRaw) * plotWidth;
  const yOf = (v) => bottom - (v / yMax) * plotHeight;

  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    const gy = yOf(v);
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${gy}" y2="${gy}" stroke="${v ? '#e5e5e5' : '#333'}"/>`,
      `<text x="${margin.left - 8}" y="${gy + 4}" text-anchor="end" font-size="11" fill="#444">${shortNumber(v)}</text>`,
    );
  }
  for (const v of xs) {
    const gx = xOf(v);
    parts.push(
      `<line x1="${gx}" x2="${gx}" y1="${top}" y2="${bottom}" stroke="#eee"/>`,
      `<text x="${gx}" y="${bottom + 18}" text-anchor="middle" font-size="12">${shortNumber(v)}</text>`,
    );
  }
  parts.push(
    `<text x="${margin.left + plotWidth / 2}" y="${bottom + 40}" text-anchor="middle" font-size="12.5" fill="#444">${esc(xLabel)}</text>`,
    `<text transform="translate(${margin.left - 56} ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#444">${esc(yLabel)}</text>`,
  );

  series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length];
    const pts = s.points.filter((p) => Number.isFinite(p.y));
    const dash = s.dashed ? ' stroke-dasharray="7 5"' : '';
    if (!s.markersOnly)
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2.5"${dash} points="${pts.map((p) => `${xOf(p.x).toFixed(1)},${yOf(p.y).toFixed(1)}`).join(' ')}"/>`,
      );
    pts.forEach((p, i) => {
      const px = xOf(p.x);
      const py = yOf(p.y);
      const tip = `<title>${esc(`${s.label} — ${p.x}: ${p.y}`)}</title>`;
      parts.push(
        s.markersOnly
          ? `<rect x="${(px - 5).toFixed(1)}" y="${(py - 5).toFixed(1)}" width="10" height="10" fill="#fff" stroke="${color}" stroke-width="2">${tip}</rect>`
          : `<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="4" fill="${color}">${tip}</circle>`,
      );
      if (s.labels !== 'last' || i === pts.length - 1)
        parts.push(
          `<text x="${(px + (s.markersOnly ? -9 : 0)).toFixed(1)}" y="${(py + (s.markersOnly ? 4 : -8)).toFixed(1)}" text-anchor="${s.markersOnly ? 'end' : 'middle'}" font-size="11" fill="${color}">${p.y.toFixed(p.y < 10 ? 1 : 0)}</text>`,
        );
    });
  });

  let ly = bottom + 66;
  series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length];
    parts.push(
      s.markersOnly
        ? `<rect x="${margin.left + 6}" y="${ly - 9}" width="10" height="10" fill="#fff" stroke="${color}" stroke-width="2"/>`
        : `<line x1="${margin.left}" x2="${margin.left + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`,
      `<text x="${margin.left + 28}" y="${ly}" font-size="12">${esc(s.label)}</text>`,
    );
    ly += 18;
  });

  const height = Math.ceil(ly + 8);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
