/*
 * The forwarding engine's data path (native/src/fp_engine.c) on crafted frames, without
 * sockets or threads: fabric VLANs at decap and in ARP answers and forwarding, the per-NIC
 * share of the miss table, the underlay peer check, gratuitous ARP injection.
 */
#include "enginelib.h"

static const uint8_t MAC_L0[6] = { 0x02, 0, 0x5e, 0x10, 0, 1 }, MAC_L5[6] = { 0x02, 0, 0x5e, 0x10, 0, 2 };
static const uint8_t MAC_R5[6] = { 0x02, 0, 0x5e, 0x10, 0, 9 };
static const uint8_t IP_L0[4] = { 10, 0, 0, 1 }, IP_L5[4] = { 10, 0, 0, 2 }, IP_R5[4] = { 10, 0, 0, 9 };
static const uint8_t UL_PEER[4] = { 198, 18, 0, 2 }, UL_STRANGER[4] = { 198, 18, 0, 66 };
#define VNET 4242

/* A VXLAN datagram: header + an inner frame to dst from src (tag < 0: untagged). */
static size_t datagram(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], int tag)
{
	uint8_t inner[200];
	size_t n = t_udp4(inner, 20);
	memcpy(inner, dst, 6);
	memcpy(inner + 6, src, 6);
	rv_vxlan_hdr(out, VNET);
	if (tag >= 0)
		return RV_VXLAN_HLEN + rv_vlan_insert(out + RV_VXLAN_HLEN, inner, n, (uint16_t)tag);
	memcpy(out + RV_VXLAN_HLEN, inner, n);
	return RV_VXLAN_HLEN + n;
}

/* Decap + delivery of one datagram; the NIC it went to, or -1. */
static int receive(struct fp *f, const uint8_t *d, size_t len)
{
	uint8_t *p = t_exact(d, len), *fr;
	size_t fl;
	int ni = fp_decap(f, p, len, &fr, &fl);
	if (ni >= 0) {
		struct fp_delivery one = { ni, fr, fl };
		fp_deliver(f, &one, 1);
	}
	free(p);
	return ni;
}

static void test_vlan_at_decap(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	int p0, p5;
	uint8_t d[300];
	size_t n;
	t_nic(f, 0, MAC_L0, IP_L0, VNET, 0, &p0);
	t_nic(f, 1, MAC_L5, IP_L5, VNET, 5, &p5);
	n = datagram(d, MAC_L5, MAC_R5, -1);
	CHECK(receive(f, d, n) < 0 && f->nics[1].c[D_RX_VLAN] == 1, "untagged frame for a VLAN-5 NIC dropped");
	n = datagram(d, MAC_L5, MAC_R5, 7);
	CHECK(receive(f, d, n) < 0 && f->nics[1].c[D_RX_VLAN] == 2, "frame tagged 7 for a VLAN-5 NIC dropped");
	n = datagram(d, MAC_L5, MAC_R5, 5);
	CHECK(receive(f, d, n) == 1 && f->nics[1].c[C_RX_FRAMES] == 1, "frame tagged 5 delivered");
	{
		uint8_t got[300];
		size_t g = t_read(p5, got, sizeof(got));
		CHECK(g == RV_VNET_HLEN + n - RV_VXLAN_HLEN - 4 && rv_get16(got + RV_VNET_HLEN + 12) == RV_ETH_P_IP, "delivered without its tag (%zu)", g);
	}
	n = datagram(d, MAC_L0, MAC_R5, 5);
	CHECK(receive(f, d, n) < 0 && f->nics[0].c[D_RX_VLAN] == 1, "tagged frame for a VLAN-0 NIC dropped");
	n = datagram(d, MAC_L0, MAC_R5, -1);
	CHECK(receive(f, d, n) == 0, "untagged frame for a VLAN-0 NIC delivered");
	close(p0);
	close(p5);
	t_release(f);
}

