import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isExecutable, onPath } from './on-path.js';

/** The Chromium the browser tests start, and how. */
export interface ChromiumChoice {
  executablePath: string;
  /** Where it was found, for the log line and for error messages. */
  origin: string;
  /** The browser process's environment: the packaged browser brings its own libraries and fonts. */
  env?: Record<string, string>;
}

const PACKAGE = '@sparticuz/chromium';
const DEBIAN_CHROMIUM = '/usr/bin/chromium';

let found: Promise<ChromiumChoice> | undefined;

/**
 * Find a Chromium without hand steps, in this order: `CHROMIUM_PATH` when it names a file; Debian's (`/usr/bin/chromium`,
 * or `chromium` on PATH) unless `CHROMIUM_PATH` is set to a path that does not exist (that hides it, so CI can prove
 * the fallback); then the one the dev-dependency `@sparticuz/chromium` ships inside its npm package, unpacked once
 * into `node_modules/.cache/` (nothing is downloaded). Memoised: the search and its unpacking run once per process.
 */
export function findChromium(): Promise<ChromiumChoice> {
  found ??= locate();
  return found;
}

async function locate(): Promise<ChromiumChoice> {
  const configured = process.env.CHROMIUM_PATH;
  if (configured && existsSync(configured)) return { executablePath: configured, origin: 'CHROMIUM_PATH' };
  if (!configured) {
    const debian = isExecutable(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : onPath('chromium');
    if (debian) return { executablePath: debian, origin: "Debian's chromium" };
  }
  const hidden = configured ? `, as CHROMIUM_PATH=${configured} names no file (an installed chromium is passed over)` : '';
  try {
    return await packagedChromium(hidden);
  } catch (error) {
    throw new Error(`no Chromium for the browser tests${hidden || ' (no /usr/bin/chromium, no chromium on PATH)'}, and ${PACKAGE} could not be unpacked: ${(error as Error).message}`);
  }
}

/** The package's browser, unpacked into a cache directory that is renamed into place whole, so a half-unpacked one is never used. */
async function packagedChromium(note: string): Promise<ChromiumChoice> {
  const entry = fileURLToPath(import.meta.resolve(PACKAGE));
  const root = join(dirname(entry), '..', '..');
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const cache = join(cacheRoot(root), `sqlite-sse-chromium-${version}`);
  if (!existsSync(join(cache, 'chromium'))) unpackInto(cache, await unpack(entry, join(root, 'bin'), cache));
  return {
    executablePath: join(cache, 'chromium'),
    origin: `${PACKAGE} ${version}${note}`,
    env: {
      // Built for Amazon Linux: NSS, NSPR and expat come from the package's own al2023 libraries, so a plain
      // Debian/Node machine needs only glibc; fonts from its own set, found through a config that names them.
      LD_LIBRARY_PATH: [join(cache, 'al2023', 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      FONTCONFIG_FILE: join(cache, 'fonts.conf'),
    },
  };
}

/** `node_modules/.cache` of the tree the package is in (it goes with `npm ci`), else the package's own folder. */
function cacheRoot(packageRoot: string): string {
  const at = packageRoot.lastIndexOf(`${sep}node_modules${sep}`);
  return at === -1 ? packageRoot : join(packageRoot.slice(0, at), 'node_modules', '.cache');
}

/**
 * Unpack in a child process with TMPDIR set to a fresh staging directory (the package unpacks into the temp dir,
 * and changing this process's TMPDIR would move every other temp file), then the al2023 libraries with `tar`.
 * Returns the staging directory.
 */
async function unpack(entry: string, bin: string, cache: string): Promise<string> {
  mkdirSync(dirname(cache), { recursive: true });
  const staging = mkdtempSync(`${cache}.unpacking-`);
  const script = `
    const [entry, bin, staging] = process.argv.slice(1);
    const { spawn } = await import('node:child_process');
    const { createReadStream, existsSync, mkdirSync } = await import('node:fs');
    const { createBrotliDecompress } = await import('node:zlib');
    const { default: chromium } = await import(entry);
    console.log(await chromium.executablePath(bin));
    const libraries = bin + '/al2023.tar.br';
    if (existsSync(libraries)) {
      mkdirSync(staging + '/al2023');
      const tar = spawn('tar', ['-x', '--no-same-owner', '-C', staging + '/al2023'], { stdio: ['pipe', 'inherit', 'inherit'] });
      createReadStream(libraries).pipe(createBrotliDecompress()).pipe(tar.stdin);
      const code = await new Promise((resolve) => tar.once('exit', resolve));
      if (code !== 0) throw new Error('tar exited ' + code + ' unpacking ' + libraries);
    }`;
  try {
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--input-type=module', '-e', script, entry, bin, staging],
        { env: { ...process.env, TMPDIR: staging }, timeout: 180000, encoding: 'utf8' },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message.split('\n')[0]} ${stderr.trim()}`)) : resolve(stdout.trim())),
      ),
    );
    if (printed !== join(staging, 'chromium')) throw new Error(`${PACKAGE} unpacked to ${printed}, not into ${staging}`);
    return staging;
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Write the fonts config for the final place, then move the staging directory there in one rename. */
function unpackInto(cache: string, staging: string): void {
  writeFileSync(
    join(staging, 'fonts.conf'),
    `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${join(cache, 'fonts')}</dir>\n  <cachedir>${join(cache, 'fonts-cache')}</cachedir>\n</fontconfig>\n`,
  );
  try {
    renameSync(staging, cache);
  } catch (error) {
    // Another process unpacked it first: theirs is whole, ours goes.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(join(cache, 'chromium'))) throw error;
  }
}
