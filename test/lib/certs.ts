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
  /** Signed by the CA, for IP 127.0.0.1, valid only during 2019. */
  readonly expired: KeyPair;
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
  // `openssl x509` of OpenSSL 3.0 cannot date a certificate in the past; `openssl ca` can.
  openssl([
    'req',
    ...EC,
    '-keyout',
    file('expired.key'),
    '-out',
    file('expired.csr'),
    '-subj',
    '/CN=expired',
  ]);
  writeFileSync(file('index.txt'), '');
  writeFileSync(file('serial'), '1000\n');
  writeFileSync(
    file('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `database = ${file('index.txt')}`,
      `new_certs_dir = ${dir}`,
      `serial = ${file('serial')}`,
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'x509_extensions = ext',
      '[any]',
      'commonName = supplied',
      '[ext]',
      'subjectAltName = IP:127.0.0.1',
      '',
    ].join('\n'),
  );
  openssl([
    'ca',
    '-batch',
    '-config',
    file('ca.cnf'),
    '-cert',
    file('ca.pem'),
    '-keyfile',
    file('ca.key'),
    '-in',
    file('expired.csr'),
    '-out',
    file('expired.pem'),
    '-startdate',
    '20190101000000Z',
    '-enddate',
    '20191231000000Z',
  ]);
  return {
    dir,
    expired: { keyFile: file('expired.key'), certFile: file('expired.pem') },
    caFile: file('ca.pem'),
    caPem: readFileSync(file('ca.pem'), 'utf8'),
    node,
    wrongHost,
    selfSigned: { keyFile: file('self.key'), certFile: file('self.pem') },
  };
}
