import { Pool } from 'undici';
import { now } from './clock.js';

export interface ApiAnswer {
  status: number;
  body: any;
  /** From sending the request to having read the whole answer. */
  ms: number;
  /** When the answer was complete (clock.ts time): for a write, when the bench learnt it committed. */
  at: number;
}

/** The management API as a user's script would call it: Bearer token, JSON, keep-alive connections. */
export class ApiClient {
  constructor(
    private readonly pool: Pool,
    private readonly token: string,
  ) {}

  static pool(baseUrl: string): Pool {
    return new Pool(baseUrl, { connections: 16, keepAliveTimeout: 30_000 });
  }

  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<ApiAnswer> {
    const started = now();
    const response = await this.pool.request({
      method,
      path,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.body.text();
    const at = now();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.statusCode, body: parsed, ms: at - started, at };
  }

  /** Like `call`, but anything but `expected` is an error naming the answer. */
  async expect(expected: number, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<ApiAnswer> {
    const answer = await this.call(method, path, body);
    if (answer.status !== expected) {
      throw new Error(`${method} ${path} answered ${answer.status}, expected ${expected}: ${JSON.stringify(answer.body).slice(0, 500)}`);
    }
    return answer;
  }
}
