/* Unit tests of native/src/vxlan.c on crafted frames: encap/decap, checksums, ARP/ND
 * answers, ICMP too-big, TSO/USO segmentation and TCP coalescing. Prints one line per
 * check; exits 1 when any failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "rhumb_csum.h"
#include "rhumb_vxlan.h"

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const uint8_t MAC_A[6] = { 0x02, 0, 0x5e, 0, 0, 1 }, MAC_B[6] = { 0x02, 0, 0x5e, 0, 0, 2 };
static const uint8_t IP_A[4] = { 10, 0, 0, 1 }, IP_B[4] = { 10, 0, 0, 2 };

/* Verifies an L4 checksum (TCP/UDP/ICMPv6) over IPv4/IPv6 with its pseudo header: folds to 0. */
static int l4_ok(const uint8_t *f, size_t len)
{
	struct rv_l3 l;
	uint32_t s;
	size_t l4len;
	if (rv_parse(f, len, &l) != 0 || !l.l4)
		return 0;
	if (l.ethertype == RV_ETH_P_IP) {
		uint8_t t[4] = { 0, l.proto, 0, 0 };
		l4len = rv_get16(f + l.l3 + 2) - (l.l4 - l.l3);
		t[2] = (uint8_t)(l4len >> 8); t[3] = (uint8_t)l4len;
		s = rhumb_csum_partial(f + l.l3 + 12, 8, 0);
		s = rhumb_csum_partial(t, 4, s);
	} else {
		uint8_t t[8] = { 0 };
		l4len = rv_get16(f + l.l3 + 4);
		t[2] = (uint8_t)(l4len >> 8); t[3] = (uint8_t)l4len; t[7] = l.proto;
		s = rhumb_csum_partial(f + l.l3 + 8, 32, 0);
		s = rhumb_csum_partial(t, 8, s);
	}
	return rhumb_csum_fold(rhumb_csum_partial(f + l.l4, l4len, s)) == 0;
}

static int ip4_ok(const uint8_t *f, size_t l3) { return rhumb_csum_fold(rhumb_csum_partial(f + l3, 20, 0)) == 0; }

/* Ethernet + IPv4 + TCP (20-byte header + 12 bytes of timestamp option) + payload. */
static size_t tcp4(uint8_t *f, size_t plen, uint32_t seq, uint8_t flags)
{
	size_t hl = 14 + 20 + 32;
	memcpy(f, MAC_B, 6); memcpy(f + 6, MAC_A, 6); rv_put16(f + 12, RV_ETH_P_IP);
	memset(f + 14, 0, 20);
	f[14] = 0x45; rv_put16(f + 16, (uint16_t)(20 + 32 + plen)); rv_put16(f + 18, 100); rv_put16(f + 20, 0x4000);
	f[22] = 64; f[23] = 6; memcpy(f + 26, IP_A, 4); memcpy(f + 30, IP_B, 4);
	rv_put16(f + 24, rhumb_csum_fold(rhumb_csum_partial(f + 14, 20, 0)));
	memset(f + 34, 0, 32);
	rv_put16(f + 34, 40000); rv_put16(f + 36, 5201); rv_put32(f + 38, seq); rv_put32(f + 42, 777);
	f[46] = 8 << 4; f[47] = flags; rv_put16(f + 48, 500);
	f[54] = 1; f[55] = 1; f[56] = 8; f[57] = 10; rv_put32(f + 58, 123); rv_put32(f + 62, 456);
	for (size_t i = 0; i < plen; i++) f[hl + i] = (uint8_t)(i * 7 + seq);
	return hl + plen;
}

static void test_vxlan_header(void)
{
	uint8_t h[8];
	uint32_t vni = 0;
	rv_vxlan_hdr(h, 0xabcdef);
	CHECK(h[0] == 0x08 && h[1] == 0 && h[7] == 0, "flags byte 0x08, reserved zero");
	CHECK(rv_vxlan_parse(h, 8, &vni) == 0 && vni == 0xabcdef, "VNI round trip (%x)", vni);
	h[0] = 0;
	CHECK(rv_vxlan_parse(h, 8, &vni) == -2, "I flag missing is refused");
	CHECK(rv_vxlan_parse(h, 7, &vni) == -1, "short header is refused");
}

