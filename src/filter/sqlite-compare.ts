/**
 * SQLite's comparison rules in JavaScript (https://sqlite.org/datatype3.html §3.1, §4.2-4.3), ported from the
 * amalgamation that better-sqlite3 ships (3.53: `sqlite3AffinityType`, `sqlite3AtoF`, `applyNumericAffinity`,
 * `sqlite3MemCompare`, `sqlite3VdbeBooleanValue`), so a filter decides a live row exactly as the SQL catch-up does.
 *
 * A value is what better-sqlite3 returns with `safeIntegers(true)`: `bigint` is the INTEGER storage class, `number`
 * is REAL, `string` is TEXT, a `Uint8Array` (Buffer) is a BLOB, `null` is NULL.
 */

/** A column's type affinity. */
export type Affinity = 'INTEGER' | 'REAL' | 'NUMERIC' | 'TEXT' | 'BLOB';

/** A value of one of SQLite's storage classes: bigint INTEGER, number REAL, string TEXT, Uint8Array BLOB. */
export type SqlValue = null | bigint | number | string | Uint8Array;

/**
 * The affinity of a declared column type, by SQLite's five rules in their order: `INT` → INTEGER; `CHAR`, `CLOB`,
 * `TEXT` → TEXT; `BLOB` or no type → BLOB; `REAL`, `FLOA`, `DOUB` → REAL; anything else → NUMERIC.
 * `strict`: the table is STRICT, where `ANY` has BLOB affinity (elsewhere `ANY` is NUMERIC).
 */
export function affinityOf(declaredType: string, strict = false): Affinity {
  if (declaredType === '') return 'BLOB';
  // ASCII-only folding, as sqlite3UpperToLower: Unicode lowercasing could change the length ('İ' → 'i̇').
  const type = declaredType.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (strict && type === 'any') return 'BLOB';
  let affinity: Affinity = 'NUMERIC';
  // The same left-to-right scan as sqlite3AffinityType: the order of the matches decides ties such as "BLOBTEXT".
  for (let end = 3; end <= type.length; end++) {
    const four = end >= 4 ? type.slice(end - 4, end) : '';
    if (four === 'char' || four === 'clob' || four === 'text') affinity = 'TEXT';
    else if (four === 'blob' && (affinity === 'NUMERIC' || affinity === 'REAL')) affinity = 'BLOB';
    else if ((four === 'real' || four === 'floa' || four === 'doub') && affinity === 'NUMERIC') affinity = 'REAL';
    else if (type.slice(end - 3, end) === 'int') return 'INTEGER';
  }
  return affinity;
}

/** Whether comparisons under this affinity convert well-formed numeric text to a number. */
export const isNumericAffinity = (affinity: Affinity): boolean =>
  affinity === 'INTEGER' || affinity === 'REAL' || affinity === 'NUMERIC';

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
// sqlite3Isspace: TAB, LF, VT, FF, CR and space; nothing else (no NBSP, no Unicode spaces).
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

const MANTISSA_LIMIT = (2n ** 64n - 1n - 9n) / 10n;
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;

interface ParsedNumber {
  /** The whole text is a number (leading and trailing spaces allowed). */
  ok: boolean;
  /** It has a decimal point or an exponent. */
  real: boolean;
  /** The value of the longest numeric prefix (0 when there is none), as SQLite computes it. */
  value: number;
}

/**
 * sqlite3AtoF: text to a double. Only the first ~19 significant digits count (later ones are truncated, as SQLite
 * does), and the result is s·10^d correctly rounded. Text ends at the first NUL, as in C.
 */
