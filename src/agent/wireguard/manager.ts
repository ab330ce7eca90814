/**
 * The agent's encrypted underlay: follows the deployment's setting and the other nodes'
 * keys from the controller (GET /wireguard/peers long-poll: one answer per change, only
 * what changed), keeps the node's WireGuard interface and its peers as they say, publishes
 * the node's own key and endpoint, guards against cleartext VXLAN, and tells the agent
 * where VXLAN for a node goes (its underlay address, or its tunnel address).
 *
 *   none       VXLAN between underlay addresses; no interface (one left over is removed,
 *              the node's record withdrawn, so "ready" always means "can decrypt").
 *   prepare    the interface is up with every peer; the node's record is published; VXLAN
 *              still between underlay addresses, and accepted on the tunnel address too.
 *   wireguard  VXLAN from and to tunnel addresses only (through the interface); nothing
 *              else leaves (./guard.ts), and after a grace period nothing else is accepted.
 *
 * Failures (the interface cannot be made, a peer's record is bad, publishing fails) are
 * logged, counted in rhumb_wireguard_errors_total and retried; none of them makes
 * VXLAN go out in cleartext while the deployment encrypts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';
import type { Logger } from '../../log/index.js';
import {
  DEFAULT_SETTING,
  DEFAULT_WIREGUARD_PORT,
  type EncryptionMode,
  type EncryptionSetting,
  type PeerView,
  WIREGUARD_OVERHEAD,
  tunnelAddress,
  tunnelPrefix,
} from '../../overlay/wireguard.js';
import { ipInSubnet } from '../../net/addr.js';
import type { UnderlayPath } from '../backend.js';
import { linkWithAddress, nftApply } from '../plumbing/iproute.js';
import { VXLAN_OVERHEAD } from '../plumbing/nic.js';
import { SerialQueue } from '../serial.js';
import { ControllerCallError, WireguardClient } from './client.js';
import { type WireguardImpl, applyPeerCommands, dump, ensureDevice, removeDevice, setPrivateKey, wireguardIfname } from './device.js';
import { GUARD_TABLE, type GuardSpec, guardCounters, guardRuleset } from './guard.js';
import { ConnectionsRenewedError } from '../../security/http-client.js';
import { type KeyPair, NodeKeys } from './keys.js';
import { type WireguardMetrics, wireguardMetrics } from './metrics.js';
import { type PeerConfig, type PeerProblem, movedPeers, ownRecord, peerCommands, planPeers } from './plan.js';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface EncryptionManagerOptions {
  controllerUrl: string;
  /** fetch carrying the agent's TLS credentials and token (default: plain fetch). */
  controllerFetch?: typeof fetch;
  nodeUuid: string;
  underlayIp: string;
  stateDir: string;
  registry: Registry;
  logger: Logger;
  /** WireGuard's UDP port (the endpoint published). Default 51820. */
  listenPort?: number;
  /** The VXLAN UDP port the guard watches. Default 4789. */
  vxlanPort?: number;
  /** Long-poll wait asked of the controller. Default 30000 ms. */
  waitMs?: number;
  /** Retry delay after a failed call or interface. Default 2000 ms. */
  retryMs?: number;
  /** Cleartext VXLAN is still accepted this long after the switch to wireguard. Default 2000 ms. */
  lockdownGraceMs?: number;
  /** How long a rotation announces the next key before switching to it. Default 1000 ms. */
  rotationAnnounceMs?: number;
}

export class EncryptionManager {
  readonly ifname: string;
  mode: EncryptionMode = 'none';
  private target: EncryptionSetting['target'];
  private subnet = DEFAULT_SETTING.tunnel_subnet;
  private readonly views = new Map<string, PeerView>();
  private since = 0;
  private readonly keys: NodeKeys;
  private key: KeyPair | undefined;
  /** During a rotation: the announced next key. */
  private next: KeyPair | undefined;
  private impl: WireguardImpl | undefined;
  private deviceSpec = '';
  deviceUp = false;
  private deviceError: string | undefined;
  configured = 0;
  leftOut: PeerProblem[] = [];
  private readonly reported = new Map<string, string>();
  private published = '';
  private guardText = '';
  private guardBase = { output: 0, input: 0 };
  /** Cleartext VXLAN is no longer accepted. */
  private lockdown = false;
  private lockdownTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private ulMtu = 1500;
  private ulFamily: 'ipv4' | 'ipv6' = 'ipv4';
  private readonly client: WireguardClient;
  private readonly queue = new SerialQueue();
  private readonly m: WireguardMetrics;
  private readonly log: Logger;
  private closed = false;
  private loop: Promise<void> | undefined;
  private started = false;
  private onChange: () => Promise<void> = async () => {};