static void test_vlan_in_answers_and_forwarding(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	uint8_t ops[2 * FP_RECORD], arp[42], got[200], frame[200];
	int p0, p5;
	size_t n;
	t_nic(f, 0, MAC_L0, IP_L0, VNET, 0, &p0);
	t_nic(f, 1, MAC_L5, IP_L5, VNET, 5, &p5);
	/* A remote NIC on VLAN 5. */
	t_record_op(ops, 1, VNET, 5, MAC_R5, NULL, UL_PEER);
	t_record_op(ops + FP_RECORD, 3, VNET, 5, MAC_R5, IP_R5, NULL);
	CHECK(fp_update(f, ops, sizeof(ops)) == FP_OK, "update applied");
	/* ARP for the VLAN-5 address from each NIC. */
	t_arp(arp);
	memcpy(arp + 6, MAC_L0, 6); memcpy(arp + 22, MAC_L0, 6); memcpy(arp + 28, IP_L0, 4); memcpy(arp + 38, IP_R5, 4);
	fp_from_tap(f, 0, NULL, arp, 42, 0, false);
	CHECK(f->nics[0].c[C_ARP_REPLIES] == 0 && f->nics[0].c[D_VLAN] == 1 && t_read(p0, got, sizeof(got)) == 0,
	      "no ARP answer for another VLAN's address");
	memcpy(arp + 6, MAC_L5, 6); memcpy(arp + 22, MAC_L5, 6); memcpy(arp + 28, IP_L5, 4);
	fp_from_tap(f, 1, NULL, arp, 42, 0, false);
	n = t_read(p5, got, sizeof(got));
	CHECK(f->nics[1].c[C_ARP_REPLIES] == 1 && n == RV_VNET_HLEN + 42 && memcmp(got + RV_VNET_HLEN + 22, MAC_R5, 6) == 0,
	      "the VLAN-5 NIC is answered with the remote MAC");
	/* A frame to the remote MAC from each NIC. */
	n = t_udp4(frame, 20);
	memcpy(frame, MAC_R5, 6); memcpy(frame + 6, MAC_L0, 6); memcpy(frame + 26, IP_L0, 4);
	fp_from_tap(f, 0, NULL, frame, n, 0, false);
	CHECK(f->nics[0].c[C_ENCAP] == 0 && f->nics[0].c[D_VLAN] == 2, "no forwarding from VLAN 0 to a VLAN-5 MAC");
	memcpy(frame + 6, MAC_L5, 6); memcpy(frame + 26, IP_L5, 4);
	fp_from_tap(f, 1, NULL, frame, n, 0, false);
	CHECK(f->nics[1].c[C_ENCAP] == 1, "forwarded from VLAN 5");
	/* Between local NICs of two VLANs. */
	memcpy(frame, MAC_L5, 6); memcpy(frame + 6, MAC_L0, 6); memcpy(frame + 26, IP_L0, 4);
	fp_from_tap(f, 0, NULL, frame, n, 0, false);
	CHECK(f->nics[0].c[C_LOCAL] == 0 && f->nics[0].c[D_VLAN] == 3 && t_read(p5, got, sizeof(got)) == 0, "no local delivery across VLANs");
	fp_flush(f);
	close(p0);
	close(p5);
	t_release(f);
}

static void test_inject_follows_vlan(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	uint8_t op[FP_RECORD], garp[42], got[100];
	int p0, p5;
	t_nic(f, 0, MAC_L0, IP_L0, VNET, 0, &p0);
	t_nic(f, 1, MAC_L5, IP_L5, VNET, 5, &p5);
	t_record_op(op, 1, VNET, 5, MAC_R5, NULL, UL_PEER);
	fp_update(f, op, sizeof(op));
	rv_garp(garp, MAC_R5, IP_R5);
	fp_inject(f, VNET, garp, sizeof(garp));
	CHECK(t_read(p5, got, sizeof(got)) == RV_VNET_HLEN + 42 && t_read(p0, got, sizeof(got)) == 0, "GARP only into the VLAN-5 NIC");
	close(p0);
	close(p5);
	t_release(f);
}