function parseNumber(text: string): ParsedNumber {
  const nul = text.indexOf('\0');
  const end = nul < 0 ? text.length : nul;
  const at = (k: number): number => (k < end ? text.charCodeAt(k) : 0);
  let i = 0;
  let negative = false;
  let s = 0n;
  let d = 0;
  let state = 0; // 1: a digit, 2: a point or an exponent, 8: more digits than the mantissa holds
  const integerPart = (): void => {
    state = 1;
    s = BigInt(at(i) - 48);
    i++;
    while (isDigit(at(i))) {
      s = s * 10n + BigInt(at(i) - 48);
      i++;
      if (s >= MANTISSA_LIMIT) {
        state = 9;
        while (isDigit(at(i))) {
          i++;
          d++;
        }
        break;
      }
    }
  };
  for (;;) {
    const c = at(i);
    if (isDigit(c)) integerPart();
    else if (c === 45 || c === 43) {
      negative = c === 45;
      i++;
      if (isDigit(at(i))) integerPart();
    } else if (isSpace(c)) {
      while (isSpace(at(i))) i++;
      continue;
    }
    break;
  }
  if (at(i) === 46) {
    i++;
    if (isDigit(at(i))) {
      state |= 1;
      do {
        if (s < MANTISSA_LIMIT) {
          s = s * 10n + BigInt(at(i) - 48);
          d--;
        } else state = 11;
        i++;
      } while (isDigit(at(i)));
    } else if (state === 0) return { ok: false, real: false, value: 0 };
    state |= 2;
  } else if (state === 0) return { ok: false, real: false, value: 0 };
  let ok = true;
  if (at(i) === 101 || at(i) === 69) {
    i++;
    let sign = 1;
    if (at(i) === 45) {
      sign = -1;
      i++;
    } else if (at(i) === 43) i++;
    if (isDigit(at(i))) {
      let exponent = 0;
      state |= 2;
      while (isDigit(at(i))) {
        exponent = exponent < 10000 ? exponent * 10 + at(i) - 48 : 10000;
        i++;
      }
      d += sign * exponent;
    } else ok = false; // "1e", "1e+": a prefix is a number, the whole is not
  }
  let value = s === 0n ? 0 : scaled(s, d);
  if (negative) value = -value;
  if (ok) {
    while (isSpace(at(i))) i++;
    ok = i === end;
  }
  return { ok, real: (state & 2) !== 0, value };
}

/** s·10^d as the nearest double; SQLite's power table spans 10^-348..10^347. */
function scaled(s: bigint, d: number): number {
  if (d < -348) return 0;
  if (d > 347) return Infinity;
  return Number(`${s}e${d}`);
}

/** sqlite3Atoi64(...) === 0: the whole text is one decimal integer that fits in 64 bits. */
function exactInteger(text: string): bigint | undefined {
  let start = 0;
  let end = text.length;
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  const body = text.slice(start, end);
  if (!/^[+-]?[0-9]+$/.test(body)) return undefined;
  const value = BigInt(body);
  return value >= MIN_I64 && value <= MAX_I64 ? value : undefined;
}

/** sqlite3RealToI64 then sqlite3RealSameAsInt: the double as an integer when it is one, small enough to be exact. */
function realAsSmallInteger(r: number): bigint | undefined {
  if (r === 0) return 0n;
  if (!Number.isInteger(r)) return undefined;
  return r >= -2251799813685248 && r < 2251799813685248 ? BigInt(r) : undefined;
}

/**
 * SQLite's numeric affinity at comparison time (applyNumericAffinity without "try for int"): well-formed integer
 * text becomes an INTEGER (a REAL if it overflows 64 bits), other well-formed numeric text a REAL, anything else
 * stays TEXT. Leading and trailing spaces are allowed; hex (`0x10`) and trailing garbage (`42abc`) stay TEXT.
 */
export function numericValue(text: string): bigint | number | string {
  const parsed = parseNumber(text);
  if (!parsed.ok) return text;
  if (!parsed.real) {
    const integer = realAsSmallInteger(parsed.value) ?? exactInteger(text);
    if (integer !== undefined) return integer;
  }
  return parsed.value;
}

/**
 * A REAL as SQLite renders it as TEXT (`%!.17g`: "42.0", "0.1", "0.33333333333333331", "1.0e+300", "Inf"):
 * 17 significant digits (rounded from 18), shortened when digits 14-16 are 000 or 99x and the shorter form reads back
 * to the same double (SQLite's own heuristic). SQLite computes the 18 digits with a table of approximate powers of
 * ten, this with exact ones: the 17th digit differs for about 0.2% of random doubles (none of those with 15 or fewer
 * significant digits). Only reachable for a REAL compared under TEXT affinity, which a TEXT column cannot hold unless
 * its declared type changed after the row was written.
 */
