import { execFileSync } from 'node:child_process';
import { onPath } from './on-path.js';

/**
 * The writer process that runs a test's SQL: the `sqlite3` shell where installed, otherwise python3's `sqlite3`
 * module behind a small stand-in for the shell (below), so `npm test` needs nothing beyond what building
 * better-sqlite3 needs. Either way the SQL runs in a separate process, as a user's writer would.
 */
export interface SqliteShell {
  kind: 'sqlite3' | 'python3';
  /** The program spawned. */
  command: string;
  /** Arguments before the SQL, which goes to stdin: the database and a busy timeout. */
  args(path: string, busyTimeoutMs: number): string[];
}

/**
 * What the stand-in does, as the `sqlite3` shell 3.40 does when SQL comes on stdin: lines starting with `.` are dot
 * commands (`.timeout MS`, `.mode list|json`, `.backup ['DB'] 'FILE'`); other lines gather until they end a complete
 * statement, then each statement runs in autocommit (`isolation_level=None`: BEGIN/COMMIT are the script's own);
 * list mode prints a row as its values joined by `|` (NULL empty, text and blobs as raw bytes, reals as `%!.15g`);
 * json mode prints `[{"col":value},\n{...}]`; an error goes to stderr, ends that batch of statements, and makes the
 * exit status 1 while later lines still run.
 */
const PYTHON_SHELL = String.raw`
import re, shlex, sqlite3, sys
path, busy = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(path, isolation_level=None)
con.text_factory = bytes
con.execute('PRAGMA busy_timeout=%d' % busy)
out = sys.stdout.buffer
mode = 'list'
errors = 0

def real(v):
    s = '%.15g' % v
    if s in ('inf', '-inf', 'nan'):
        return {'inf': 'Inf', '-inf': '-Inf', 'nan': ''}[s]
    mantissa, e, exponent = s.partition('e')
    if '.' not in mantissa:
        mantissa += '.0'
    return mantissa + e + exponent

def raw(v):
    if v is None:
        return b''
    if isinstance(v, bytes):
        return v
    if isinstance(v, float):
        return real(v).encode()
    return str(v).encode()

ESCAPES = {0x22: b'\\"', 0x5c: b'\\\\', 0x08: b'\\b', 0x0c: b'\\f', 0x0a: b'\\n', 0x0d: b'\\r', 0x09: b'\\t'}

def js(v):
    if v is None:
        return b'null'
    if isinstance(v, bytes):
        return b'"' + re.sub(rb'[\x00-\x1f"\\]', lambda m: ESCAPES.get(m[0][0]) or b'\\u%04x' % m[0][0], v) + b'"'
    return raw(v)

def statements(sql):
    start = 0
    for i, c in enumerate(sql):
        if c == ';' and sqlite3.complete_statement(sql[start:i + 1]):
            yield sql[start:i + 1]
            start = i + 1
    rest = sql[start:]
    if rest.strip():
        yield rest

def run(sql, line):
    global errors
    for statement in statements(sql):
        try:
            cursor = con.execute(statement)
            rows = cursor.fetchall()
        except sqlite3.Error as error:
            sys.stderr.write('Error near line %d: %s\n' % (line, error))
            errors += 1
            return
        if cursor.description is None or not rows:
            continue
        if mode == 'json':
            names = [js(d[0].encode()) for d in cursor.description]
            objects = [b'{' + b','.join(n + b':' + js(v) for n, v in zip(names, row)) + b'}' for row in rows]
            out.write(b'[' + b',\n'.join(objects) + b']\n')
        else:
            for row in rows:
                out.write(b'|'.join(raw(v) for v in row) + b'\n')

def dot(line, number):
    global mode, errors
    words = shlex.split(line[1:])
    name, args = (words[0], words[1:]) if words else ('', [])
    try:
        if name == 'timeout' and len(args) == 1:
            con.execute('PRAGMA busy_timeout=%d' % int(args[0]))
        elif name == 'mode' and len(args) == 1 and args[0] in ('list', 'json'):
            mode = args[0]
        elif name == 'backup' and len(args) in (1, 2):
            target = sqlite3.connect(args[-1])
            try:
                con.backup(target, name=args[0] if len(args) == 2 else 'main')
            finally:
                target.close()
        else:
            raise ValueError('the python3 stand-in for the sqlite3 shell does not know this command: ' + line)
    except (sqlite3.Error, ValueError) as error:
        sys.stderr.write('Error near line %d: %s\n' % (number, error))
        errors += 1

pending, start = '', 0
for number, line in enumerate(sys.stdin.buffer.read().decode('utf-8').split('\n'), 1):
    if line.endswith('\r'):
        line = line[:-1]
    if not pending:
        if not line.strip() or line.startswith('#'):
            continue
        if line.startswith('.'):
            dot(line, number)
            continue
        pending, start = line.lstrip(), number
    else:
        pending += '\n' + line
    if ';' in line and sqlite3.complete_statement(pending):
        run(pending, start)
        pending = ''
if pending.strip():
    run(pending, start)
out.flush()
con.close()
sys.exit(1 if errors else 0)
`;

let chosen: SqliteShell | undefined;

/** The sqlite3 shell at `command`. */
function nativeShell(command: string): SqliteShell {
  return { kind: 'sqlite3', command, args: (path, busyTimeoutMs) => ['-cmd', `.timeout ${busyTimeoutMs}`, path] };
}

/** python3 standing in for the sqlite3 shell; `python` defaults to the python3 on PATH. */
export function pythonSqliteShell(python = onPath('python3')): SqliteShell {
  if (!python) throw new Error('tests need a writer process: neither the sqlite3 shell nor python3 is on PATH');
  // The interpreter itself, not a launcher in front of it (pyenv's shim costs a second or more per start).
  const interpreter = execFileSync(python, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 30000 }).trim() || python;
  return { kind: 'python3', command: interpreter, args: (path, busyTimeoutMs) => ['-c', PYTHON_SHELL, path, String(busyTimeoutMs)] };
}

/** The shell this process uses, chosen on first call (and said once on stdout, so a run's log tells). */
export function sqliteShell(): SqliteShell {
  if (chosen) return chosen;
  const shell = onPath('sqlite3');
  chosen = shell ? nativeShell(shell) : pythonSqliteShell();
  console.log(shell ? `  writer: the sqlite3 shell (${shell})` : `  writer: python3's sqlite3 module (${chosen.command}), since no sqlite3 shell is on PATH`);
  return chosen;
}

/** The command that runs SQL (given on stdin) against `path` with a busy timeout, in a process of its own. */
export function sqliteShellCommand(path: string, busyTimeoutMs: number, shell = sqliteShell()): { command: string; args: string[] } {
  return { command: shell.command, args: shell.args(path, busyTimeoutMs) };
}
