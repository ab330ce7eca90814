/**
 * NAPI's IP allocation (sdc-napi lib/models/ip/provision.js), over the Store:
 *
 *   1. never-used addresses first: the lowest address of the provision range that has no
 *      record under napi/ips/<network>/ (gaps are derived from the sorted existing keys,
 *      never by walking every address of the range);
 *   2. then reuse: the free record (reserved=false, no belongs_to_uuid) freed longest ago,
 *      which limits ARP churn;
 *   3. then 507 SubnetFull.
 *
 * The chosen address's key is read through tx.get, so two concurrent transactions that
 * pick the same address conflict and one of them retries on fresh data: no duplicates.
 * On retries (attempt > 0) the choice is spread over the first few candidates so that
 * a burst of concurrent creates does not keep colliding on one address.
 *
 * Fast path (first attempt): when this process already knows an address below which the
 * whole range has records (the hint), the addresses from it up are read one by one —
 * skipping those another attempt here is working on — and the first absent one is taken.
 * That is the same address the scan would find, for one key read instead of a range scan.
 *
 * Explicit addresses go through checkExplicitIp (NAPI's IP.provisionable rules).
 */
import { randomInt } from 'node:crypto';
import type { Store } from '../../store/types.js';
import { invalidParams, subnetFull, usedBy } from '../../rest/errors.js';
import { bigIntToIp, familyOf, ipToBigInt, subnetContains, subnetOf, subnetRouterAnycast, type Family } from '../ipmath.js';
import { ipKey, ipPrefix, networkKey } from '../keys.js';
import type { IpRecord, NetworkRecord } from '../models/records.js';
import type { Tx } from '../../store/txn.js';

// ---- pure helpers ------------------------------------------------------------------

/** Address number of an IP record key's last segment (fixed-width hex). */
export function keyToNumber(sortKeyHex: string): bigint {
  return BigInt(`0x${sortKeyHex}`);
}

/**
 * Gap finder over ascending used addresses: yields never-used addresses in
 * [from, to] in order, at most `max` of them. `used` must be sorted ascending; values
 * outside [from, to] are ignored.
 */
export function gapAddresses(used: Iterable<bigint>, from: bigint, to: bigint, max: number): bigint[] {
  const out: bigint[] = [];
  let cursor = from;
  for (const n of used) {
    if (out.length >= max || cursor > to) break;
    if (n < cursor) continue;
    const gapEnd = n - 1n < to ? n - 1n : to;
    for (let a = cursor; a <= gapEnd && out.length < max; a++) out.push(a);
    cursor = n + 1n;
  }
  for (let a = cursor; a <= to && out.length < max; a++) out.push(a);
  return out;
}

/** NAPI's IP.provisionable: unowned, or an admin `other` reservation (gateway, resolver). */
export function ipProvisionable(rec: IpRecord | undefined, adminUuid: string): boolean {
  if (!rec || !rec.belongs_to_uuid) return true;
  return rec.belongs_to_type === 'other' && rec.belongs_to_uuid === adminUuid;
}

/** A record that automatic allocation may reuse. */
export function ipReusable(rec: IpRecord): boolean {
  return rec.reserved !== true && !rec.belongs_to_uuid;
}

/** Candidates considered on this attempt: 1 on the first, more as contention shows. */
export function spreadFor(attempt: number): number {
  return attempt <= 0 ? 1 : Math.min(64, 2 ** Math.min(attempt, 6));
}

// ---- allocation hints ----------------------------------------------------------------

/**
 * Per store, per network incarnation and range: an address below which every address of
 * the range is known to have a record. Records are never deleted while the network lives
 * (freeing rewrites them), so the fact stays true; a range change or a re-created network
 * (new createRevision) gives a different hint key. The hint only decides where the scan
 * starts; uniqueness never depends on it.
 */
const hints = new WeakMap<Store, Map<string, bigint>>();

function hintKey(network: NetworkRecord, createRevision: number): string {
  return `${network.uuid}/${createRevision}/${network.provision_start_ip}/${network.provision_end_ip}`;
}

function readHint(store: Store, key: string): bigint | undefined {
  return hints.get(store)?.get(key);
}

/**
 * Per store and hint key: addresses at or above the hint that transactions of this
 * process have committed records for. The hint moves up over them as the gaps below close.
 */
const recorded = new WeakMap<Store, Map<string, Set<bigint>>>();
const MAX_RECORDED = 4096;

