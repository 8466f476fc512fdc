/**
 * A row as one line of JSON, every column by name.
 * Rows are read with safe integers (BigInt), so no integer loses precision on the way:
 * integers beyond 2^53 - 1 become decimal strings, BLOBs become base64 strings.
 */
export function rowToJson(row: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const key in row) out[key] = jsonValue(row[key]);
  // JSON.stringify escapes CR, LF and NUL and lone surrogates, so the result is always one well-formed line.
  return JSON.stringify(out);
}

/**
 * One value as JSON.stringify should see it: a bigint as a number when it is safe (within ±(2^53 - 1)), else as its
 * decimal string; a Buffer as base64; anything else unchanged.
 */
export function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  if (Buffer.isBuffer(value)) return value.toString('base64');
  return value;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
