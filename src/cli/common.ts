// What every client command shares: --endpoints/--ca/--json/--timeout, JSON arguments, and turning failures into exit codes.

import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { pemCertificates } from '../client/tls-trust.js';
import { ApiClient, ApiError } from './http.js';
import { formatError, oneLine } from './output.js';

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8080';
export const ENDPOINTS_ENV = 'CONCLAVE_ENDPOINTS';
export const TOKEN_ENV = 'CONCLAVE_TOKEN';

/** Exit codes: 1 the request failed, 2 the command line was wrong. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A command line the CLI cannot act on (exit 2), found after yargs accepted it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface ConnectionArgs {
  readonly endpoints: string;
  /** --ca: a PEM file of CA certificates to trust for https endpoints. */
  readonly ca?: string;
  /** --token, or $CONCLAVE_TOKEN: sent with every request. */
  readonly token?: string;
  readonly json: boolean;
  readonly timeout: number;
}

/** Adds --endpoints, --ca and --json. */
export function withEndpoints<T>(y: Argv<T>) {
  return y
    .option('endpoints', {
      type: 'string',
      default: process.env[ENDPOINTS_ENV] || DEFAULT_ENDPOINT,
      defaultDescription: `$${ENDPOINTS_ENV} or ${DEFAULT_ENDPOINT}`,
      describe: 'comma-separated node URLs, tried in order until one answers',
    })
    .option('ca', {
      type: 'string',
      requiresArg: true,
      describe: 'PEM file of the CA that signed the nodes’ certificates, trusted for https endpoints',
    })
    .option('token', {
      type: 'string',
      requiresArg: true,
      describe: `the token to send (Authorization: Bearer); default $${TOKEN_ENV}. Prefer the variable: a flag shows in ps`,
    })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' });
}

/** The token of --token or $CONCLAVE_TOKEN (undefined without either). Throws UsageError for an empty one. */
export function tokenOf(args: { readonly token?: string }): string | undefined {
  const token = args.token ?? process.env[TOKEN_ENV];
  if (token === undefined) return undefined;
  const trimmed = token.trim();
  if (trimmed === '') throw new UsageError(`--token (or $${TOKEN_ENV}) is empty`);
  return trimmed;
}

/** Adds --endpoints, --json and --timeout (ms, `defaultTimeoutMs` unless given). */
export function withConnection<T>(
  y: Argv<T>,
  defaultTimeoutMs: number,
  timeoutDescribe = 'give up after this many milliseconds',
) {
  return withEndpoints(y).option('timeout', {
    type: 'number',
    default: defaultTimeoutMs,
    describe: timeoutDescribe,
  });
}

/** The endpoints of --endpoints, each an http(s) URL. */
export function parseEndpoints(text: string): string[] {
  const endpoints = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (endpoints.length === 0) throw new UsageError('--endpoints names no URL');
  for (const endpoint of endpoints) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new UsageError(
        `--endpoints: ${JSON.stringify(endpoint)} is not a URL (e.g. ${DEFAULT_ENDPOINT})`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UsageError(`--endpoints: ${JSON.stringify(endpoint)} is not an http:// or https:// URL`);
    }
  }
  return endpoints;
}

export function positiveInteger(value: number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${flag} must be a positive integer, not ${value}`);
  }
  return value;
}

export function nonNegativeInteger(value: number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new UsageError(`${flag} must be an integer of 0 or more, not ${value}`);
  }
  return value;
}

/**
 * The certificates of --ca (undefined without it), each a PEM block. Throws UsageError naming
 * the file if it cannot be read or holds no certificate.
 */
export function readCa(file: string | undefined): string[] | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--ca ${file}: cannot read it (${(error as Error).message})`);
  }
  const certificates = pemCertificates(text);
  if (certificates.length === 0) {
    throw new UsageError(`--ca ${file}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)`);
  }
  return certificates;
}

export function clientOf(args: ConnectionArgs): ApiClient {
  const timeoutMs = positiveInteger(args.timeout, '--timeout')!;
  const endpoints = parseEndpoints(args.endpoints);
  const ca = readCa(args.ca);
  const token = tokenOf(args);
  return new ApiClient(endpoints, timeoutMs, {
    ...(ca === undefined ? {} : { ca }),
    ...(token === undefined ? {} : { token }),
  });
}

/**
 * What a lone `-` argument becomes before yargs parses the command line: yargs turns `-` into
 * '' (or true), losing it. No shell can pass a NUL, so no real argument looks like this.
 */
export const STDIN_ARGUMENT = '\u0000-';

export function markStdinArguments(args: readonly string[]): string[] {
  return args.map((arg) => (arg === '-' ? STDIN_ARGUMENT : arg));
}

/** A JSON argument, or stdin when it was `-`. */
export async function readJsonArgument(text: string, what: string): Promise<string> {
  const source = text === STDIN_ARGUMENT || text === '-' ? await readStdin() : text;
  try {
    JSON.parse(source);
  } catch (error) {
    throw new UsageError(`${what} is not JSON (${(error as Error).message}); quote strings: '"text"'`);
  }
  return source;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs a command body and reports what it throws as one line on stderr: API failures as
 * `conclave: CODE: message` (exit 1), usage errors as `conclave: USAGE: …` (exit 2).
 */
export async function runCommand(body: () => Promise<void>): Promise<void> {
  // `conclave watch … | head`: a closed pipe ends the command; it is not a failure.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  try {
    await body();
  } catch (error) {
    reportError(error);
  }
}

export function reportError(error: unknown): void {
  if (error instanceof UsageError) {
    process.stderr.write(`${oneLine(`conclave: USAGE: ${error.message}`)}\n`);
    process.exitCode = EXIT_USAGE;
  } else if (error instanceof ApiError) {
    process.stderr.write(`${formatError(error.code, error.message, error.details)}\n`);
    process.exitCode = EXIT_FAILURE;
  } else {
    const code =
      typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : '';
    const message = (error as Error)?.message ?? String(error);
    process.stderr.write(`${formatError(/^[A-Z_]+$/.test(code) ? code : 'INTERNAL', message, {})}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