/** A committed transaction gave address n a record. */
function noteRecorded(store: Store, key: string, n: bigint): void {
  const hint = readHint(store, key);
  if (hint === undefined || n < hint) return;
  let perStore = recorded.get(store);
  if (!perStore) {
    perStore = new Map();
    recorded.set(store, perStore);
  }
  let set = perStore.get(key);
  if (!set) {
    set = new Set();
    perStore.set(key, set);
  }
  set.add(n);
  let h = hint;
  while (set.delete(h)) h++;
  if (h > hint) writeHint(store, key, h);
  // An address claimed and never written would hold the hint back forever: forget then.
  if (set.size > MAX_RECORDED) perStore.delete(key);
}

function writeHint(store: Store, key: string, value: bigint): void {
  let m = hints.get(store);
  if (!m) {
    m = new Map();
    hints.set(store, m);
  }
  const prev = m.get(key);
  if (prev === undefined || value > prev) m.set(key, value);
}

// ---- in-flight claims ------------------------------------------------------------------

/**
 * Addresses that transactions in this process have picked but not yet committed. Other
 * allocations prefer different addresses, so a burst of concurrent creates on one
 * network spreads out instead of colliding on the lowest free address and retrying.
 * A claim lasts while its transaction attempt runs (the TTL only guards against one that
 * never finishes). Purely a hint: the key's CAS precondition is still what guarantees
 * uniqueness (across processes and replicas too).
 */
const CLAIM_TTL_MS = 2000;
const claims = new WeakMap<Store, Map<string, Map<string, number>>>();

function claimsFor(store: Store, networkUuid: string): Map<string, number> {
  let perStore = claims.get(store);
  if (!perStore) {
    perStore = new Map();
    claims.set(store, perStore);
  }
  let m = perStore.get(networkUuid);
  if (!m) {
    m = new Map();
    perStore.set(networkUuid, m);
  }
  const now = Date.now();
  for (const [ip, expires] of m) if (expires <= now) m.delete(ip);
  if (perStore.size > 1024) for (const [net, c] of perStore) if (c.size === 0 && c !== m) perStore.delete(net);
  return m;
}

// ---- transactional allocation ----------------------------------------------------------

const PAGE = 512;
/** Key reads the fast path spends before falling back to the scan. */
const PROBES = 4;
/** Re-scans when every candidate was taken between scan and read. */
const MAX_ROUNDS = 50;

export interface AllocatedIp {
  ip: string;
  /** The record being reused (phase 2), or undefined for a never-used address. */
  previous?: IpRecord;
}

export interface AllocateOptions {
  /** transact()'s attempt number; spreads candidates under contention. */
  attempt?: number;
}

/**
 * Picks a free address on the network inside tx (the address key becomes a
 * precondition). Throws 507 SubnetFull when there is none.
 */
export async function allocateIp(tx: Tx, network: NetworkRecord, opts: AllocateOptions = {}): Promise<AllocatedIp> {
  const got = await allocateIpOrNull(tx, network, opts);
  if (!got) throw subnetFull(network.uuid);
  return got;
}