/* Frames from slot ni to `count` unknown MACs; returns the NIC's misses. */
static uint64_t miss_many(struct fp *f, int ni, const uint8_t mac[6], const uint8_t ip[4], int count, uint8_t tag)
{
	uint8_t frame[200];
	size_t n = t_udp4(frame, 10);
	memcpy(frame + 6, mac, 6);
	memcpy(frame + 26, ip, 4);
	for (int i = 0; i < count; i++) {
		uint8_t dst[6] = { 0x02, tag, 0, 0, (uint8_t)(i >> 8), (uint8_t)i };
		memcpy(frame, dst, 6);
		fp_from_tap(f, ni, NULL, frame, n, 0, false);
	}
	return f->nics[ni].c[C_MISSES];
}

static void test_miss_share_per_nic(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	int pa, pb, pc;
	t_nic(f, 0, MAC_L0, IP_L0, 100, 0, &pa);
	t_nic(f, 1, MAC_L5, IP_L5, 200, 0, &pb);
	t_nic(f, 2, MAC_R5, IP_R5, 100, 0, &pc);
	CHECK(miss_many(f, 0, MAC_L0, IP_L0, 600, 0xaa) == FP_PEND_PER_NIC, "the flooder gets its share of misses (%llu)",
	      (unsigned long long)f->nics[0].c[C_MISSES]);
	CHECK(f->nics[0].c[D_PARK_FULL] == 600 - FP_PEND_PER_NIC, "the rest is refused (%llu)", (unsigned long long)f->nics[0].c[D_PARK_FULL]);
	CHECK(miss_many(f, 1, MAC_L5, IP_L5, 3, 0xbb) == 3 && f->nics[1].c[D_PARK_FULL] == 0, "another tenant still misses and parks");
	CHECK(miss_many(f, 2, MAC_R5, IP_R5, 3, 0xcc) == 3 && f->nics[2].c[D_PARK_FULL] == 0, "so does another NIC of the same vnet");
	/* A destination the flooder already asked about: the other NIC waits in that entry. */
	CHECK(miss_many(f, 2, MAC_R5, IP_R5, 1, 0xaa) == 3 && f->nics[2].c[C_PARKED] == 4, "joins the pending entry, no new miss");
	CHECK(rec.n == FP_PEND_PER_NIC + 6, "one upcall per miss (%d)", rec.n);
	/* Removing the flooder returns its share (and frees what it parked). */
	close(f->nics[0].fd);
	fp_uninstall_nic(f, 0);
	CHECK(f->nics[0].npend == 0 && f->nics[1].parked_bytes == 3 * 52 && f->nics[2].parked_bytes == 3 * 52 &&
	      f->parked_bytes == 6 * 52, "parked bytes accounted (%zu)", f->parked_bytes);
	close(pa);
	close(pb);
	close(pc);
	t_release(f);
}

static void test_peers(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	uint32_t peer, stranger;
	memcpy(&peer, UL_PEER, 4);
	memcpy(&stranger, UL_STRANGER, 4);
	CHECK(!fp_accept_from(f, peer, 1) && f->c[D_UNKNOWN_PEER] == 1 && rec.n == 1 && rec.kind[0] == 4, "nothing accepted before peers are set; reported");
	CHECK(fp_set_peers(f, UL_PEER, 1) == FP_OK, "peers set");
	CHECK(fp_accept_from(f, peer, 1), "a peer is accepted");
	CHECK(!fp_accept_from(f, stranger, 3) && f->c[D_UNKNOWN_PEER] == 4, "a stranger's datagrams are counted");
	CHECK(rec.n == 1, "reported at most once a second (%d)", rec.n);
	f->peer_miss_at -= FP_PEER_MISS_MS;
	CHECK(!fp_accept_from(f, stranger, 1) && rec.n == 2, "reported again after a second");
	CHECK(fp_set_peers(f, NULL, 0) == FP_OK && !fp_accept_from(f, peer, 1), "an emptied set accepts nothing");
	t_release(f);
}