static void test_vlan(void)
{
	uint8_t f[200], t[204];
	size_t len = tcp4(f, 10, 1, 0x10), tl = len;
	uint8_t *p;
	struct rv_l3 l;
	tl = rv_vlan_insert(t, f, len, 5);
	CHECK(tl == len + 4 && rv_get16(t + 12) == 0x8100 && (rv_get16(t + 14) & 0xfff) == 5, "802.1Q tag inserted");
	CHECK(rv_parse(t, tl, &l) == 0 && l.vlan == 5 && l.ethertype == RV_ETH_P_IP && l.l3 == 18, "tagged frame parses");
	p = rv_vlan_strip(t, &tl);
	CHECK(tl == len && memcmp(p, f, len) == 0, "strip restores the frame");
}

static void test_arp_nd(void)
{
	uint8_t req[42] = { 0 }, rep[42];
	memset(req, 0xff, 6); memcpy(req + 6, MAC_A, 6); rv_put16(req + 12, RV_ETH_P_ARP);
	rv_put16(req + 14, 1); rv_put16(req + 16, 0x0800); req[18] = 6; req[19] = 4; rv_put16(req + 20, 1);
	memcpy(req + 22, MAC_A, 6); memcpy(req + 28, IP_A, 4); memcpy(req + 38, IP_B, 4);
	CHECK(rv_arp_reply(rep, req, 42, MAC_B) == 42, "ARP reply built");
	CHECK(memcmp(rep, MAC_A, 6) == 0 && memcmp(rep + 6, MAC_B, 6) == 0, "reply goes to the requester from the answer");
	CHECK(rv_get16(rep + 20) == 2 && memcmp(rep + 22, MAC_B, 6) == 0 && memcmp(rep + 28, IP_B, 4) == 0, "sender = target IP at MAC_B");
	CHECK(memcmp(rep + 32, MAC_A, 6) == 0 && memcmp(rep + 38, IP_A, 4) == 0, "target = requester");
	rv_put16(req + 20, 2);
	CHECK(rv_arp_reply(rep, req, 42, MAC_B) == 0, "an ARP reply is not answered");

	/* IPv6 NS from fe80::1 for fe80::2 */
	uint8_t ns[14 + 40 + 32] = { 0 }, na[200], tgt[16] = { 0xfe, 0x80 };
	tgt[15] = 2;
	memcpy(ns, MAC_B, 6); memcpy(ns + 6, MAC_A, 6); rv_put16(ns + 12, RV_ETH_P_IPV6);
	ns[14] = 0x60; rv_put16(ns + 18, 32); ns[20] = 58; ns[21] = 255;
	ns[22] = 0xfe; ns[23] = 0x80; ns[37] = 1;
	ns[38] = 0xff; ns[39] = 0x02; ns[49] = 1; ns[50] = 0xff; ns[53] = 2;
	ns[54] = 135; memcpy(ns + 62, tgt, 16); ns[78] = 1; ns[79] = 1; memcpy(ns + 80, MAC_A, 6);
	uint8_t got[16];
	CHECK(rv_nd_target(ns, sizeof(ns), got) == 1 && memcmp(got, tgt, 16) == 0, "NS target found");
	size_t n = rv_nd_advert(na, sizeof(na), ns, sizeof(ns), MAC_B);
	CHECK(n == 14 + 40 + 32, "NA length %zu", n);
	CHECK(na[54] == 136 && (na[58] & 0x40) && memcmp(na + 62, tgt, 16) == 0, "NA solicited for the target");
	CHECK(na[78] == 2 && memcmp(na + 80, MAC_B, 6) == 0, "target link-layer address option");
	CHECK(l4_ok(na, n), "ICMPv6 checksum verifies");
}

