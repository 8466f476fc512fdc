/**
 * sqlite-sse as a library: `createSqliteSse(options)` gives an instance to mount in any `node:http` server; the
 * adapters for Express, Fastify and Fetch routers are `sqlite-sse/express`, `sqlite-sse/fastify`, `sqlite-sse/fetch`.
 */
export { createSqliteSse, SqliteSse, type SqliteSseStats } from './sqlite-sse.js';
export type { SqliteSseOptions } from './library-options.js';
export { ErrorCodes, SseError, type ErrorCode } from './errors.js';
export type { Logger } from './logger.js';
export { WsCloseCodes } from './transport/ws-client.js';
