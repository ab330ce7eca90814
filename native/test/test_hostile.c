/*
 * Hostile frames against the packet functions of native/src/vxlan.c: TCP data offsets
 * below 5, headers longer than the frame, IP lengths that disagree with the frame, and
 * every truncation of valid frames. Each frame lives in a heap buffer of exactly its
 * length, so a read or write past it is an AddressSanitizer report (the build aborts on
 * the first one). Prints one line per failed check; exits 1 when any failed.
 */
#include <sys/uio.h>
#include "testlib.h"

/* Segments a TSO/USO superframe into an output buffer of exactly cap bytes. */
static int segment_exact(const struct rv_vnet_hdr *vh, const uint8_t *f, size_t len, uint16_t vid, size_t cap)
{
	uint8_t *in = t_exact(f, len), *out = malloc(cap ? cap : 1);
	size_t off[128], sl[128];
	int n = rv_segment(vh, in, len, vid, RV_VXLAN_HLEN, out, cap, off, sl, 128);
	free(in);
	free(out);
	return n;
}

/* gro_shape: a data offset below 5 made rv_gro_append memcmp a negative length. */
static void test_gro_data_offset(void)
{
	uint8_t a[2000], b[2000];
	for (unsigned doff = 0; doff < 5; doff++) {
		size_t la = t_tcp4(a, 1000, 1, 0x10, doff), lb = t_tcp4(b, 1000, 1001, 0x10, doff);
		uint8_t *ha = t_exact(a, la), *hb = t_exact(b, lb);
		struct rv_gro g;
		CHECK(rv_gro_start(&g, ha, la) == 0, "GRO refuses a TCP data offset of %u words", doff);
		/* Even when a run was (wrongly) started, appending must not read out of bounds. */
		g.closed = 0;
		g.hdr_len = 14 + 20 + (size_t)doff * 4;
		g.mss = 2000;
		g.next_seq = 1001;
		CHECK(rv_gro_append(&g, hb, lb) == 0, "GRO append refuses a data offset of %u words", doff);
		free(ha);
		free(hb);
	}
	/* A valid head and a follower whose data offset points past its end. */
	{
		size_t la = t_tcp4(a, 100, 1, 0x10, 5), lb = t_tcp4(b, 100, 101, 0x10, 5);
		uint8_t *ha = t_exact(a, la), *hb;
		struct rv_gro g;
		b[46] = 15 << 4; /* 60-byte header in a frame with 20 + 100 */
		lb = 14 + 20 + 30;
		rv_put16(b + 16, (uint16_t)(lb - 14));
		hb = t_exact(b, lb);
		CHECK(rv_gro_start(&g, ha, la) == 1, "a valid head starts a run");
		CHECK(rv_gro_append(&g, hb, lb) == 0, "a TCP header longer than the frame does not join");
		free(ha);
		free(hb);
	}
}

/* rv_segment: a data offset below 5 wrote TCP fields past short segments. */
static void test_segment_data_offset(void)
{
	static uint8_t f[70000];
	for (unsigned doff = 0; doff < 5; doff++) {
		size_t len = t_tcp4(f, 3000, 1, 0x10, 5);
		struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, 1, 34, 16 };
		f[46] = (uint8_t)(doff << 4);
		/* MSS 1: each segment is header + 1 byte; the buffer holds exactly that many. */
		CHECK(segment_exact(&vh, f, 34 + (size_t)doff * 4 + 64, 0, 64 * (RV_VXLAN_HLEN + 34 + doff * 4 + 1)) == -1,
		      "TSO refuses a TCP data offset of %u words", doff);
		vh.gso_size = 30;
		CHECK(segment_exact(&vh, f, len, 5, 70000) == -1, "tagged TSO refuses a data offset of %u words", doff);
	}
	{
		size_t len = t_tcp4(f, 10, 1, 0x10, 5);
		struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, 536, 34, 16 };
		f[46] = 15 << 4;
		CHECK(segment_exact(&vh, f, len, 0, 70000) == -1, "TSO refuses a TCP header longer than the frame");
	}
	{
		size_t len = t_udp4(f, 0);
		struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_UDP_L4, 0, 100, 34, 6 };
		CHECK(segment_exact(&vh, f, len - 1, 0, 70000) == -1, "USO refuses a truncated UDP header");
		vh.gso_type = RV_GSO_TCPV4;
		CHECK(segment_exact(&vh, f, len, 0, 70000) == -1, "TSO refuses a UDP frame");
		vh.gso_type = RV_GSO_UDP_L4;
		vh.gso_size = 0;
		CHECK(segment_exact(&vh, f, len, 0, 70000) == -1, "an MSS of 0 is refused");
	}
	{
		/* A valid superframe with a buffer one byte short of the last segment. */
		size_t len = t_tcp4(f, 2000, 1, 0x10, 5);
		struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, 1000, 34, 16 };
		size_t need = 2 * (RV_VXLAN_HLEN + 54 + 1000);
		CHECK(segment_exact(&vh, f, len, 0, need) == 2, "exactly enough room: 2 segments");
		CHECK(segment_exact(&vh, f, len, 0, need - 1) == -1, "one byte short: refused");
	}
}

