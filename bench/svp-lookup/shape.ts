/** The bench's synthetic fleet: NIC i, deterministic, shared by the server and the load generator. */
export const NODES = 100;

export function nodeUuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export interface BenchNic {
  vnet: number;
  mac: string;
  ip: string;
  /** 32-bit IPv4 value of ip. */
  ip4: number;
  node: number;
}

export function benchNic(i: number): BenchNic {
  const ip4 = (0x0a000000 + i) >>> 0;
  const ip = `${ip4 >>> 24}.${(ip4 >>> 16) & 255}.${(ip4 >>> 8) & 255}.${ip4 & 255}`;
  const m = i.toString(16).padStart(10, '0');
  const mac = `02:${m.slice(0, 2)}:${m.slice(2, 4)}:${m.slice(4, 6)}:${m.slice(6, 8)}:${m.slice(8, 10)}`;
  return { vnet: 10000 + (i % 16), mac, ip, ip4, node: i % NODES };
}
