// The one table of error codes: every code a part of the node can answer with is in it, with the statuses and retryability clients rely on.

import t from 'tap';
import type { EdgeErrorCode } from '../../net/index.js';
import { RETRYABLE_CODES } from '../../src/client/errors.js';
import { CLOSE_CODES, ERROR_CODES, type ErrorCode, errorStatus, isRetryable } from '../../src/error-codes.js';
import type { DriverErrorCode } from '../../src/raft-driver.js';
import { WS_CLOSE_CODES } from '../../src/ws-protocol.js';
import type { CommandErrorCode } from '../../storage/index.js';

// Compile-time: these unions must be codes of the table (a new code anywhere fails the build).
const commandCodes: Record<CommandErrorCode, true> = {
  INVALID_ARGUMENT: true,
  NOT_FOUND: true,
  CONFLICT: true,
  TOO_LARGE: true,
  COMPACTED: true,
  SESSION_EXPIRED: true,
};
const edgeCodes: Record<EdgeErrorCode, true> = {
  INVALID_ARGUMENT: true,
  TOO_LARGE: true,
  NOT_FOUND: true,
  UNAVAILABLE: true,
  TIMEOUT: true,
  INTERNAL: true,
};
const driverCodes: Record<Exclude<DriverErrorCode, 'STOPPED'>, true> = {
  NOT_LEADER: true,
  NO_LEADER: true,
  TIMEOUT: true,
  UNAVAILABLE: true,
  TOO_LARGE: true,
  READ_ONLY: true,
};

t.test('every code the storage, the edge and the driver raise has an HTTP status', async (t) => {
  for (const code of [...Object.keys(commandCodes), ...Object.keys(edgeCodes), ...Object.keys(driverCodes)]) {
    t.type(errorStatus(code), 'number', `${code} has a status`);
  }
  t.equal(errorStatus('REMOVED'), 410, 'REMOVED');
  t.equal(errorStatus('SESSION_EXPIRED'), 410, 'SESSION_EXPIRED, missing from the edge list before');
  t.equal(errorStatus('NO_SUCH_CODE'), undefined, 'an unknown code has none');
  t.equal(errorStatus('toString'), undefined, 'nor does an Object.prototype name');
});

t.test('retryable: exactly the codes clients may send again', async (t) => {
  const retryable = (Object.keys(ERROR_CODES) as ErrorCode[]).filter(isRetryable).sort();
  t.same(retryable, ['NOT_LEADER', 'NO_LEADER', 'REMOVED', 'TIMEOUT', 'UNAVAILABLE']);
  t.same([...RETRYABLE_CODES].sort(), retryable, 'the client library reads the same table');
  t.notOk(isRetryable('toString'));
});

t.test('close codes are one object', async (t) => {
  t.equal(WS_CLOSE_CODES, CLOSE_CODES);
  t.same(CLOSE_CODES, { GOING_AWAY: 1001, TOO_LARGE: 1009, SLOW_CONSUMER: 4008 });
});