static void test_icmp_too_big(void)
{
	uint8_t f[1600], out[1600];
	size_t len = tcp4(f, 1400, 1, 0x10), n;
	n = rv_icmp_too_big(out, sizeof(out), f, len, 1450);
	CHECK(n == 14 + 20 + 8 + 20 + 8, "ICMP quotes IP header + 8 bytes (%zu)", n);
	CHECK(memcmp(out, MAC_A, 6) == 0 && out[34] == 3 && out[35] == 4 && rv_get16(out + 40) == 1450, "type 3 code 4, MTU 1450");
	CHECK(memcmp(out + 26, IP_B, 4) == 0 && memcmp(out + 30, IP_A, 4) == 0, "back to the sender");
	CHECK(ip4_ok(out, 14), "IP header checksum");
	CHECK(rhumb_csum_fold(rhumb_csum_partial(out + 34, n - 34, 0)) == 0, "ICMP checksum");
}

static void test_csum_complete_and_partial(void)
{
	uint8_t f[300];
	size_t len = tcp4(f, 100, 5, 0x18);
	uint32_t s;
	struct rv_vnet_hdr vh = { 0 };
	/* As a kernel with checksum offload leaves it: pseudo-header sum in the field. */
	uint8_t t[4] = { 0, 6, 0, (uint8_t)(32 + 100) };
	s = rhumb_csum_partial(f + 26, 8, 0);
	s = rhumb_csum_partial(t, 4, s);
	rv_put16(f + 50, (uint16_t)~rhumb_csum_fold(s));
	CHECK(!l4_ok(f, len), "partial checksum does not verify yet");
	CHECK(rv_csum_complete(f, len, 34, 16) == 0 && l4_ok(f, len), "completed checksum verifies");
	CHECK(rv_csum_complete(f, len, 34, 400) == -1, "out-of-frame offset refused");
	CHECK(rv_make_partial(f, len, &vh) == 1 && vh.flags == RV_VNET_F_NEEDS_CSUM && vh.csum_start == 34 && vh.csum_offset == 16, "made partial");
	CHECK(rv_csum_complete(f, len, 34, 16) == 0 && l4_ok(f, len), "partial form is the pseudo-header sum");
}

