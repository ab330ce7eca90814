/**
 * A read-only Store that generates the bench fleet's overlay keys on demand (underlay
 * records for every node, then an ovl/mac and an ovl/ip key per NIC, with the exact values
 * the NAPI write path writes). The index loads from it through its normal paged range +
 * watch path, but no copy of the data sits in memory beside the index, so the memory the
 * index adds can be measured alone.
 */
import { ipMappingKey, macMappingKey, underlayKey } from '../../src/overlay/keys.js';
import type { Batch, CommitResult, KeyValue, RangeOptions, RangeResult, Store, Watcher } from '../../src/store/types.js';
import { NODES, benchNic, nodeUuid } from './shape.js';

export class SyntheticStore implements Store {
  readonly kind = 'memory' as const;
  /** Position after the last key of each page handed out (pages are read with gt). */
  private readonly cursors = new Map<string, number>();
  constructor(readonly nics: number) {}

  get total(): number {
    return NODES + 2 * this.nics;
  }

  private kvAt(p: number): KeyValue {
    let key: string;
    let value: string;
    if (p < NODES) {
      key = underlayKey(nodeUuid(p));
      value = JSON.stringify({ cn_uuid: nodeUuid(p), ip: `192.168.${p >> 8}.${(p & 255) + 1}`, port: 4789 });
    } else {
      const i = (p - NODES) >> 1;
      const nic = benchNic(i);
      const cn = nodeUuid(nic.node);
      if ((p - NODES) % 2 === 0) {
        key = macMappingKey(nic.vnet, nic.mac);
        value = JSON.stringify({ mac: nic.mac, vnet_id: nic.vnet, cn_uuid: cn, vlan_id: 0, ip: nic.ip });
      } else {
        key = ipMappingKey(nic.vnet, nic.ip);
        value = JSON.stringify({ ip: nic.ip, mac: nic.mac, vnet_id: nic.vnet, cn_uuid: cn, vlan_id: 0 });
      }
    }
    return { key, value, createRevision: 1, modRevision: 1 };
  }

  async range(opts: RangeOptions): Promise<RangeResult> {
    if (opts.prefix !== undefined && !'ovl/'.startsWith(opts.prefix) && !opts.prefix.startsWith('ovl/'))
      return { kvs: [], revision: 1 };
    let p = opts.gt !== undefined ? (this.cursors.get(opts.gt) ?? this.total) : 0;
    if (opts.gt !== undefined) this.cursors.delete(opts.gt);
    const limit = opts.limit ?? this.total;
    const kvs: KeyValue[] = [];
    while (p < this.total && kvs.length < limit) kvs.push(this.kvAt(p++));
    if (kvs.length > 0) this.cursors.set(kvs[kvs.length - 1].key, p);
    return { kvs, revision: 1 };
  }

  async get(): Promise<KeyValue | undefined> {
    throw new Error('SyntheticStore: get is not supported');
  }
  async getMany(): Promise<Map<string, KeyValue>> {
    throw new Error('SyntheticStore: getMany is not supported');
  }
  async count(): Promise<number> {
    return this.total;
  }
  async commit(_batch: Batch): Promise<CommitResult> {
    throw new Error('SyntheticStore is read-only');
  }
  async revision(): Promise<number> {
    return 1;
  }
  watch(): Watcher {
    return { close() {} }; // nothing ever changes
  }
  async compact(): Promise<void> {}
  async healthy(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}