/** As allocateIp, but undefined instead of SubnetFull (pools move on to the next network). */
export async function allocateIpOrNull(tx: Tx, network: NetworkRecord, opts: AllocateOptions = {}): Promise<AllocatedIp | undefined> {
  const family = network.family as Family;
  const start = ipToBigInt(network.provision_start_ip);
  const end = ipToBigInt(network.provision_end_ip);
  if (end < start) return undefined;
  const inFlight = claimsFor(tx.store, network.uuid);
  const spread = spreadFor(opts.attempt ?? 0);
  /** Claims ip for this attempt (synchronously, before any await); false if already claimed. */
  const claim = (ip: string): boolean => {
    if (inFlight.has(ip) || !tx.onFinish(() => inFlight.delete(ip))) return false;
    inFlight.set(ip, Date.now() + CLAIM_TTL_MS);
    return true;
  };
  const netKv = await tx.get(networkKey(network.uuid));
  const hk = hintKey(network, netKv?.createRevision ?? 0);
  const hint = readHint(tx.store, hk);
  const scanFrom = hint !== undefined && hint > start ? hint : start;
  if (hint !== undefined && (opts.attempt ?? 0) === 0) {
    const got = await probeFromHint(tx, network, family, scanFrom, end, inFlight, claim, (n) => writeHint(tx.store, hk, n));
    if (got) {
      const n = ipToBigInt(got.ip);
      tx.onFinish((committed) => committed && tx.writes(ipKey(network.uuid, got.ip)) && noteRecorded(tx.store, hk, n));
      return got;
    }
  }

  // Phase 1: never-used addresses, from the sorted existing keys. A candidate can be
  // claimed by a concurrent commit between our scan and our read of its key; then scan
  // again (the scan now sees it) rather than report a full subnet. Candidates another
  // attempt in this process is working on are passed over while the range has others.
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const want = spread * 2 ** Math.min(round, 6) + inFlight.size;
    const fresh = await neverUsed(tx, network.uuid, family, scanFrom, end, want, (firstGap) => writeHint(tx.store, hk, firstGap));
    if (fresh.length === 0) break;
    const ips = pickOrder(fresh).map((n) => bigIntToIp(n, family));
    for (const ip of preferUnclaimed(ips, inFlight, fresh.length < want)) {
      const mine = claim(ip);
      const kv = await tx.get(ipKey(network.uuid, ip));
      if (!kv) {
        tx.onFinish((committed) => committed && tx.writes(ipKey(network.uuid, ip)) && noteRecorded(tx.store, hk, ipToBigInt(ip)));
        return { ip };
      }
      if (mine) inFlight.delete(ip);
    }
  }

  // Phase 2: the longest-free records (same re-scan rule).
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const want = spread * 2 ** Math.min(round, 6) + inFlight.size;
    const freed = await oldestFreed(tx, network.uuid, family, start, end, want);
    if (freed.length === 0) break;
    for (const ip of preferUnclaimed(pickOrder(freed).map((r) => r.ip), inFlight, freed.length < want)) {
      const mine = claim(ip);
      const kv = await tx.get(ipKey(network.uuid, ip));
      if (!kv) return { ip };
      const now = JSON.parse(kv.value) as IpRecord;
      if (ipReusable(now)) return { ip, previous: now };
      if (mine) inFlight.delete(ip);
    }
  }
  return undefined;
}

/**
 * Reads addresses upward from `from` (below which every address has a record) and returns
 * the first absent one that no other attempt here has claimed, or undefined after PROBES
 * reads. While no claimed address was passed over, every address read and found present
 * extends the hint.
 */
async function probeFromHint(
  tx: Tx,
  network: NetworkRecord,
  family: Family,
  from: bigint,
  to: bigint,
  inFlight: Map<string, number>,
  claim: (ip: string) => boolean,
  advanceHint: (n: bigint) => void,
): Promise<AllocatedIp | undefined> {
  let contiguous = true;
  let reads = 0;
  for (let a = from; a <= to && reads < PROBES; a++) {
    const ip = bigIntToIp(a, family);
    if (inFlight.has(ip)) {
      contiguous = false;
      continue;
    }
    const mine = claim(ip);
    const kv = await tx.get(ipKey(network.uuid, ip));
    reads++;
    if (!kv) return { ip };
    if (mine) inFlight.delete(ip);
    if (contiguous) advanceHint(a + 1n);
  }
  return undefined;
}

/**
 * The candidates no attempt in this process has claimed; the claimed ones too only when
 * the scan reached the end of the range (nothing else is left to try).
 */
function preferUnclaimed(ips: string[], inFlight: Map<string, number>, exhausted: boolean): string[] {
  const free = ips.filter((ip) => !inFlight.has(ip));
  return free.length > 0 || !exhausted ? free : ips;
}

/** First candidate is the lowest (serial use stays sequential); then a random order. */
function pickOrder<T>(cands: T[]): T[] {
  if (cands.length <= 1) return cands;
  const first = randomInt(cands.length);
  return [cands[first], ...cands.slice(0, first), ...cands.slice(first + 1)];
}

