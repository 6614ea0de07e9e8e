import { createConnection } from 'node:net';

export interface RawAnswer {
  status: number;
  body: string;
}

/**
 * One HTTP/1.1 request written byte for byte on a plain socket: what fetch cannot send (a header
 * twice, bytes that are not UTF-8). `url` is an http:// base; the answer is read until the server closes.
 */
export function rawHttp(url: string, method: string, path: string, headers: Array<[string, string]>, body: Buffer = Buffer.alloc(0)): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const head = [`${method} ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close', `Content-Length: ${body.length}`, ...headers.map(([n, v]) => `${n}: ${v}`)].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: hostname, port: Number(port) }, () => socket.write(Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body])));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      const at = text.indexOf('\r\n\r\n');
      resolve({ status, body: at < 0 ? '' : text.slice(at + 4) });
    });
  });
}
