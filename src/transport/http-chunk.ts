const CRLF = Buffer.from('\r\n');

/**
 * One HTTP/1.1 chunk (`size CRLF data CRLF`). Framing a batch once lets every client's socket take the same
 * bytes in one write, instead of node's http layer framing it again for each response.
 */
export function httpChunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(data.length.toString(16) + '\r\n', 'latin1'), data, CRLF]);
}