static void test_segment_and_coalesce(void)
{
	static uint8_t f[70000], out[80000], copy[80000];
	size_t plen = 4000, len = tcp4(f, plen, 1000, 0x18 /* ACK|PSH */), off[64], sl[64];
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 66, 1000, 34, 16 };
	int n = rv_segment(&vh, f, len, 0, 8, out, sizeof(out), off, sl, 64);
	CHECK(n == 4, "4000 bytes at MSS 1000 = 4 segments (%d)", n);
	for (int i = 0; i < n; i++) {
		uint8_t *s = out + off[i] + 8;
		CHECK(sl[i] == 66 + 1000, "segment %d length", i);
		CHECK(rv_get16(s + 16) == 20 + 32 + 1000 && ip4_ok(s, 14), "segment %d IP length and checksum", i);
		CHECK(rv_get16(s + 18) == 100 + i, "segment %d IP id", i);
		CHECK(rv_get32(s + 38) == 1000 + (uint32_t)i * 1000, "segment %d seq", i);
		CHECK(((s[47] & 0x08) != 0) == (i == n - 1), "segment %d PSH only on the last", i);
		CHECK(l4_ok(s, sl[i]), "segment %d TCP checksum", i);
		CHECK(memcmp(s + 66, f + 66 + (size_t)i * 1000, 1000) == 0, "segment %d payload", i);
		if (i > 0) CHECK(off[i] == off[i - 1] + 8 + sl[i - 1], "segments back to back (UDP_SEGMENT layout)");
	}
	/* Tagged output for a fabric VLAN. */
	n = rv_segment(&vh, f, len, 5, 8, out + 40000, 40000, off, sl, 64);
	CHECK(n == 4 && sl[0] == 66 + 1000 + 4 && rv_get16(out + 40000 + off[0] + 8 + 12) == 0x8100, "tagged segments");
	CHECK(l4_ok(out + 40000 + off[3] + 8, sl[3]), "tagged last segment checksum");
	/* Uneven tail. */
	len = tcp4(f, 2500, 1, 0x10);
	n = rv_segment(&vh, f, len, 0, 0, out, sizeof(out), off, sl, 64);
	CHECK(n == 3 && sl[2] == 66 + 500, "tail segment shorter (%d, %zu)", n, n == 3 ? sl[2] : 0);
	CHECK(rv_segment(&vh, f, len, 0, 0, out, sizeof(out), off, sl, 2) == -1, "too many segments refused");

	/* Coalesce the first run back: 3 segments -> one superframe equal to the original. */
	memcpy(copy, out, sizeof(out));
	struct rv_gro g;
	struct rv_vnet_hdr gv;
	struct iovec iov[RV_GRO_MAXSEG + 1];
	CHECK(rv_gro_start(&g, copy + off[0], sl[0]) == 1, "run starts");
	CHECK(rv_gro_append(&g, copy + off[1], sl[1]) == 1, "second segment joins");
	CHECK(rv_gro_append(&g, copy + off[2], sl[2]) == 1, "short tail joins");
	CHECK(rv_gro_append(&g, copy + off[1], sl[1]) == 0, "nothing after a short tail");
	int cnt = rv_gro_finish(&g, &gv, iov, RV_GRO_MAXSEG + 1);
	size_t total = 0;
	static uint8_t flat[70000];
	for (int i = 1; i < cnt; i++) { memcpy(flat + total, iov[i].iov_base, iov[i].iov_len); total += iov[i].iov_len; }
	CHECK(cnt == 4 && total == len, "superframe length %zu == %zu", total, len);
	CHECK(gv.gso_type == RV_GSO_TCPV4 && gv.gso_size == 1000 && gv.hdr_len == 66 && gv.flags == RV_VNET_F_NEEDS_CSUM, "virtio header");
	CHECK(memcmp(flat + 66, f + 66, 2500) == 0 && rv_get16(flat + 16) == 20 + 32 + 2500 && ip4_ok(flat, 14), "payload and IP header");
	CHECK(rv_csum_complete(flat, total, gv.csum_start, gv.csum_offset) == 0 && l4_ok(flat, total), "partial checksum completes");

	/* A gap in sequence numbers, a different ACK or a SYN does not join. */
	len = tcp4(f, 1000, 1, 0x10);
	CHECK(rv_gro_start(&g, f, len) == 1, "start");
	tcp4(copy, 1000, 5000, 0x10);
	CHECK(rv_gro_append(&g, copy, len) == 0, "sequence gap refused");
	tcp4(copy, 1000, 1001, 0x10); rv_put32(copy + 42, 778);
	CHECK(rv_gro_append(&g, copy, len) == 0, "different ACK refused");
	tcp4(copy, 1000, 1, 0x02);
	CHECK(rv_gro_start(&g, copy, len) == 0, "SYN never coalesced");
}

static void test_uso(void)
{
	static uint8_t f[5000], out[8000];
	size_t off[16], sl[16], plen = 3000, len = 14 + 20 + 8 + plen;
	memcpy(f, MAC_B, 6); memcpy(f + 6, MAC_A, 6); rv_put16(f + 12, RV_ETH_P_IP);
	memset(f + 14, 0, 28); f[14] = 0x45; rv_put16(f + 16, (uint16_t)(28 + plen)); f[22] = 64; f[23] = 17;
	memcpy(f + 26, IP_A, 4); memcpy(f + 30, IP_B, 4); rv_put16(f + 34, 1000); rv_put16(f + 36, 2000);
	for (size_t i = 0; i < plen; i++) f[42 + i] = (uint8_t)i;
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_UDP_L4, 42, 1200, 34, 6 };
	int n = rv_segment(&vh, f, len, 0, 8, out, sizeof(out), off, sl, 16);
	CHECK(n == 3, "USO: 3000 bytes at 1200 = 3 datagrams (%d)", n);
	for (int i = 0; i < n; i++) {
		uint8_t *s = out + off[i] + 8;
		CHECK(rv_get16(s + 38) == sl[i] - 34 && l4_ok(s, sl[i]) && ip4_ok(s, 14), "datagram %d length and checksums", i);
	}
}

