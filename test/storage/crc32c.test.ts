// CRC-32C against the published check value and RFC 3720 test vectors, and its incremental form.

import t from 'tap';
import { crc32c } from '../../storage/crc32c.js';

t.test('CRC-32C matches the check value and RFC 3720 §B.4 vectors', async (t) => {
  t.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283, 'check value of "123456789"');
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 bytes of zeros');
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 bytes of ones');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, '32 incrementing bytes');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, '32 decrementing bytes');
  t.equal(crc32c(new Uint8Array(0)), 0, 'empty input');
});

t.test('extending a checksum equals checksumming the concatenation, at every split', async (t) => {
  const bytes = Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff);
  const whole = crc32c(bytes);
  let wrong = 0;
  for (let split = 0; split <= bytes.length; split++) {
    if (crc32c(bytes.subarray(split), crc32c(bytes.subarray(0, split))) !== whole) wrong++;
  }
  t.equal(wrong, 0);
});

t.test('a single flipped bit changes the checksum', async (t) => {
  const bytes = Uint8Array.from({ length: 64 }, (_, i) => i);
  const base = crc32c(bytes);
  let unchanged = 0;
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const copy = bytes.slice();
    copy[bit >> 3]! ^= 1 << (bit & 7);
    if (crc32c(copy) === base) unchanged++;
  }
  t.equal(unchanged, 0);
});
