import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, decodePacket, matchesVnet } from '../../src/agent/trace/decode.js';
import { renderRecord } from '../../src/agent/trace/render.js';
import { decodeSvpSegment } from '../../src/agent/trace/svp.js';
import { LogType, SvpOp, encodeFrame, encodeMessage } from '../../src/svp/codec.js';
import { ipToBytes, macToBytes } from '../../src/net/addr.js';

// ---------------------------------------------------------------------------------------
// Frame builders (checksums are left zero: the decoder does not verify them)

const hex = (s: string) => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');

function eth(dst: string, src: string, ethertype: number, payload: Buffer, vlan?: number): Buffer {
  const tag = vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, (vlan >> 8) & 0x0f, vlan & 0xff]);
  const type = Buffer.alloc(2);
  type.writeUInt16BE(ethertype);
  return Buffer.concat([macToBytes(dst), macToBytes(src), tag, type, payload]);
}

function ipv4(src: string, dst: string, proto: number, payload: Buffer, opts: { fragOffset?: number } = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(opts.fragOffset ?? 0, 6);
  h[8] = 64;
  h[9] = proto;
  Buffer.from(src.split('.').map(Number)).copy(h, 12);
  Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  return Buffer.concat([h, payload]);
}

function ipv6(src: string, dst: string, next: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = next;
  h[7] = 255;
  ipToBytes(src).copy(h, 8);
  ipToBytes(dst).copy(h, 24);
  return Buffer.concat([h, payload]);
}

function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

function tcp(sport: number, dport: number, flags: number, payload: Buffer, seq = 1000, ack = 2000): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(seq, 4);
  h.writeUInt32BE(ack, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  return Buffer.concat([h, payload]);
}

function icmpEcho(type: number, id: number, seq: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = type;
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  return b;
}

function arp(op: number, senderMac: string, senderIp: string, targetMac: string, targetIp: string): Buffer {
  return Buffer.concat([
    hex('0001 0800 06 04'),
    Buffer.from([0, op]),
    macToBytes(senderMac),
    Buffer.from(senderIp.split('.').map(Number)),
    macToBytes(targetMac),
    Buffer.from(targetIp.split('.').map(Number)),
  ]);
}

function vxlan(vni: number, inner: Buffer, flags = 0x08): Buffer {
  const h = Buffer.alloc(8);
  h[0] = flags;
  h[4] = (vni >> 16) & 0xff;
  h[5] = (vni >> 8) & 0xff;
  h[6] = vni & 0xff;
  return Buffer.concat([h, inner]);
}

const OUTER_SRC_MAC = '52:54:00:00:00:01';
const OUTER_DST_MAC = '52:54:00:00:00:02';
const A_MAC = '02:00:0a:c8:00:01';
const B_MAC = '02:00:0a:c8:00:02';

function underlay(inner: Buffer, vni = 4242, flags = 0x08): Buffer {
  return eth(OUTER_DST_MAC, OUTER_SRC_MAC, 0x0800, ipv4('198.18.0.1', '198.18.0.2', 17, udp(51234, 4789, vxlan(vni, inner, flags))));
}

const innerPing = eth(B_MAC, A_MAC, 0x0800, ipv4('10.200.0.1', '10.200.0.2', 1, icmpEcho(8, 0x1234, 7)));

// ---------------------------------------------------------------------------------------

