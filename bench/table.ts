/** A markdown table: a header row, a separator, right-aligned numbers, columns padded for the terminal. */
export function markdownTable(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((row) => row.map((cell) => String(cell)));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => (row[i] ?? '').length), 3));
  const numeric = headers.map((_, i) => cells.length > 0 && cells.every((row) => /^[-+]?[\d.,]+\s*(%|×|ms|s|KiB|MiB)?$|^–$/.test(row[i] ?? '')));
  const line = (row: string[]) => '| ' + row.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(' | ') + ' |';
  const separator = '|' + widths.map((width, i) => (numeric[i] ? '-'.repeat(width + 1) + ':' : '-'.repeat(width + 2))).join('|') + '|';
  return [line(headers), separator, ...cells.map(line)].join('\n');
}
