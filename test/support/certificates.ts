import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes a throwaway CA and certificates into `dir` with openssl (shared by the
 * test run and the benchmark):
 *
 * - `ca.pem`/`ca.key`: the CA that WEBHOOK_CA_FILE points workers at;
 * - `server.pem`/`server.key`: issued by it for 127.0.0.1, sink.test and *.test;
 * - `untrusted.pem`/`untrusted.key`: self-signed, for TLS failure tests.
 */
export function makeTestCertificates(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mozhno test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=sink.test', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:sink.test,DNS:*.sink.test,DNS:*.test\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem');
  // A certificate from a CA the workers do not trust, for TLS failure tests.
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=untrusted', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:sink.test', '-keyout', 'untrusted.key', '-out', 'untrusted.pem');
}
