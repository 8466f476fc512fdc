import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { SqliteSseOptions } from '../library-options.js';
import { SqliteSse, validateThenCreate } from '../sqlite-sse.js';

/** The plugin's options: the library's options, or `instance`; `prefix` is Fastify's own. */
export interface FastifySqliteSseOptions extends SqliteSseOptions {
  /** Where the stream is mounted, e.g. `'/live'` (Fastify's register option). */
  prefix?: string;
  /** An existing instance to serve instead of creating one. Its owner closes it (before `app.close()`). */
  instance?: SqliteSse;
  /** Take WebSocket upgrades for `PREFIX/ws` on `app.server`. Default true. */
  websocket?: boolean;
}

/** Register options Fastify reads itself, not the library's. */
const FASTIFY_KEYS = ['prefix', 'logSerializers', 'config'];

const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** The path relative to the plugin (what the instance routes on) and the query, as it came. */
function relativeUrl(path: string, url: string | undefined): string {
  const queryAt = url?.indexOf('?') ?? -1;
  return queryAt === -1 ? path : path + url!.slice(queryAt);
}

/**
 * A Fastify plugin: `app.register(sqliteSsePlugin, { prefix: '/live', db })` serves `PREFIX/events`, `PREFIX/healthz`
 * (and `PREFIX/metrics` when enabled) as routes of its own encapsulated context, so the app's hooks (auth) run first,
 * and `PREFIX/ws` upgrades. An instance it creates is closed when the app closes (`preClose`, so streams end before
 * the server waits for its connections).
 */
const sqliteSsePlugin: FastifyPluginAsync<FastifySqliteSseOptions> = async (fastify: FastifyInstance, pluginOptions: FastifySqliteSseOptions) => {
  const { instance, websocket = true, ...rest } = pluginOptions;
  for (const key of FASTIFY_KEYS) delete (rest as Record<string, unknown>)[key];
  // Fastify reads logLevel too (a valid pino level is a valid sqlite-sse level): it stays in both.
  const live = instance ?? (await validateThenCreate(rest)());
  if (!instance) {
    fastify.addHook('preClose', async () => live.close());
    fastify.addHook('onClose', async () => live.close());
  }
  const paths = ['/events', '/healthz', ...(live.options.metrics ? ['/metrics'] : [])];
  for (const path of paths) {
    fastify.route({
      method: [...METHODS],
      url: path,
      // Fastify must not add HEAD itself: the instance answers it, as it answers OPTIONS and 405.
      exposeHeadRoute: false,
      handler: (request: FastifyRequest, reply: FastifyReply) => {
        reply.hijack();
        request.raw.url = relativeUrl(path, request.raw.url);
        live.handleRequest(request.raw, reply.raw);
      },
    });
  }
  if (websocket) {
    const wsPath = fastify.prefix + '/ws';
    const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = request.url ?? '';
      if (url !== wsPath && !url.startsWith(wsPath + '?')) return;
      request.url = relativeUrl('/ws', url);
      live.handleUpgrade(request, socket, head);
    };
    fastify.server.on('upgrade', onUpgrade);
    fastify.addHook('onClose', async () => void fastify.server.off('upgrade', onUpgrade));
  }
};

export default sqliteSsePlugin;
export { sqliteSsePlugin };
