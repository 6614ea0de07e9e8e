import { createSecureContext, rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import { sampleHeaders } from './workload.js';

/**
 * The baselines' HTTP client: undici over keep-alive connections, trusting the
 * bench CA, with the product's idle timeout — a plain POST and nothing else (no
 * SSRF guard, no deadline timer, no address tracking).
 */
export class Poster {
  private readonly agent: Agent;

  constructor(ca: string) {
    // One secure context for every connection, as the product's client has: given `ca` instead,
    // each new connection would parse the ~150 system roots again (tens of ms of CPU apiece).
    this.agent = new Agent({ connect: { secureContext: createSecureContext({ ca: [...rootCertificates, ca] }) }, keepAliveTimeout: 4_000 });
  }

  /** POSTs `body`; answers the HTTP status after reading the answer, as the product does. */
  async post(url: string, body: string, webhookId: string): Promise<number> {
    const { origin, pathname } = new URL(url);
    const response = await this.agent.request({ origin, path: pathname, method: 'POST', headers: sampleHeaders(webhookId), body });
    await response.body.text();
    return response.statusCode;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