export function realToText(r: number): string {
  if (r === Infinity) return 'Inf';
  if (r === -Infinity) return '-Inf';
  if (r === 0) return '0.0';
  const magnitude = Math.abs(r);
  const [long, longExponent] = magnitude.toExponential(17).split('e');
  const z = long.replace('.', '');
  const exponent = Number(longExponent);
  let digits: string | undefined;
  let pointExponent = exponent;
  if (z[15] === '9' && z[14] === '9') {
    let jj = 14;
    while (jj > 0 && z[jj - 1] === '9') jj--;
    const rounded = jj === 0 ? 1n : BigInt(z.slice(0, jj)) + 1n;
    if (Number(`${rounded}e${exponent + 1 - jj}`) === magnitude) {
      digits = String(rounded);
      if (digits.length > jj) pointExponent = exponent + 1; // 9.99… carried into 10
    }
  } else if (exponent + 1 >= 18 || z.slice(13, 16) === '000') {
    let jj = 13;
    while (jj > 1 && z[jj - 1] === '0') jj--;
    if (Number(`${z.slice(0, jj)}e${exponent + 1 - jj}`) === magnitude) digits = z.slice(0, jj);
  }
  if (digits === undefined) {
    // SQLite rounds its 18-digit expansion half-up to 17 digits (a double rounding, so 1/3 ends in ...32, not ...31).
    const rounded = BigInt(z.slice(0, 17)) + (z[17] >= '5' ? 1n : 0n);
    digits = String(rounded);
    if (digits.length > 17) pointExponent = exponent + 1;
  }
  digits = digits.replace(/0+$/, '') || '0';
  let body: string;
  if (pointExponent < -4 || pointExponent > 16) {
    const e = Math.abs(pointExponent);
    body = `${digits[0]}.${digits.slice(1) || '0'}e${pointExponent < 0 ? '-' : '+'}${String(e).padStart(2, '0')}`;
  } else if (pointExponent < 0) {
    body = `0.${'0'.repeat(-pointExponent - 1)}${digits}`;
  } else {
    const whole = digits.slice(0, pointExponent + 1).padEnd(pointExponent + 1, '0');
    body = `${whole}.${digits.slice(pointExponent + 1) || '0'}`;
  }
  return r < 0 ? `-${body}` : body;
}

/** How TEXT affinity renders a number: integers in decimal, reals by realToText. */
export const numberToText = (value: bigint | number): string =>
  typeof value === 'bigint' ? value.toString() : realToText(value);

/** An INTEGER against a REAL, exactly (sqlite3IntFloatCompare): no rounding of big integers to doubles. */
function compareIntReal(i: bigint, r: number): number {
  if (r === Infinity) return -1;
  if (r === -Infinity) return 1;
  const floor = Math.floor(r);
  const whole = BigInt(floor);
  if (i < whole) return -1;
  if (i > whole) return 1;
  return floor === r ? 0 : -1;
}

/** Two numbers of either storage class, exactly. */
export function compareNumbers(a: bigint | number, b: bigint | number): number {
  if (typeof a === 'bigint') {
    if (typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
    return compareIntReal(a, b);
  }
  if (typeof b === 'bigint') return -compareIntReal(b, a);
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Two strings in BINARY collation: the byte order of their UTF-8, which is code point order. UTF-16 code unit order
 * differs only where a surrogate (a code point above U+FFFF) meets U+E000..U+FFFF.
 */
export function compareText(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let k = 0; k < length; k++) {
    const x = a.charCodeAt(k);
    const y = b.charCodeAt(k);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const codePointRank = (unit: number): number =>
  unit >= 0xd800 && unit <= 0xdfff ? unit + 0x2000 : unit >= 0xe000 ? unit - 0x800 : unit;

function compareBlobs(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let k = 0; k < length; k++) if (a[k] !== b[k]) return a[k] - b[k];
  return a.length - b.length;
}

const classRank = (value: Exclude<SqlValue, null>): number =>
  typeof value === 'bigint' || typeof value === 'number' ? 1 : typeof value === 'string' ? 2 : 3;

/**
 * sqlite3MemCompare with BINARY collation, for two non-NULL values after affinity: numbers (numerically) < TEXT
 * (byte order) < BLOB (memcmp). Negative, zero or positive.
 */
export function compareValues(a: Exclude<SqlValue, null>, b: Exclude<SqlValue, null>): number {
  const rankA = classRank(a);
  const rankB = classRank(b);
  if (rankA !== rankB) return rankA - rankB;
  if (rankA === 1) return compareNumbers(a as bigint | number, b as bigint | number);
  if (rankA === 2) return compareText(a as string, b as string);
  return compareBlobs(a as Uint8Array, b as Uint8Array);
}

/**
 * A value as SQLite's `IS TRUE` sees it (sqlite3VdbeBooleanValue): NULL is neither true nor false (null here);
 * a number is true unless zero; TEXT and BLOB are read as their longest numeric prefix ('1abc' is true, 'abc' false).
 */
export function truthValue(value: SqlValue): boolean | null {
  if (value === null) return null;
  if (typeof value === 'bigint') return value !== 0n;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string') return parseNumber(value).value !== 0;
  return parseNumber(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1')).value !== 0;
}