async function neverUsed(
  tx: Tx,
  networkUuid: string,
  family: Family,
  from: bigint,
  to: bigint,
  max: number,
  onFirstGap: (n: bigint) => void,
): Promise<bigint[]> {
  if (from > to) return [];
  const prefix = ipPrefix(networkUuid);
  const hexLen = family === 'ipv4' ? 8 : 32;
  const lt = ipKey(networkUuid, bigIntToIp(to, family)) + '!';
  const out: bigint[] = [];
  let cursor = from;
  let gte: string | undefined = ipKey(networkUuid, bigIntToIp(from, family));
  let gt: string | undefined;
  let reportedGap = false;
  for (;;) {
    const kvs = await tx.range({ prefix, ...(gt ? { gt } : { gte }), lt, limit: PAGE });
    const used: bigint[] = [];
    for (const kv of kvs) {
      const hex = kv.key.slice(prefix.length);
      if (hex.length === hexLen && /^[0-9a-f]+$/.test(hex)) used.push(keyToNumber(hex));
    }
    // Gaps strictly before the last key seen on this page.
    const pageEnd = used.length > 0 ? used[used.length - 1] : to;
    const last = kvs.length < PAGE ? to : pageEnd;
    const gaps = gapAddresses(used, cursor, last, max - out.length);
    if (gaps.length > 0 && !reportedGap) {
      onFirstGap(gaps[0]);
      reportedGap = true;
    }
    out.push(...gaps);
    if (out.length >= max || kvs.length < PAGE) break;
    cursor = pageEnd + 1n;
    if (cursor > to) break;
    gt = kvs[kvs.length - 1].key;
    gte = undefined;
  }
  if (!reportedGap && out.length === 0) onFirstGap(to + 1n);
  return out;
}

/** The `max` reusable records freed longest ago (never-freed reusable records first). */
async function oldestFreed(tx: Tx, networkUuid: string, family: Family, from: bigint, to: bigint, max: number): Promise<IpRecord[]> {
  const prefix = ipPrefix(networkUuid);
  const lt = ipKey(networkUuid, bigIntToIp(to, family)) + '!';
  let gte: string | undefined = ipKey(networkUuid, bigIntToIp(from, family));
  let gt: string | undefined;
  const best: IpRecord[] = [];
  for (;;) {
    const kvs = await tx.range({ prefix, ...(gt ? { gt } : { gte }), lt, limit: PAGE });
    for (const kv of kvs) {
      let rec: IpRecord;
      try {
        rec = JSON.parse(kv.value) as IpRecord;
      } catch {
        continue;
      }
      if (!ipReusable(rec) || typeof rec.ip !== 'string') continue;
      best.push(rec);
      if (best.length > max * 4) trim(best, max);
    }
    if (kvs.length < PAGE) break;
    gt = kvs[kvs.length - 1].key;
    gte = undefined;
  }
  trim(best, max);
  return best;
}

function freedAt(r: IpRecord): string {
  return r.freed_timestamp ?? '';
}

function trim(list: IpRecord[], max: number): void {
  list.sort((a, b) => (freedAt(a) < freedAt(b) ? -1 : freedAt(a) > freedAt(b) ? 1 : 0));
  list.length = Math.min(list.length, max);
}

// ---- explicit addresses ------------------------------------------------------------------

/** NAPI's message for an address another object holds. */
export function ipInUse(rec: IpRecord): ReturnType<typeof invalidParams> {
  const type = rec.belongs_to_type ?? 'other';
  const id = rec.belongs_to_uuid ?? '';
  return invalidParams([usedBy('ip', type, id, `IP in use by ${type} "${id}"`)]);
}

export function ipOutsideSubnet(ip: string, networkUuid: string): ReturnType<typeof invalidParams> {
  return invalidParams([
    { field: 'ip', code: 'InvalidParameter', message: `IP address ${ip} is outside the subnet for given network ${networkUuid}` },
  ]);
}

/**
 * Checks that `ip` may be given to `claimant` on this network: inside the subnet, and
 * either unheld, held by the claimant already, or an admin `other` reservation. Returns
 * the current record (read through tx, so a concurrent claim conflicts).
 */
export async function checkExplicitIp(
  tx: Tx,
  network: NetworkRecord,
  ip: string,
  adminUuid: string,
  claimant?: string,
): Promise<IpRecord | undefined> {
  const subnet = subnetOf(network.subnet);
  if (familyOf(ip) !== subnet.family || !subnetContains(subnet, ip)) throw ipOutsideSubnet(ip, network.uuid);
  if (ip === subnetRouterAnycast(subnet)) {
    throw invalidParams([
      { field: 'ip', code: 'InvalidParameter', message: `IP address ${ip} is the subnet-router anycast address of network ${network.uuid}` },
    ]);
  }
  const rec = await tx.getJson<IpRecord>(ipKey(network.uuid, ip));
  if (rec && !ipProvisionable(rec, adminUuid) && !(claimant && rec.belongs_to_uuid === claimant)) throw ipInUse(rec);
  return rec;
}
