/** Stable error codes: a user sees `message`; scripts and tests match `code`. Listed in the README. */
export const ErrorCodes = {
  BAD_OPTION: 'SSE_ERR_BAD_OPTION',
  DB_MISSING: 'SSE_ERR_DB_MISSING',
  DB_NOT_SQLITE: 'SSE_ERR_DB_NOT_SQLITE',
  DB_UNREADABLE: 'SSE_ERR_DB_UNREADABLE',
  TABLE_MISSING: 'SSE_ERR_TABLE_MISSING',
  NO_ID_COLUMN: 'SSE_ERR_NO_ID_COLUMN',
  PORT_IN_USE: 'SSE_ERR_PORT_IN_USE',
  LISTEN_FAILED: 'SSE_ERR_LISTEN_FAILED',
  BAD_CURSOR: 'SSE_ERR_BAD_CURSOR',
  BAD_FILTER: 'SSE_ERR_BAD_FILTER',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** The one error class of the project: a one-line, user-facing message and a stable code. */
export class SseError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'SseError';
    this.code = code;
  }
}
