/**
 * Stand-ins for an agent's data plane and SVP client in unit tests: a backend that plumbs
 * nothing and answers every query with nothing, and SVP lookups that find nothing and a
 * shootdown long-poll that stays idle. Tests extend or override the parts they observe.
 */
import type { SvpLookups } from '../../src/agent/agent.js';
import type { BackendStartOptions, DataplaneBackend, VnetEntries } from '../../src/agent/backend.js';
import type { NicPlumbing } from '../../src/agent/plumbing/nic.js';
import { SvpStatus } from '../../src/svp/codec.js';

export class NullBackend implements DataplaneBackend {
  readonly kind: string = 'null';
  async start(_o: BackendStartOptions): Promise<void> {}
  vnets(): number[] {
    return [];
  }
  plumbedMacs(): string[] {
    return [];
  }
  isPlumbed(_mac: string): boolean {
    return false;
  }
  vnetOf(_mac: string): number | undefined {
    return undefined;
  }
  async plumb(_p: NicPlumbing): Promise<{ firstOnVnet: boolean }> {
    return { firstOnVnet: false };
  }
  async stage(): Promise<{ firstOnVnet: boolean }> {
    return { firstOnVnet: false };
  }
  async activate(): Promise<void> {}
  isStaged(): boolean {
    return false;
  }
  async adopt(): Promise<void> {}
  async unplumb(_mac: string, _vnet: number): Promise<{ vnetRemoved: boolean }> {
    return { vnetRemoved: false };
  }
  installL3(_vnet: number, _ip: string, _mac: string, _underlay: string, _vlan?: number): void {}
  installL2(_vnet: number, _mac: string, _underlay: string, _vlan?: number): void {}
  async removeMac(): Promise<void> {}
  removeIp(): void {}
  async announce(): Promise<void> {}
  entries(vnet: number): VnetEntries {
    return { vnet, neighbours: [], fdb: [] };
  }
  close(): void {}
}

/** Lookups that find nothing; LOG_REQ answers nothing after 20 ms (an idle long-poll). */
export const quietSvp: SvpLookups = {
  vl3: async () => ({ server: 's', status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', mac: null, ip: null, port: 0 }),
  vl2: async () => ({ server: 's', status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', ip: null, port: 0 }),
  logReq: () => new Promise((r) => setTimeout(() => r({ server: 's', status: SvpStatus.OK, statusName: 'OK', entries: [], bytes: 4 }), 20)),
  logRm: async () => ({ server: 's', status: SvpStatus.OK, statusName: 'OK' }),
};