describe('trace decode: VXLAN', () => {
  it('decodes outer addresses, I flag, VNI and an inner ICMP echo', () => {
    const { record, line } = decodePacket(underlay(innerPing));
    assert.equal(record.ip?.src, '198.18.0.1');
    assert.equal(record.ip?.dst, '198.18.0.2');
    assert.deepEqual(record.udp, { srcPort: 51234, dstPort: 4789, length: 8 + 8 + innerPing.length });
    assert.equal(record.vxlan?.vni, 4242);
    assert.equal(record.vxlan?.i, true);
    const inner = record.vxlan!.inner;
    assert.equal(inner.link?.src, A_MAC);
    assert.equal(inner.link?.dst, B_MAC);
    assert.equal(inner.ip?.src, '10.200.0.1');
    assert.equal(inner.icmp?.name, 'echo request');
    assert.equal(inner.icmp?.id, 0x1234);
    assert.equal(inner.icmp?.seq, 7);
    assert.equal(
      line,
      `VXLAN 198.18.0.1:51234 > 198.18.0.2:4789 flags 0x08 [I] vni 4242: ${A_MAC} > ${B_MAC} IPv4 10.200.0.1 > 10.200.0.2 ICMP echo request id 4660 seq 7`,
    );
  });

  it('decodes ARP inside VXLAN (request and reply)', () => {
    const req = eth('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.200.0.1', '00:00:00:00:00:00', '10.200.0.2'));
    const r1 = decodePacket(underlay(req));
    assert.deepEqual(r1.record.vxlan?.inner.arp, {
      op: 'request',
      senderMac: A_MAC,
      senderIp: '10.200.0.1',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.200.0.2',
    });
    assert.match(r1.line, /vni 4242: 02:00:0a:c8:00:01 > ff:ff:ff:ff:ff:ff ARP who-has 10\.200\.0\.2 tell 10\.200\.0\.1$/);

    const rep = eth(A_MAC, B_MAC, 0x0806, arp(2, B_MAC, '10.200.0.2', A_MAC, '10.200.0.1'));
    const r2 = decodePacket(underlay(rep));
    assert.equal(r2.record.vxlan?.inner.arp?.op, 'reply');
    assert.match(r2.line, /ARP 10\.200\.0\.2 is-at 02:00:0a:c8:00:02$/);

    const garp = eth('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.200.0.1', '00:00:00:00:00:00', '10.200.0.1'));
    assert.match(decodePacket(underlay(garp)).line, /\(gratuitous\)$/);
  });

  it('decodes TCP inside VXLAN with ports and flags', () => {
    const inner = eth(B_MAC, A_MAC, 0x0800, ipv4('10.200.0.1', '10.200.0.2', 6, tcp(40000, 80, 0x18, Buffer.from('GET / HTTP/1.0\r\n\r\n'))));
    const { record, line } = decodePacket(underlay(inner));
    const t = record.vxlan!.inner.tcp!;
    assert.equal(t.srcPort, 40000);
    assert.equal(t.dstPort, 80);
    assert.equal(t.flags, 'P.');
    assert.equal(t.payloadLength, 18);
    assert.match(line, /IPv4 10\.200\.0\.1:40000 > 10\.200\.0\.2:80 TCP \[P\.\] seq 1000 ack 2000 len 18$/);
  });

  it('decodes an inner 802.1Q tag', () => {
    const inner = eth(B_MAC, A_MAC, 0x0800, ipv4('10.200.0.1', '10.200.0.2', 17, udp(5000, 53, Buffer.alloc(12))), 42);
    const { record, line } = decodePacket(underlay(inner, 77));
    assert.equal(record.vxlan?.vni, 77);
    assert.equal(record.vxlan?.inner.link?.vlan, 42);
    assert.equal(record.vxlan?.inner.link?.ethertype, 0x0800);
    assert.equal(record.vxlan?.inner.udp?.dstPort, 53);
    assert.match(line, /vni 77: 02:00:0a:c8:00:01 > 02:00:0a:c8:00:02 vlan 42 IPv4 10\.200\.0\.1:5000 > 10\.200\.0\.2:53 UDP len 12$/);
  });

  it('decodes IPv6 inside VXLAN, including neighbour solicitation and advertisement', () => {
    const echo = eth(B_MAC, A_MAC, 0x86dd, ipv6('fd00::1', 'fd00::2', 58, icmpEcho(128, 9, 3)));
    const r1 = decodePacket(underlay(echo));
    assert.equal(r1.record.vxlan?.inner.ip?.version, 6);
    assert.equal(r1.record.vxlan?.inner.ip?.src, 'fd00::1');
    assert.match(r1.line, /IPv6 fd00::1 > fd00::2 ICMPv6 echo request id 9 seq 3$/);

    const ns = Buffer.concat([hex('87 00 0000 00000000'), ipToBytes('fd00::2'), hex('01 01'), macToBytes(A_MAC)]);
    const r2 = decodePacket(underlay(eth('33:33:ff:00:00:02', A_MAC, 0x86dd, ipv6('fd00::1', 'ff02::1:ff00:2', 58, ns))));
    assert.equal(r2.record.vxlan?.inner.icmp?.target, 'fd00::2');
    assert.equal(r2.record.vxlan?.inner.icmp?.lladdr, A_MAC);
    assert.match(r2.line, /ICMPv6 neighbor solicitation who-has fd00::2 lladdr 02:00:0a:c8:00:01$/);

    const na = Buffer.concat([hex('88 00 0000 60000000'), ipToBytes('fd00::2'), hex('02 01'), macToBytes(B_MAC)]);
    const r3 = decodePacket(underlay(eth(A_MAC, B_MAC, 0x86dd, ipv6('fd00::2', 'fd00::1', 58, na))));
    assert.match(r3.line, /ICMPv6 neighbor advertisement fd00::2 is-at 02:00:0a:c8:00:02$/);
  });

  it('decodes IPv6 UDP inside VXLAN with bracketed host:port', () => {
    const inner = eth(B_MAC, A_MAC, 0x86dd, ipv6('fd00::1', 'fd00::2', 17, udp(1111, 2222, Buffer.alloc(4))));
    assert.match(decodePacket(underlay(inner)).line, /IPv6 \[fd00::1\]:1111 > \[fd00::2\]:2222 UDP len 4$/);
  });

  it('shows a missing I flag', () => {
    const { record, line } = decodePacket(underlay(innerPing, 5, 0x00));
    assert.equal(record.vxlan?.i, false);
    assert.match(line, /flags 0x00 \[no I\] vni 5:/);
  });

  it('decodes VXLAN over an IPv6 underlay and on a Linux cooked capture', () => {
    const v6 = eth(OUTER_DST_MAC, OUTER_SRC_MAC, 0x86dd, ipv6('2001:db8::1', '2001:db8::2', 17, udp(40000, 4789, vxlan(9, innerPing))));
    assert.match(decodePacket(v6).line, /^VXLAN \[2001:db8::1\]:40000 > \[2001:db8::2\]:4789 flags 0x08 \[I\] vni 9:/);

    const ipPacket = ipv4('198.18.0.1', '198.18.0.2', 17, udp(51234, 4789, vxlan(4242, innerPing)));
    // SLL: packet type 4 (outgoing), ARPHRD_ETHER, addr len 6, addr, protocol 0x0800.
    const sll = Buffer.concat([hex('0004 0001 0006'), macToBytes(OUTER_SRC_MAC), hex('0000 0800'), ipPacket]);
    const r1 = decodeFrame(sll, 'linux_sll');
    assert.equal(r1.link?.kind, 'sll');
    assert.equal(r1.link?.direction, 'outgoing');
    assert.equal(r1.vxlan?.vni, 4242);
    assert.equal(r1.vxlan?.inner.link?.src, A_MAC);
    // SLL2: protocol, reserved, ifindex 7, ARPHRD_ETHER, packet type 0 (host), addr len 6, addr.
    const sll2 = Buffer.concat([hex('0800 0000 00000007 0001 00 06'), macToBytes(OUTER_SRC_MAC), hex('0000'), ipPacket]);
    const r2 = decodeFrame(sll2, 'linux_sll2');
    assert.equal(r2.link?.kind, 'sll2');
    assert.equal(r2.link?.ifindex, 7);
    assert.equal(r2.link?.direction, 'host');
    assert.equal(r2.vxlan?.inner.icmp?.seq, 7);
    // Raw IP.
    assert.equal(decodeFrame(ipPacket, 'raw').vxlan?.vni, 4242);
  });

  it('ignores Ethernet padding after a short IP packet', () => {
    const frame = Buffer.concat([eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp(1296, 5555, 0x10, Buffer.alloc(0)))), Buffer.alloc(6, 0xee)]);
    const rec = decodeFrame(frame);
    assert.equal(rec.tcp?.payloadLength, 0);
    assert.equal(rec.svp, undefined);
  });

  it('does not decode L4 of a non-first IPv4 fragment', () => {
    const frame = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 17, Buffer.alloc(16, 0xab), { fragOffset: 185 }));
    const { record, line } = decodePacket(frame);
    assert.equal(record.ip?.fragment, true);
    assert.equal(record.udp, undefined);
    assert.match(line, /proto 17 fragment$/);
  });
});