static void test_tso6(void)
{
	static uint8_t f[9000], out[12000];
	size_t off[16], sl[16], plen = 3000, hl = 14 + 40 + 20, len = hl + plen;
	memcpy(f, MAC_B, 6); memcpy(f + 6, MAC_A, 6); rv_put16(f + 12, RV_ETH_P_IPV6);
	memset(f + 14, 0, 60); f[14] = 0x60; rv_put16(f + 18, (uint16_t)(20 + plen)); f[20] = 6; f[21] = 64;
	f[22] = 0x20; f[23] = 0x01; f[37] = 1; f[38] = 0x20; f[39] = 0x01; f[53] = 2;
	rv_put16(f + 54, 1234); rv_put16(f + 56, 80); rv_put32(f + 58, 42); rv_put32(f + 62, 9); f[66] = 5 << 4; f[67] = 0x19; /* ACK|PSH|FIN */
	for (size_t i = 0; i < plen; i++) f[hl + i] = (uint8_t)(i ^ 0x5a);
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV6, (uint16_t)hl, 1400, 54, 16 };
	int n = rv_segment(&vh, f, len, 0, 8, out, sizeof(out), off, sl, 16);
	CHECK(n == 3, "TCPv6: 3000 bytes at 1400 = 3 segments (%d)", n);
	for (int i = 0; i < n; i++) {
		uint8_t *s = out + off[i] + 8;
		CHECK(rv_get16(s + 18) == sl[i] - 54 && l4_ok(s, sl[i]), "v6 segment %d payload length and checksum", i);
		CHECK(((s[67] & 0x09) != 0) == (i == n - 1), "v6 segment %d FIN/PSH only on the last", i);
	}
}

/*
 * Segment checksums are built from per-frame base sums (segment_base_sums) plus each
 * segment's own fields: every length, flag and option shape must still verify on its own.
 * Odd MSS (segments starting mid-word), an odd short tail, IPv4 options, CWR|FIN|PSH, a
 * carry-heavy payload, a fabric tag, TCP over IPv6 and UDP over IPv6.
 */