/* An untagged IPv6/UDP frame to dst from src (MACs), source address ip6. */
static size_t udp6(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], const uint8_t ip6[16])
{
	static const uint8_t to[16] = { 0xfd, 0, 0, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99 };
	memset(out, 0, 14 + 40 + 8 + 20);
	memcpy(out, dst, 6);
	memcpy(out + 6, src, 6);
	rv_put16(out + 12, RV_ETH_P_IPV6);
	out[14] = 0x60;
	rv_put16(out + 18, 8 + 20);
	out[20] = 17;
	out[21] = 64;
	memcpy(out + 22, ip6, 16);
	memcpy(out + 38, to, 16);
	rv_put16(out + 54, 4000);
	rv_put16(out + 56, 4001);
	rv_put16(out + 58, 8 + 20);
	return 14 + 40 + 8 + 20;
}

static void test_ipv6_sources(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	static const uint8_t own[16] = { 0xfd, 0, 0, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };
	static const uint8_t other[16] = { 0xfd, 0, 0, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11 };
	static const uint8_t linklocal[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0x5e, 0xff, 0xfe, 0x10, 0, 2 };
	struct fp_nic_spec s = { .ifname = "t6", .vnet = VNET, .vlan = 0, .mtu = -1 };
	uint8_t op[FP_RECORD], frame[200], v4[200];
	int sv[2], p0;
	size_t n;
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	memcpy(s.mac, MAC_L5, 6);
	memcpy(s.ip, own, 16);
	CHECK(fp_install_nic(f, 1, sv[0], &s) == FP_OK, "an IPv6 NIC installed");
	t_nic(f, 0, MAC_L0, IP_L0, VNET, 0, &p0);
	t_record_op(op, 1, VNET, 0, MAC_R5, NULL, UL_PEER);
	CHECK(fp_update(f, op, sizeof(op)) == FP_OK, "remote MAC known");
	CHECK(l3_find(f, VNET, own) != NULL && memcmp(l3_find(f, VNET, own)->mac, MAC_L5, 6) == 0, "the NIC's IPv6 address is in the table");
	n = udp6(frame, MAC_R5, MAC_L5, own);
	fp_from_tap(f, 1, NULL, frame, n, 0, false);
	CHECK(f->nics[1].c[C_ENCAP] == 1, "from its own IPv6 address: forwarded");
	n = udp6(frame, MAC_R5, MAC_L5, linklocal);
	fp_from_tap(f, 1, NULL, frame, n, 0, false);
	CHECK(f->nics[1].c[C_ENCAP] == 2, "from link-local: forwarded");
	n = udp6(frame, MAC_R5, MAC_L5, other);
	fp_from_tap(f, 1, NULL, frame, n, 0, false);
	CHECK(f->nics[1].c[C_ENCAP] == 2 && f->nics[1].c[D_SPOOF_IP] == 1, "from another IPv6 address: dropped");
	n = t_udp4(v4, 20);
	memcpy(v4, MAC_R5, 6); memcpy(v4 + 6, MAC_L5, 6); memcpy(v4 + 26, IP_L5, 4);
	fp_from_tap(f, 1, NULL, v4, n, 0, false);
	CHECK(f->nics[1].c[D_SPOOF_IP] == 2, "IPv4 from an IPv6 NIC: dropped");
	n = udp6(frame, MAC_R5, MAC_L0, own);
	fp_from_tap(f, 0, NULL, frame, n, 0, false);
	CHECK(f->nics[0].c[C_ENCAP] == 0 && f->nics[0].c[D_SPOOF_IP] == 1, "a global IPv6 source from an IPv4 NIC: dropped");
	fp_flush(f);
	close(p0);
	close(sv[1]);
	t_release(f);
}

int main(void)
{
	t_init();
	test_vlan_at_decap();
	test_vlan_in_answers_and_forwarding();
	test_inject_follows_vlan();
	test_miss_share_per_nic();
	test_peers();
	test_ipv6_sources();
	return t_report();
}
