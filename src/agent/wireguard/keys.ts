/**
 * The node's WireGuard key pair (X25519, node's crypto: the same keys `wg genkey` and `wg
 * pubkey` make). The private key lives only in the agent's state directory (0700), in
 * wireguard.key (0600, base64, replaced atomically); `wg` reads it from there. During a
 * rotation the next key waits in wireguard.next.key until the interface switches to it.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StateFile } from '../state-file.js';
import { wireguardKeyProblem } from '../../overlay/wireguard.js';

/** PKCS#8 DER prefix of an X25519 private key (RFC 8410); the 32 key bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A fresh private key, base64 (clamping is X25519's, as wg does). */
export function generatePrivateKey(): string {
  return randomBytes(32).toString('base64');
}

/** The public key of a base64 private key. */
export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, 'base64');
  if (raw.length !== 32) throw new Error('a WireGuard private key is 32 bytes of base64');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (!x) throw new Error('X25519 public key not derivable');
  return Buffer.from(x, 'base64url').toString('base64');
}

export interface KeyPair {
  /** Path of the file holding the private key. */
  file: string;
  publicKey: string;
}

export class NodeKeys {
  private readonly current: StateFile;
  private readonly next: StateFile;

  constructor(stateDir: string) {
    this.current = new StateFile(join(stateDir, 'wireguard.key'));
    this.next = new StateFile(join(stateDir, 'wireguard.next.key'));
  }

  private static async read(f: StateFile): Promise<KeyPair | undefined> {
    await f.secure();
    const text = (await f.read())?.trim();
    if (!text) return undefined;
    const publicKey = publicKeyOf(text);
    if (wireguardKeyProblem(publicKey)) throw new Error(`${f.path} does not hold a usable WireGuard key`);
    return { file: f.path, publicKey };
  }

  /** The node's key pair; made on first use. */
  async load(): Promise<KeyPair> {
    const have = await NodeKeys.read(this.current).catch(() => undefined);
    if (have) return have;
    const priv = generatePrivateKey();
    await this.current.write(`${priv}\n`);
    return { file: this.current.path, publicKey: publicKeyOf(priv) };
  }

  /** A rotation's next key pair (made now, replacing any left over). */
  async makeNext(): Promise<KeyPair> {
    const priv = generatePrivateKey();
    await this.next.write(`${priv}\n`);
    return { file: this.next.path, publicKey: publicKeyOf(priv) };
  }

  /** A next key left by an interrupted rotation, if any. */
  pendingNext(): Promise<KeyPair | undefined> {
    return NodeKeys.read(this.next).catch(() => undefined);
  }

  /** The next key becomes the node's key. */
  async promoteNext(): Promise<KeyPair> {
    await rename(this.next.path, this.current.path);
    return (await NodeKeys.read(this.current))!;
  }

  async dropNext(): Promise<void> {
    await rm(this.next.path, { force: true });
  }
}