static void test_segment_sums(void)
{
	static uint8_t f[70000], out[120000];
	size_t off[128], sl[128];
	unsigned seed = 11;
	int all = 1, nchecked = 0;
	for (int shape = 0; shape < 4; shape++) {
		for (size_t mss = 535; mss < 1460; mss += 229) {
			size_t plen = 7 * mss + (size_t)shape * 3 + 1, len, hl, l4, iplen;
			int n;
			struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, (uint16_t)mss, 0, 16 };
			memcpy(f, MAC_B, 6); memcpy(f + 6, MAC_A, 6);
			if (shape < 2) { /* IPv4 TCP; shape 1 with 4 bytes of IP options */
				size_t ihl = shape == 1 ? 24 : 20;
				rv_put16(f + 12, RV_ETH_P_IP);
				memset(f + 14, 0, ihl); f[14] = (uint8_t)(0x40 | ihl / 4); f[22] = 64; f[23] = 6;
				rv_put16(f + 18, 0xfffe); /* the ID wraps */
				memcpy(f + 26, IP_A, 4); memcpy(f + 30, IP_B, 4);
				if (shape == 1) { f[34] = 1; f[35] = 1; f[36] = 1; f[37] = 0; }
				l4 = 14 + ihl;
			} else { /* IPv6 TCP (shape 2) or UDP (shape 3) */
				rv_put16(f + 12, RV_ETH_P_IPV6);
				memset(f + 14, 0, 40); f[14] = 0x60; f[20] = shape == 2 ? 6 : 17; f[21] = 64;
				memset(f + 22, 0xfe, 16); memset(f + 38, 0xfd, 16);
				l4 = 54;
				vh.gso_type = shape == 2 ? RV_GSO_TCPV6 : RV_GSO_UDP_L4;
			}
			if (shape < 3) {
				memset(f + l4, 0, 32);
				rv_put16(f + l4, 0xffff); rv_put16(f + l4 + 2, 0xfffe); rv_put32(f + l4 + 4, 0xfffff000u);
				rv_put32(f + l4 + 8, 0xffffffffu); f[l4 + 12] = 8 << 4; f[l4 + 13] = 0x80 | 0x18 | 0x01; /* CWR ACK PSH FIN */
				rv_put16(f + l4 + 14, 0xffff); f[l4 + 20] = 1; f[l4 + 21] = 1; f[l4 + 22] = 8; f[l4 + 23] = 10;
				hl = l4 + 32;
				vh.csum_offset = 16;
			} else {
				rv_put16(f + l4, 0xffff); rv_put16(f + l4 + 2, 4789);
				hl = l4 + 8;
				vh.csum_offset = 6;
			}
			len = hl + plen;
			iplen = len - 14;
			if (shape < 2) rv_put16(f + 16, (uint16_t)iplen); else rv_put16(f + 18, (uint16_t)(len - l4));
			if (shape == 3) rv_put16(f + l4 + 4, (uint16_t)(len - l4));
			for (size_t i = 0; i < plen; i++) { seed = seed * 1103515245u + 12345u; f[hl + i] = i % 5 ? 0xff : (uint8_t)(seed >> 16); }
			vh.hdr_len = (uint16_t)hl;
			vh.csum_start = (uint16_t)l4;
			for (uint16_t vid = 0; vid <= 7; vid += 7) {
				n = rv_segment(&vh, f, len, vid, 8, out, sizeof(out), off, sl, 128);
				if (n != 8) { all = 0; printf("shape %d mss %zu: %d segments\n", shape, mss, n); continue; }
				for (int i = 0; i < n; i++) {
					uint8_t *sg = out + off[i] + 8, plain[2000];
					size_t slen = sl[i];
					if (vid) { /* checked as the untagged frame it carries */
						memcpy(plain, sg, 12); memcpy(plain + 12, sg + 16, slen - 16); sg = plain; slen -= 4;
					}
					size_t want = i == n - 1 ? (size_t)shape * 3 + 1 : mss;
					nchecked++;
					if (slen != hl + want || !l4_ok(sg, slen) || (shape < 2 && rhumb_csum_fold(rhumb_csum_partial(sg + 14, (size_t)(sg[14] & 15) * 4, 0)) != 0) ||
					    memcmp(sg + hl, f + hl + (size_t)i * mss, want) != 0) {
						all = 0;
						printf("shape %d mss %zu vid %u segment %d bad: len %zu/%zu l4 %d ip %d data %d\n", shape, mss, vid, i, slen, hl + want, l4_ok(sg, slen), shape < 2 ? rhumb_csum_fold(rhumb_csum_partial(sg + 14, (size_t)(sg[14] & 15) * 4, 0)) == 0 : 1, memcmp(sg + hl, f + hl + (size_t)i * mss, want) == 0);
					}
					if (shape < 2 && rv_get16(sg + 18) != (uint16_t)(0xfffe + i)) all = 0;
					if (shape < 3) {
						uint8_t fl = sg[l4 + 13];
						if (((fl & 0x09) != 0) != (i == n - 1) || ((fl & 0x80) != 0) != (i == 0) || !(fl & 0x10)) all = 0;
						if (rv_get32(sg + l4 + 4) != 0xfffff000u + (uint32_t)((size_t)i * mss)) all = 0; /* wraps */
					}
				}
			}
		}
	}
	CHECK(all && nchecked == 4 * 5 * 2 * 8, "every segment of every shape verifies (%d segments)", nchecked);
}

