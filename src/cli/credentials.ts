/**
 * The client side of the controller's security, shared by every subcommand that talks to
 * it: TLS flags (--tls-dir, --ca, --cert, --key; or RHUMB_TLS_DIR, RHUMB_CA, RHUMB_CERT,
 * RHUMB_KEY) and the bearer token (RHUMB_TOKEN, or --token-file).
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { type Fetch, restFetch, tokenFromEnv } from '../security/http-client.js';
import { type ClientTls, type ClientTlsFlags, loadClientTls } from '../security/tls.js';

export interface CredentialFlags extends ClientTlsFlags {
  tokenFile?: string | undefined;
}

/** Adds the TLS options to a command. */
export function addTlsOptions(c: Command): Command {
  return c
    .addOption(new Option('--tls-dir <dir>', 'TLS: DIR/ca.pem verifies the controller; DIR/client.pem and client-key.pem are ours when present').env('RHUMB_TLS_DIR'))
    .addOption(new Option('--ca <file>', 'TLS: the CA certificate that verifies the controller').env('RHUMB_CA'))
    .addOption(new Option('--cert <file>', 'TLS: our client certificate (relative: in --tls-dir)').env('RHUMB_CERT'))
    .addOption(new Option('--key <file>', 'TLS: its key').env('RHUMB_KEY'));
}

/** Adds the TLS and bearer token options to a command (REST clients). */
export function addCredentialOptions(c: Command): Command {
  return addTlsOptions(c).addOption(new Option('--token-file <file>', 'a file holding the bearer token (default: RHUMB_TOKEN)'));
}

export async function tlsFrom(f: ClientTlsFlags): Promise<ClientTls | undefined> {
  return loadClientTls({ tlsDir: f.tlsDir, ca: f.ca, cert: f.cert, key: f.key });
}

export async function tokenFrom(f: CredentialFlags): Promise<string | undefined> {
  if (f.tokenFile) {
    const t = (await readFile(f.tokenFile, 'utf8')).trim();
    if (t === '') throw new Error(`${f.tokenFile} is empty`);
    return t;
  }
  return tokenFromEnv();
}

/** fetch for the controller's REST API with these credentials (plain: the fetch to use without TLS). */
export async function credentialedFetch(f: CredentialFlags, plain?: Fetch): Promise<Fetch> {
  return restFetch({ tls: await tlsFrom(f), token: await tokenFrom(f), plain });
}