describe('trace decode: truncation never throws', () => {
  const full = underlay(eth(B_MAC, A_MAC, 0x0800, ipv4('10.200.0.1', '10.200.0.2', 6, tcp(40000, 80, 0x02, Buffer.alloc(0)))), 4242);

  it('renders every prefix of a VXLAN frame as decoded-so-far or "truncated …"', () => {
    // Layer boundaries in the full frame: outer eth 14, IPv4 20, UDP 8, VXLAN 8, inner eth 14, IPv4 20, TCP 20.
    const expectations: Array<[number, RegExp]> = [
      [0, /^truncated Ethernet header \(0 of 14 bytes\)$/],
      [13, /^truncated Ethernet header \(13 of 14 bytes\)$/],
      [14 + 19, /^truncated IPv4 header \(19 of 20 bytes\)/],
      [34 + 7, /^truncated UDP header \(7 of 8 bytes\): IPv4 198\.18\.0\.1 > 198\.18\.0\.2 proto 17$/],
      [42 + 7, /^truncated VXLAN header \(7 of 8 bytes\): IPv4 198\.18\.0\.1:51234 > 198\.18\.0\.2:4789 UDP len/],
      [50 + 13, /vni 4242: truncated inner Ethernet header \(13 of 14 bytes\)$/],
      [64 + 19, /vni 4242: 02:00:0a:c8:00:01 > 02:00:0a:c8:00:02 truncated inner IPv4 header \(19 of 20 bytes\)$/],
      [84 + 19, /vni 4242: .* IPv4 10\.200\.0\.1 > 10\.200\.0\.2 proto 6 truncated TCP header \(19 of 20 bytes\)$/],
    ];
    for (const [len, re] of expectations) {
      const line = decodePacket(full.subarray(0, len)).line;
      assert.match(line, re, `prefix of ${len} bytes: ${line}`);
    }
    for (let len = 0; len <= full.length; len++) {
      const { line } = decodePacket(full.subarray(0, len));
      assert.equal(typeof line, 'string');
      if (len < full.length) assert.match(line, /truncated/, `prefix of ${len} bytes: ${line}`);
      else assert.doesNotMatch(line, /truncated/);
    }
  });

  it('survives truncated ARP, 802.1Q, IPv6 and ICMP', () => {
    const arpFrame = eth('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.0.0.1', '00:00:00:00:00:00', '10.0.0.2'));
    assert.match(decodePacket(arpFrame.subarray(0, 14 + 20)).line, /truncated ARP header \(20 of 28 bytes\)/);
    const tagged = eth(B_MAC, A_MAC, 0x0800, Buffer.alloc(0), 5);
    assert.match(decodePacket(tagged.subarray(0, 16)).line, /^truncated 802\.1Q tag \(2 of 4 bytes\)/);
    const v6 = eth(B_MAC, A_MAC, 0x86dd, ipv6('fd00::1', 'fd00::2', 58, icmpEcho(128, 1, 1)));
    assert.match(decodePacket(v6.subarray(0, 14 + 39)).line, /^truncated IPv6 header \(39 of 40 bytes\)/);
    assert.match(decodePacket(v6.subarray(0, 14 + 40 + 6)).line, /^truncated ICMPv6 header \(echo\) \(6 of 8 bytes\)/);
    assert.match(decodePacket(Buffer.alloc(5), 'linux_sll').line, /^truncated Linux cooked header/);
    assert.match(decodePacket(Buffer.alloc(5), 'linux_sll2').line, /^truncated Linux cooked v2 header/);
  });

  it('survives garbage of every length', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff);
    for (let len = 0; len < 200; len++) {
      const junk = Buffer.from(Array.from({ length: len }, rand));
      for (const link of ['ethernet', 'linux_sll', 'linux_sll2', 'raw'] as const) {
        assert.equal(typeof decodePacket(junk, link).line, 'string');
      }
      // Garbage behind valid VXLAN/UDP/TCP headers goes deeper into the decoders.
      assert.equal(typeof decodePacket(underlay(junk)).line, 'string');
      const seg = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp(40000, 1296, 0x18, junk)));
      assert.equal(typeof decodePacket(seg).line, 'string');
    }
  });

  it('bounds VXLAN nesting', () => {
    let frame = innerPing;
    for (let i = 0; i < 10; i++) frame = underlay(frame, i);
    const { line } = decodePacket(frame);
    assert.match(line, /VXLAN nested too deep/);
  });
});

