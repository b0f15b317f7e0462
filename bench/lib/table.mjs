// Plain-text tables for the console and for pasting into Markdown.

/**
 * @param {{ key: string, label: string, align?: 'left' | 'right', format?: (v: unknown, row: object) => string }[]} columns
 * @param {object[]} rows
 * @param {{ markdown?: boolean }} [options]
 */
export function formatTable(columns, rows, { markdown = false } = {}) {
  const cells = rows.map((row) =>
    columns.map((c) => {
      const v = row[c.key];
      return c.format ? c.format(v, row) : v === undefined || v === null ? '' : String(v);
    }),
  );
  const widths = columns.map((c, i) => Math.max(c.label.length, ...cells.map((r) => r[i].length)));
  const pad = (text, i) =>
    columns[i].align === 'left' ? text.padEnd(widths[i]) : text.padStart(widths[i]);
  if (markdown) {
    const line = (parts) => `| ${parts.join(' | ')} |`;
    return [
      line(columns.map((c, i) => pad(c.label, i))),
      line(
        columns.map(
          (c, i) =>
            (c.align === 'left' ? ':' : '-') +
            '-'.repeat(widths[i] - 2) +
            (c.align === 'left' ? '-' : ':'),
        ),
      ),
      ...cells.map((r) => line(r.map(pad))),
    ].join('\n');
  }
  const line = (parts) => parts.join('  ').trimEnd();
  return [
    line(columns.map((c, i) => pad(c.label, i))),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map((r) => line(r.map(pad))),
  ].join('\n');
}

/** `12345.6` → `12,346`. */
export function fmtInt(v) {
  return Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—';
}

export function fmtFixed(digits) {
  return (v) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
}
