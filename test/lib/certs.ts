// Test helper: a throwaway CA and server certificates made with openssl, for TLS tests on 127.0.0.1.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/** A key and certificate pair, as PEM files. */
export interface KeyPair {
  readonly keyFile: string;
  readonly certFile: string;
}

export interface TestCerts {
  readonly dir: string;
  /** The CA's certificate (PEM file) and its text. */
  readonly caFile: string;
  readonly caPem: string;
  /** Signed by the CA, for IP 127.0.0.1. */
  readonly node: KeyPair;
  /** Signed by the CA, for the name elsewhere.invalid only: wrong for 127.0.0.1. */
  readonly wrongHost: KeyPair;
  /** Self-signed, for IP 127.0.0.1. */
  readonly selfSigned: KeyPair;
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes the CA and certificates in a temporary directory removed when `t` ends. */
export function makeTestCerts(t: Test): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-certs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string) => join(dir, name);
  openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=conclave test CA',
  ]);
  const signed = (name: string, san: string): KeyPair => {
    writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
    openssl([
      'req',
      ...EC,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=${name}`,
    ]);
    openssl([
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
    ]);
    return { keyFile: file(`${name}.key`), certFile: file(`${name}.pem`) };
  };
  const node = signed('node', 'IP:127.0.0.1');
  const wrongHost = signed('wrong-host', 'DNS:elsewhere.invalid');
  openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    file('self.key'),
    '-out',
    file('self.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  return {
    dir,
    caFile: file('ca.pem'),
    caPem: readFileSync(file('ca.pem'), 'utf8'),
    node,
    wrongHost,
    selfSigned: { keyFile: file('self.key'), certFile: file('self.pem') },
  };
}