describe('trace decode: SVP', () => {
  const id1 = 1 << 24; // id bytes 01 00 00 00
  const vl2Req = encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes('00:0a:95:9d:68:16'), vnetId: 12340 }, id1);
  const vl2Ack = encodeMessage({ op: SvpOp.VL2_ACK, status: 0, port: 4789, ip: ipToBytes('192.168.1.1') }, id1);
  const vl3Req = encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.1'), type: 1, vnetId: 12340 }, 2);
  const vl3Ack = encodeMessage(
    { op: SvpOp.VL3_ACK, status: 0, mac: macToBytes('00:0a:95:9d:68:16'), port: 4789, ip: ipToBytes('192.168.1.1') },
    2,
  );

  function segment(payload: Buffer, toServer = true): Buffer {
    const [sport, dport] = toServer ? [40000, 1296] : [1296, 40000];
    const [src, dst] = toServer ? ['10.0.0.5', '10.0.0.9'] : ['10.0.0.9', '10.0.0.5'];
    return eth(B_MAC, A_MAC, 0x0800, ipv4(src, dst, 6, tcp(sport, dport, 0x18, payload)));
  }

  it('matches the golden VL2_REQ frame from the spec', () => {
    const golden = hex('00 01 00 03 00 00 00 0c 01 00 00 00 8e 78 82 8c 00 0a 95 9d 68 16 00 00 00 00 30 34');
    const { record, line } = decodePacket(segment(golden));
    assert.deepEqual(record.svp?.messages, [
      { op: 'VL2_REQ', opCode: 3, id: '0x01000000', size: 12, crcOk: true, mac: '00:0a:95:9d:68:16', vnet: 12340 },
    ]);
    assert.equal(line, 'SVP 10.0.0.5:40000 > 10.0.0.9:1296 [P.] len 28: VL2_REQ id 0x01000000 mac 00:0a:95:9d:68:16 vnet 12340');
  });

  it('decodes ACKs from the server side with status and addresses', () => {
    const r1 = decodePacket(segment(vl2Ack, false));
    assert.match(r1.line, /^SVP 10\.0\.0\.9:1296 > 10\.0\.0\.5:40000 .*: VL2_ACK id 0x01000000 OK at 192\.168\.1\.1:4789$/);
    const nf = encodeMessage({ op: SvpOp.VL2_ACK, status: 2, port: 0, ip: Buffer.alloc(16) }, 5);
    assert.match(decodePacket(segment(nf, false)).line, /VL2_ACK id 0x00000005 NOTFOUND$/);
    const r3 = decodePacket(segment(vl3Ack, false));
    assert.equal(r3.record.svp?.messages[0]?.status, 'OK');
    assert.match(r3.line, /VL3_ACK id 0x00000002 OK mac 00:0a:95:9d:68:16 at 192\.168\.1\.1:4789$/);
  });

  it('decodes several frames in one segment', () => {
    const { record, line } = decodePacket(segment(Buffer.concat([vl2Req, vl3Req, encodeMessage({ op: SvpOp.PING }, 7)])));
    assert.deepEqual(
      record.svp?.messages.map((m) => m.op),
      ['VL2_REQ', 'VL3_REQ', 'PING'],
    );
    assert.match(line, /: VL2_REQ id 0x01000000 mac 00:0a:95:9d:68:16 vnet 12340; VL3_REQ id 0x00000002 ip 10\.0\.0\.1 type 1 vnet 12340; PING id 0x00000007$/);
  });

  it('marks a frame cut by the segment end, and a segment that starts mid-frame, as fragments', () => {
    const two = Buffer.concat([vl2Req, vl3Req]);
    const cut = decodeSvpSegment(two.subarray(0, vl2Req.length + 20));
    assert.equal(cut.messages.length, 2);
    assert.equal(cut.messages[0]?.op, 'VL2_REQ');
    assert.deepEqual(cut.messages[1]?.fragment, { have: 20, need: 40 });
    assert.equal(cut.messages[1]?.op, 'VL3_REQ');

    const headerOnly = decodeSvpSegment(vl2Req.subarray(0, 10));
    assert.deepEqual(headerOnly.messages, [{ op: 'fragment', fragment: { have: 10, need: 16 } }]);

    const rest = decodePacket(segment(vl3Req.subarray(20)));
    assert.equal(rest.record.svp?.messages[0]?.op, 'fragment');
    assert.match(rest.line, /fragment \(20 bytes mid-frame\)$/);

    assert.match(decodePacket(segment(two.subarray(0, vl2Req.length + 20))).line, /VL3_REQ id 0x00000002 fragment \(20 of 40 bytes\)$/);
  });

  it('flags a bad CRC and a payload that does not fit its op', () => {
    const bad = Buffer.from(vl2Req);
    bad[bad.length - 1] ^= 0xff;
    const r1 = decodePacket(segment(bad));
    assert.equal(r1.record.svp?.messages[0]?.crcOk, false);
    assert.match(r1.line, /bad-crc$/);

    const wrongSize = encodeFrame(SvpOp.VL2_REQ, 3, Buffer.alloc(5));
    const r2 = decodePacket(segment(wrongSize));
    assert.match(r2.record.svp?.messages[0]?.error ?? '', /12 bytes/);
    assert.match(r2.line, /VL2_REQ id 0x00000003 bad payload:/);
  });

  it('decodes LOG_REQ, LOG_ACK entry counts, LOG_RM and LOG_RM_ACK', () => {
    const logReq = encodeMessage({ op: SvpOp.LOG_REQ, count: 4096, ip: ipToBytes('198.18.0.1') }, 10);
    const id = (n: number) => Buffer.alloc(16, n);
    const logAck = encodeMessage(
      {
        op: SvpOp.LOG_ACK,
        status: 0,
        entries: [
          { type: LogType.VL2, id: id(1), mac: macToBytes(A_MAC), vnetId: 12340 },
          { type: LogType.VL3, id: id(2), ip: ipToBytes('10.0.0.1'), vlan: 0, vnetId: 12340 },
          { type: LogType.VL2, id: id(3), mac: macToBytes(B_MAC), vnetId: 999 },
        ],
      },
      10,
    );
    const logRm = encodeMessage({ op: SvpOp.LOG_RM, ids: [id(1), id(2)] }, 11);
    const logRmAck = encodeMessage({ op: SvpOp.LOG_RM_ACK, status: 0 }, 11);
    assert.match(decodePacket(segment(logReq)).line, /LOG_REQ id 0x0000000a count 4096 ul3 198\.18\.0\.1$/);
    const ack = decodePacket(segment(logAck, false));
    assert.deepEqual(ack.record.svp?.messages[0]?.entries, { vl2: 2, vl3: 1 });
    assert.match(ack.line, /LOG_ACK id 0x0000000a OK 3 entries \(2 VL2, 1 VL3\)$/);
    assert.match(decodePacket(segment(Buffer.concat([logRm]))).line, /LOG_RM id 0x0000000b 2 ids$/);
    assert.match(decodePacket(segment(logRmAck, false)).line, /LOG_RM_ACK id 0x0000000b OK$/);
    assert.equal(matchesVnet(ack.record, 999), true);
    assert.equal(matchesVnet(ack.record, 1), false);
  });

  it('leaves TCP on other ports and empty SVP segments alone', () => {
    const syn = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.5', '10.0.0.9', 6, tcp(40000, 1296, 0x02, Buffer.alloc(0))));
    const r = decodePacket(syn);
    assert.equal(r.record.svp, undefined);
    assert.equal(r.line, 'IPv4 10.0.0.5:40000 > 10.0.0.9:1296 TCP [S] seq 1000 ack 2000 len 0');
    const other = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.5', '10.0.0.9', 6, tcp(40000, 80, 0x18, vl2Req)));
    assert.equal(decodeFrame(other).svp, undefined);
  });

  it('honours custom ports', () => {
    const seg = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.5', '10.0.0.9', 6, tcp(40000, 7777, 0x18, vl2Req)));
    assert.equal(decodeFrame(seg, 'ethernet', { svpPort: 7777 }).svp?.messages[0]?.op, 'VL2_REQ');
    const vx = eth(OUTER_DST_MAC, OUTER_SRC_MAC, 0x0800, ipv4('198.18.0.1', '198.18.0.2', 17, udp(1, 8472, vxlan(3, innerPing))));
    assert.equal(decodeFrame(vx).vxlan, undefined);
    assert.equal(decodeFrame(vx, 'ethernet', { vxlanPort: 8472 }).vxlan?.vni, 3);
  });
});

describe('trace decode: --vnet filter', () => {
  it('keeps VXLAN with that VNI and SVP naming that vnet, drops the rest', () => {
    assert.equal(matchesVnet(decodeFrame(underlay(innerPing, 4242)), 4242), true);
    assert.equal(matchesVnet(decodeFrame(underlay(innerPing, 4243)), 4242), false);
    const req = encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.1'), type: 1, vnetId: 4242 }, 1);
    const seg = eth(B_MAC, A_MAC, 0x0800, ipv4('10.0.0.5', '10.0.0.9', 6, tcp(40000, 1296, 0x18, req)));
    assert.equal(matchesVnet(decodeFrame(seg), 4242), true);
    assert.equal(matchesVnet(decodeFrame(seg), 1), false);
    assert.equal(matchesVnet(decodeFrame(innerPing), 4242), false);
  });

  it('renders records the same from JSON round trips', () => {
    const rec = decodeFrame(underlay(innerPing));
    assert.equal(renderRecord(JSON.parse(JSON.stringify(rec))), renderRecord(rec));
  });
});