static void test_flow_hash(void)
{
	uint8_t a[200], b[200];
	size_t la = tcp4(a, 10, 1, 0x10), lb = tcp4(b, 50, 99, 0x10);
	CHECK(rv_flow_hash(a, la) == rv_flow_hash(b, lb), "same 5-tuple, same hash");
	rv_put16(b + 34, 40001);
	CHECK(rv_flow_hash(a, la) != rv_flow_hash(b, lb), "other source port, other hash");
	uint16_t p = rv_src_port(rv_flow_hash(a, la));
	CHECK(p >= 32768 && p < 61000, "source port in the ephemeral range (%u)", p);
}

/* RFC 1071 as written: big-endian 16-bit words, one at a time. */
static uint32_t ref_csum(const uint8_t *p, size_t len, uint32_t sum)
{
	uint64_t acc = sum;
	for (; len >= 2; p += 2, len -= 2)
		acc += (uint32_t)((p[0] << 8) | p[1]);
	if (len)
		acc += (uint32_t)(p[0] << 8);
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

static void test_fast_csum(void)
{
	static uint8_t b[9001];
	unsigned seed = 7;
	int same = 1;
	for (size_t i = 0; i < sizeof(b); i++) { seed = seed * 1103515245u + 12345u; b[i] = (uint8_t)(seed >> 16); }
	for (size_t len = 0; len < 300; len++)
		for (size_t off = 0; off < 4; off++)
			if (rhumb_csum_fold(rhumb_csum_partial(b + off, len, 0x1234)) != rhumb_csum_fold(ref_csum(b + off, len, 0x1234)))
				same = 0;
	CHECK(same, "fast checksum equals RFC 1071 reference for lengths 0..299 at every alignment");
	CHECK(rhumb_csum_fold(rhumb_csum_partial(b, sizeof(b), 0)) == rhumb_csum_fold(ref_csum(b, sizeof(b), 0)), "9001 bytes");
	memset(b, 0xff, 64);
	CHECK(rhumb_csum_fold(rhumb_csum_partial(b, 64, 0xffff)) == rhumb_csum_fold(ref_csum(b, 64, 0xffff)), "carries");
	/* Every bulk implementation (scalar, SSE2, AVX2) across the 32- and 64-byte block edges. */
	for (int impl = 0; impl < 3; impl++) {
		int agree = 1;
		for (size_t i = 0; i < sizeof(b); i++) { seed = seed * 1103515245u + 12345u; b[i] = (uint8_t)(seed >> 16); }
		for (size_t len = 0; len < 1600; len += len < 200 ? 1 : 7)
			for (size_t off = 0; off < 4; off++)
				if (rhumb_csum_fold(rhumb_csum_partial_with(impl, b + off, len, 0x1234)) != rhumb_csum_fold(ref_csum(b + off, len, 0x1234)))
					agree = 0;
		memset(b, 0xff, sizeof(b)); /* the largest carries */
		if (rhumb_csum_fold(rhumb_csum_partial_with(impl, b, sizeof(b), 0xffff)) != rhumb_csum_fold(ref_csum(b, sizeof(b), 0xffff)))
			agree = 0;
		CHECK(agree, "bulk implementation %d equals the reference at every length and alignment", impl);
	}
	printf("checksum implementation in use: %s\n", rhumb_csum_impl());
}

int main(void)
{
	test_fast_csum();
	test_vxlan_header();
	test_vlan();
	test_arp_nd();
	test_icmp_too_big();
	test_csum_complete_and_partial();
	test_segment_and_coalesce();
	test_uso();
	test_tso6();
	test_segment_sums();
	test_flow_hash();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
