// How the CLI prints: aligned text tables for people, one JSON document (or line) for programs, one-line errors.

/** `--json`: exactly one JSON document on stdout. */
export function printJson(document: unknown): void {
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
}

/** One JSON document per line (streams: watch). */
export function printJsonLine(document: unknown): void {
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Columns padded to their widest cell; the last column is not padded (no trailing spaces). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** One line for stderr: `conclave: CODE: message`, with the details that help act on it. */
export function formatError(
  code: string,
  message: string,
  details: Readonly<Record<string, unknown>>,
): string {
  const extras: string[] = [];
  if (typeof details.reason === 'string' && !message.includes(details.reason)) {
    extras.push(`reason ${details.reason}`);
  }
  if (typeof details.leader === 'string' && details.leader !== '') extras.push(`leader ${details.leader}`);
  const indeterminate = 'the write may or may not have applied';
  if (details.indeterminate === true && !message.includes(indeterminate)) extras.push(indeterminate);
  const suffix = extras.length === 0 ? '' : ` (${extras.join('; ')})`;
  return oneLine(`conclave: ${code}: ${message}${suffix}`);
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** A JSON value on one line, cut to `maxChars` for a table cell. */
export function compactJson(value: unknown, maxChars = 60): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

/** Peer ids all start alike (12D3KooW…); their tail tells them apart. */
export function shortId(id: string): string {
  if (id === '') return '-';
  return id.length > 14 ? `…${id.slice(-10)}` : id;
}

export function formatAgo(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

export function orDash(value: number | string | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}
