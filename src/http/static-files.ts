import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

export interface StaticFile {
  path: string;
  contentType: string;
}

/**
 * The files under the public folder, listed once at start. A request is served only when its decoded path is
 * exactly one of these names, so no encoding of `..`, `%2f`, backslashes or `//` can reach another file.
 */
export class StaticFiles {
  private readonly files = new Map<string, StaticFile>();

  constructor(root: string) {
    for (const path of listFiles(root)) {
      const name = '/' + relative(root, path).split(sep).join('/');
      const file = { path, contentType: CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream' };
      this.files.set(name, file);
      if (name.endsWith('/index.html')) this.files.set(name.slice(0, -'index.html'.length), file);
    }
  }

  /** The file for a raw request path, or undefined. */
  lookup(rawPath: string): StaticFile | undefined {
    let decoded: string;
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      return undefined;
    }
    return this.files.get(decoded);
  }

  read(file: StaticFile): Promise<Buffer> {
    return readFile(file.path);
  }
}

function listFiles(directory: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    // Dot-files (editor swap files, .DS_Store) and links are never served.
    if (entry.name.startsWith('.')) continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}
