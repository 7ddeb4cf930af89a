/**
 * A certificate authority made by the test (openssl, EC P-256, valid one
 * day): a server certificate for 127.0.0.1/localhost, a client certificate
 * for mutual TLS, and an unrelated CA to make a handshake fail on purpose.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** Paths of the PEM files. */
  files: { ca: string; serverKey: string; serverCert: string; clientKey: string; clientCert: string; otherCa: string };
  pem: { ca: Buffer; serverKey: Buffer; serverCert: Buffer; clientKey: Buffer; clientCert: Buffer; otherCa: Buffer };
  remove(): void;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'csm-pki-'));
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) => ssl('req', '-x509', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '1', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  ca('test-ca');
  ca('other-ca');
  const leaf = (name: string, ext: string) => {
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('test-ca.pem'), '-CAkey', f('test-ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`));
  };
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  const files = {
    ca: f('test-ca.pem'),
    serverKey: f('server.key'),
    serverCert: f('server.pem'),
    clientKey: f('client.key'),
    clientCert: f('client.pem'),
    otherCa: f('other-ca.pem'),
  };
  const pem = Object.fromEntries(Object.entries(files).map(([k, p]) => [k, readFileSync(p)])) as TestPki['pem'];
  return { dir, files, pem, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