  constructor(private readonly o: EncryptionManagerOptions) {
    this.ifname = wireguardIfname(o.nodeUuid);
    this.keys = new NodeKeys(o.stateDir);
    this.client = new WireguardClient(o.controllerUrl, o.nodeUuid, o.controllerFetch);
    this.log = o.logger;
    this.m = wireguardMetrics(o.registry, this);
    this.ulFamily = o.underlayIp.includes(':') ? 'ipv6' : 'ipv4';
  }

  private get port(): number {
    return this.o.listenPort ?? DEFAULT_WIREGUARD_PORT;
  }

  private get tunnelIp(): string | undefined {
    try {
      return tunnelAddress(this.o.underlayIp, this.subnet);
    } catch {
      return undefined;
    }
  }

  // ---- what the agent asks -------------------------------------------------------------

  /**
   * The node's underlay address moved (../underlay-follow.ts). Encrypting, the node is
   * brought in line as at a start with that address: the interface takes the tunnel
   * address it derives to (the old one goes) and the record is published again with its
   * new endpoint; peers follow from the feed. The agent re-points the data plane after.
   */
  async moveUnderlay(ip: string, mtu: number): Promise<void> {
    await this.queue.run(async () => {
      const from = this.tunnelIp;
      this.o.underlayIp = ip;
      this.ulMtu = mtu;
      this.ulFamily = ip.includes(':') ? 'ipv6' : 'ipv4';
      if (this.mode === 'none') return;
      await this.reconcile();
      this.log.info(`WireGuard tunnel address ${from ?? '(none)'} -> ${this.tunnelIp ?? '(none)'} (interface ${this.deviceUp ? 'up' : 'down'}, endpoint ${this.published ? 'published' : 'not published yet'})`);
    });
  }

  /** Where VXLAN leaves from, and how much room the path below it leaves. */
  path(): UnderlayPath {
    if (this.mode === 'none') return { local: this.o.underlayIp, anyLocal: false, mtu: this.ulMtu };
    const mtu = this.ulMtu - WIREGUARD_OVERHEAD[this.ulFamily];
    return { local: this.mode === 'wireguard' ? (this.tunnelIp ?? this.o.underlayIp) : this.o.underlayIp, anyLocal: true, mtu };
  }

  /** Instances get at most this MTU while encrypting: VXLAN (50) inside WireGuard. */
  instanceMtu(): number | undefined {
    return this.mode === 'none' ? undefined : this.path().mtu - VXLAN_OVERHEAD;
  }

  /** Where VXLAN for the node at this underlay address goes; undefined: nowhere it may. */
  destination(underlay: string): string | undefined {
    if (this.mode !== 'wireguard') return underlay;
    try {
      return tunnelAddress(underlay, this.subnet);
    } catch {
      return undefined;
    }
  }

  /** The underlay address a data-plane destination stands for. */
  underlayOf(dst: string): string {
    if (!ipInSubnet(dst, this.subnet)) return dst;
    for (const v of this.views.values()) if (v.tunnel_ip === dst) return v.underlay_ip;
    return dst;
  }

  /** The addresses VXLAN from the nodes at these underlay addresses may come from. */
  sources(underlays: readonly string[]): string[] {
    const tunnels = underlays.flatMap((u) => {
      try {
        return [tunnelAddress(u, this.subnet)];
      } catch {
        return [];
      }
    });
    if (this.mode === 'none') return [...underlays];
    if (this.mode === 'wireguard' && this.lockdown) return tunnels;
    return [...underlays, ...tunnels];
  }

  status(): Record<string, unknown> {
    return {
      mode: this.mode,
      ...(this.target ? { target: this.target } : {}),
      tunnel_subnet: this.subnet,
      ...(this.mode !== 'none' ? { tunnel_ip: this.tunnelIp, interface: this.ifname, implementation: this.impl, device_up: this.deviceUp } : {}),
      ...(this.deviceError ? { device_error: this.deviceError } : {}),
      ...(this.key && this.mode !== 'none' ? { public_key: this.key.publicKey } : {}),
      ...(this.next ? { next_public_key: this.next.publicKey } : {}),
      cleartext_accepted: !(this.mode === 'wireguard' && this.lockdown),
      peers: this.configured,
      left_out: this.leftOut,
    };
  }