/* rv_make_partial: IP lengths smaller than the headers they announce. */
static void test_partial_lengths(void)
{
	uint8_t f[200];
	size_t len = t_tcp4(f, 10, 1, 0x10, 5);
	struct rv_vnet_hdr vh = { 0 };
	uint8_t *h;
	rv_put16(f + 16, 30); /* IP total length 30 < 20 + 20 */
	h = t_exact(f, len);
	CHECK(rv_make_partial(h, len, &vh) == 0 && vh.flags == 0, "IPv4 total length below IP + TCP headers refused");
	free(h);
	rv_put16(f + 16, 10); /* below the IP header itself */
	h = t_exact(f, len);
	CHECK(rv_make_partial(h, len, &vh) == 0, "IPv4 total length below the IP header refused");
	free(h);
	len = t_tcp6(f, 10);
	rv_put16(f + 18, 8); /* payload length 8 < TCP header */
	h = t_exact(f, len);
	CHECK(rv_make_partial(h, len, &vh) == 0, "IPv6 payload length below the TCP header refused");
	free(h);
	len = t_udp4(f, 10);
	rv_put16(f + 16, 24);
	h = t_exact(f, len);
	CHECK(rv_make_partial(h, len, &vh) == 0, "IPv4 total length below IP + UDP headers refused");
	free(h);
}

static void test_csum_complete_bounds(void)
{
	uint8_t f[200];
	size_t len = t_tcp4(f, 10, 1, 0x10, 5);
	uint8_t *h = t_exact(f, len);
	CHECK(rv_csum_complete(h, len, (uint16_t)len, 0) == -1, "csum_start at the end refused");
	CHECK(rv_csum_complete(h, len, (uint16_t)(len - 1), 0) == -1, "a checksum field past the end refused");
	CHECK(rv_csum_complete(h, len, 0xffff, 0xffff) == -1, "huge offsets refused");
	CHECK(rv_csum_complete(h, len, (uint16_t)(len - 2), 0) == 0, "the last two bytes are a valid field");
	free(h);
}

/* Every prefix of valid frames through every parser: nothing reads past the end. */
static void sweep(const char *what, const uint8_t *frame, size_t full)
{
	int bad = 0;
	for (size_t len = 0; len <= full; len++) {
		uint8_t *f = t_exact(frame, len), out[2048], target[16];
		struct rv_l3 l;
		struct rv_vnet_hdr vh = { 0 }, tso = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, 100, 34, 16 };
		struct rv_vnet_hdr uso = { RV_VNET_F_NEEDS_CSUM, RV_GSO_UDP_L4, 0, 100, 34, 6 };
		struct rv_gro g;
		uint32_t vni;
		(void)rv_parse(f, len, &l);
		(void)rv_flow_hash(f, len);
		(void)rv_vxlan_parse(f, len, &vni);
		(void)rv_arp_reply(out, f, len, T_MAC_B);
		(void)rv_nd_target(f, len, target);
		(void)rv_nd_advert(out, sizeof(out), f, len, T_MAC_B);
		(void)rv_icmp_too_big(out, sizeof(out), f, len, 1400);
		(void)rv_csum_complete(f, len, 34, 16);
		if (rv_gro_start(&g, f, len)) {
			uint8_t *again = t_exact(frame, len);
			(void)rv_gro_append(&g, again, len);
			free(again);
		}
		(void)segment_exact(&tso, f, len, 0, 8192);
		(void)segment_exact(&uso, f, len, 3, 8192);
		if (rv_make_partial(f, len, &vh) && vh.csum_start + vh.csum_offset + 2u > len)
			bad++;
		free(f);
	}
	CHECK(bad == 0, "%s: every truncation handled (%d bad)", what, bad);
}

static void test_truncations(void)
{
	uint8_t f[4000];
	size_t n;
	n = t_tcp4(f, 300, 1, 0x18, 8);
	sweep("TCPv4 with options", f, n);
	n = t_tcp6(f, 300);
	sweep("TCPv6", f, n);
	n = t_udp4(f, 300);
	sweep("UDPv4", f, n);
	n = t_arp(f);
	sweep("ARP request", f, n);
	n = t_ns(f);
	sweep("neighbour solicitation", f, n);
	{
		uint8_t t[4004];
		n = t_tcp4(f, 300, 1, 0x18, 8);
		n = rv_vlan_insert(t, f, n, 7);
		sweep("802.1Q-tagged TCPv4", t, n);
	}
}

int main(void)
{
	t_init();
	test_gro_data_offset();
	test_segment_data_offset();
	test_partial_lengths();
	test_csum_complete_bounds();
	test_truncations();
	return t_report();
}