  // ---- life cycle ----------------------------------------------------------------------

  /**
   * Learns the setting and peers (retrying while the controller cannot be reached: the
   * agent must not guess "none" for a deployment that encrypts) and brings the node in line.
   */
  async init(): Promise<void> {
    const ul = await linkWithAddress(this.o.underlayIp);
    if (ul) this.ulMtu = ul.mtu;
    for (let attempt = 1; ; attempt++) {
      try {
        const feed = await this.client.peers(0, 0);
        this.absorb(feed.full, feed.peers, feed.removed, feed.encryption, feed.revision);
        break;
      } catch (err) {
        if (err instanceof ControllerCallError && err.status === 404) {
          this.log.warn('the controller has no /wireguard/peers: underlay encryption stays off');
          return;
        }
        if (attempt >= 30) throw new Error(`cannot learn the deployment's encryption setting: ${(err as Error).message}`, { cause: err });
        await sleep(1000);
      }
    }
    // A switch that happened while no agent ran: nothing was waiting for cleartext since.
    this.lockdown = this.mode === 'wireguard';
    await this.queue.run(() => this.reconcile());
  }

  /** Follows the feed; onChange re-points the data plane when where VXLAN goes changes. */
  start(onChange: () => Promise<void>): void {
    this.onChange = onChange;
    this.started = true;
    this.loop = this.follow();
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.lockdownTimer);
    clearTimeout(this.retryTimer);
    await Promise.race([this.loop, sleep(100)]);
  }

  private async follow(): Promise<void> {
    while (!this.closed) {
      try {
        const feed = await this.client.peers(this.since, this.o.waitMs ?? 30_000);
        if (this.closed) return;
        if (feed.revision < this.since && !feed.full) continue;
        const before = { mode: this.mode, subnet: this.subnet, lockdown: this.lockdown, views: new Map(this.views) };
        this.absorb(feed.full, feed.peers, feed.removed, feed.encryption, feed.revision);
        await this.queue.run(() => this.reconcile(before));
      } catch (err) {
        if (this.closed) return;
        // The long-poll went out from an address the node no longer has: ask again from the new one.
        if (err instanceof ConnectionsRenewedError) continue;
        this.m.errors.inc({ reason: 'feed' });
        this.log.warn(`wireguard peers feed: ${(err as Error).message}`);
        await sleep(this.o.retryMs ?? 2000);
      }
    }
  }

  private absorb(full: boolean, peers: PeerView[], removed: string[], enc: EncryptionSetting, revision: number): void {
    if (full) this.views.clear();
    for (const v of peers) this.views.set(v.cn_uuid, v);
    for (const cn of removed) this.views.delete(cn);
    this.mode = enc.mode;
    this.target = enc.target;
    this.subnet = enc.tunnel_subnet;
    this.since = revision;
  }

  // ---- bringing the node in line -------------------------------------------------------

  /** Serialised (one at a time): device, peers, guard, data plane, publication. */
  private async reconcile(before?: { mode: EncryptionMode; subnet: string; lockdown: boolean; views?: ReadonlyMap<string, PeerView> }): Promise<void> {
    if (this.closed) return;
    const changed = before !== undefined && (before.mode !== this.mode || before.subnet !== this.subnet);
    if (changed && this.mode === 'wireguard' && before.mode !== 'wireguard') this.startGrace();
    if (this.mode !== 'wireguard') {
      clearTimeout(this.lockdownTimer);
      this.lockdown = false;
    }
    if (this.mode === 'none') {
      await this.applyGuard();
      if (changed && this.started) await this.onChange();
      await this.teardown();
      return;
    }
    this.key ??= await this.keys.load();
    await this.ensureInterface();
    if (this.deviceUp) await this.configurePeers();
    // Into wireguard: the guard first (nothing leaves in cleartext from here on), then the
    // data plane moves to tunnel addresses.
    await this.applyGuard();
    // A peer whose underlay address moved is configured at its new tunnel address now; the
    // data plane accepts VXLAN from there (entries for its MACs follow the controller's shootdowns).
    const moved = before?.views && !changed ? movedPeers(before.views, this.views, this.o.nodeUuid) : [];
    for (const m of moved) this.log.info(`WireGuard peer ${m.cn_uuid} moved: tunnel address ${m.from} -> ${m.to}`);
    if ((changed || moved.length > 0 || (before !== undefined && before.lockdown !== this.lockdown)) && this.started) await this.onChange();
    if (this.deviceUp) await this.publish();
  }

  private async ensureInterface(): Promise<void> {
    const address = this.tunnelIp;
    if (!address) {
      this.deviceFailed(`no tunnel address: ${this.o.underlayIp} maps to the network or broadcast address of ${this.subnet}`);
      return;
    }
    const mtu = this.ulMtu - WIREGUARD_OVERHEAD[this.ulFamily];
    const spec = { name: this.ifname, listenPort: this.port, privateKeyFile: this.key!.file, address, prefix: tunnelPrefix(this.subnet), mtu };
    if (this.deviceUp && JSON.stringify(spec) === this.deviceSpec) return;
    try {
      // A rotation interrupted after the interface switched: keep the key it uses.
      const pending = this.next ? undefined : await this.keys.pendingNext();
      if (pending) {
        const cur = await dump(this.ifname).catch(() => undefined);
        if (cur?.publicKey === pending.publicKey) this.key = await this.keys.promoteNext();
        else await this.keys.dropNext();
        spec.privateKeyFile = this.key!.file;
      }
      const { impl, created } = await ensureDevice(spec);
      this.impl = impl;
      this.deviceSpec = JSON.stringify(spec);
      this.deviceUp = true;
      if (this.deviceError || created) this.log.info(`WireGuard interface ${this.ifname} (${impl}) up at ${address}/${spec.prefix}, port ${this.port}, MTU ${mtu}`);
      this.deviceError = undefined;
    } catch (err) {
      this.deviceFailed((err as Error).message);
    }
  }

  private deviceFailed(why: string): void {
    this.deviceUp = false;
    this.m.errors.inc({ reason: 'device' });
    if (this.deviceError !== why) this.log.error(`WireGuard interface ${this.ifname}: ${why}; VXLAN to other nodes is dropped (never sent in cleartext) until it works`);
    this.deviceError = why;
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.queue.run(() => this.reconcile()).catch((err: Error) => this.log.warn(`wireguard: ${err.message}`));
    }, this.o.retryMs ?? 2000);
    this.retryTimer.unref();
  }

  private async configurePeers(): Promise<void> {
    const plan = planPeers(this.views.values(), this.o.nodeUuid, this.subnet);
    for (const p of plan.problems) {
      if (this.reported.get(p.cn_uuid) === p.problem) continue;
      this.reported.set(p.cn_uuid, p.problem);
      this.m.errors.inc({ reason: p.reason });
      const log = p.reason === 'no_key' ? this.log.info.bind(this.log) : this.log.error.bind(this.log);
      log(`WireGuard peer ${p.cn_uuid} left out: ${p.problem}; nothing is sent to it until it is fixed`);
    }
    for (const cn of [...this.reported.keys()]) if (!plan.problems.some((p) => p.cn_uuid === cn)) this.reported.delete(cn);
    this.leftOut = plan.problems;
    try {
      const current = new Map<string, PeerConfig>(
        (await dump(this.ifname)).peers.map((p) => [p.publicKey, { publicKey: p.publicKey, endpoint: p.endpoint ?? '', allowedIps: p.allowedIps }]),
      );
      await applyPeerCommands(this.ifname, peerCommands(current, plan.peers));
      this.configured = plan.tunnels.size;
    } catch (err) {
      this.m.errors.inc({ reason: 'configure' });
      this.log.error(`WireGuard peers of ${this.ifname}: ${(err as Error).message}`);
      this.deviceUp = false;
      this.scheduleRetry();
    }
  }

  /** The node's own record as peers should see it; published when it differs. */
  private async publish(): Promise<void> {
    const rec = ownRecord({ publicKey: this.key!.publicKey, ...(this.next ? { nextPublicKey: this.next.publicKey } : {}) }, this.o.underlayIp, this.port);
    const mine = this.views.get(this.o.nodeUuid);
    const text = JSON.stringify(rec);
    const seen = mine && mine.public_key === rec.public_key && mine.next_public_key === rec.next_public_key && mine.endpoint === rec.endpoint;
    if (seen && this.published === text) return;
    if (seen) {
      this.published = text;
      return;
    }
    try {
      await this.client.publish(rec);
      this.published = text;
    } catch (err) {
      this.m.errors.inc({ reason: 'publish' });
      this.log.error(`publishing this node's WireGuard key: ${(err as Error).message}`);
      this.scheduleRetry();
    }
  }

  /** Encryption is off: no guard, no interface, no published record. */
  private async teardown(): Promise<void> {
    if (this.deviceUp || this.deviceSpec || (await dump(this.ifname).then(() => true, () => false))) {
      await removeDevice(this.ifname);
      this.log.info(`WireGuard interface ${this.ifname} removed (encryption is off)`);
    }
    this.deviceUp = false;
    this.deviceSpec = '';
    this.deviceError = undefined;
    this.configured = 0;
    this.leftOut = [];
    if (this.views.get(this.o.nodeUuid)?.public_key !== undefined) {
      await this.client.withdraw().catch((err: Error) => {
        this.m.errors.inc({ reason: 'publish' });
        this.log.warn(`withdrawing this node's WireGuard key: ${err.message}`);
      });
    }
    this.published = '';
  }

  private startGrace(): void {
    this.lockdown = false;
    clearTimeout(this.lockdownTimer);
    this.lockdownTimer = setTimeout(() => {
      const before = { mode: this.mode, subnet: this.subnet, lockdown: this.lockdown };
      this.lockdown = this.mode === 'wireguard';
      void this.queue.run(() => this.reconcile(before)).catch((err: Error) => this.log.warn(`wireguard: ${err.message}`));
    }, this.o.lockdownGraceMs ?? 2000);
    this.lockdownTimer.unref();
  }

  private async applyGuard(): Promise<void> {
    const spec: GuardSpec | null = this.mode === 'wireguard' ? { iface: this.ifname, port: this.o.vxlanPort ?? 4789, output: true, input: this.lockdown } : null;
    const text = guardRuleset(spec);
    if (text === this.guardText) return;
    try {
      // Re-creating the table resets its counters: keep what they counted.
      const c = await this.readGuard();
      this.guardBase = { output: this.guardBase.output + c.output, input: this.guardBase.input + c.input };
      await nftApply(text);
      this.guardText = text;
    } catch (err) {
      this.m.errors.inc({ reason: 'guard' });
      this.log.error(`cleartext VXLAN guard (nft table ${GUARD_TABLE}): ${(err as Error).message}`);
      this.scheduleRetry();
    }
  }

  private async readGuard(): Promise<{ output: number; input: number }> {
    try {
      const { stdout } = await execFileAsync('nft', ['-j', 'list', 'table', 'inet', GUARD_TABLE], { encoding: 'utf8' });
      return guardCounters(stdout);
    } catch {
      return { output: 0, input: 0 };
    }
  }

  /** Packets the guard dropped since the agent started (for /metrics). */
  async guardDrops(): Promise<{ output: number; input: number }> {
    const c = this.guardText && this.mode === 'wireguard' ? await this.readGuard() : { output: 0, input: 0 };
    return { output: this.guardBase.output + c.output, input: this.guardBase.input + c.input };
  }

  // ---- key rotation --------------------------------------------------------------------

  /**
   * Replaces the node's key: announce the next key (peers add it beside the current one),
   * wait for that to reach them, switch the interface, publish it as current (peers move
   * the tunnel address to it). Traffic stops only between the switch and the peers'
   * update: one feed round trip.
   */
  async rotateKey(): Promise<{ public_key: string }> {
    if (this.mode === 'none') throw new Error('underlay encryption is off: there is no key to rotate');
    if (!this.deviceUp) throw new Error(`the WireGuard interface is not up${this.deviceError ? ` (${this.deviceError})` : ''}`);
    if (this.next) throw new Error('a key rotation is already under way');
    await this.queue.run(async () => {
      this.next = await this.keys.makeNext();
      this.published = '';
      await this.publish();
      if (!this.published) {
        this.next = undefined;
        await this.keys.dropNext();
        throw new Error('the next key could not be published');
      }
    });
    await sleep(this.o.rotationAnnounceMs ?? 1000);
    return this.queue.run(async () => {
      try {
        await setPrivateKey(this.ifname, this.next!.file);
        this.key = await this.keys.promoteNext();
      } catch (err) {
        this.next = undefined;
        await this.keys.dropNext();
        this.published = '';
        await this.publish();
        throw err;
      }
      this.next = undefined;
      this.published = '';
      await this.publish();
      this.m.rotations.inc();
      this.log.info(`WireGuard key rotated: ${this.key.publicKey}`);
      return { public_key: this.key.publicKey };
    });
  }
}
