/*
 * A small hostile-frame fuzz loop: valid frames (TCP/UDP over IPv4/IPv6, ARP, ND, with
 * and without an 802.1Q tag) are mutated (bit flips, truncation, random tails, extreme
 * header fields) and run through what the fast path does to a frame from the underlay
 * (VXLAN parse, tag strip, partial checksum, coalescing) and from an instance
 * (segmentation with random virtio headers, checksum completion, ARP/ND/ICMP answers).
 * Every input sits in a heap buffer of exactly its length; built with ASan/UBSan, the
 * first out-of-bounds access aborts the run. Deterministic: RHUMB_FUZZ_SEED and
 * RHUMB_FUZZ_ITERS pick the run.
 */
#include <sys/uio.h>
#include "testlib.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

#define MAXF 9000

/* A valid frame of a random kind. */
static size_t template(uint8_t *f)
{
	switch (below(7)) {
	case 0: return t_tcp4(f, below(3000), (uint32_t)rnd(), (uint8_t)(0x10 | (rnd() & 0x08)), 5 + (unsigned)below(11));
	case 1: return t_tcp6(f, below(3000));
	case 2: return t_udp4(f, below(3000));
	case 3: return t_arp(f);
	case 4: return t_ns(f);
	case 5: {
		uint8_t inner[MAXF];
		size_t n = t_tcp4(inner, below(2000), 1, 0x10, 5);
		return rv_vlan_insert(f, inner, n, (uint16_t)below(4096));
	}
	default: {
		size_t n = below(200);
		for (size_t i = 0; i < n; i++)
			f[i] = (uint8_t)rnd();
		return n;
	}
	}
}

/* Header fields the parsers trust most, set to hostile values. */
static void poison_field(uint8_t *f, size_t len)
{
	static const size_t at[] = { 12, 14, 16, 17, 18, 19, 20, 21, 23, 46, 47, 58, 66 };
	size_t o = at[below(sizeof(at) / sizeof(at[0]))];
	static const uint8_t vals[] = { 0, 1, 4, 5, 0x0f, 0x40, 0x45, 0x4f, 0x60, 0x81, 0xf0, 0xff };
	if (o < len)
		f[o] = vals[below(sizeof(vals))];
}

static size_t mutate(uint8_t *f, size_t len)
{
	int n = 1 + (int)below(4);
	for (int i = 0; i < n; i++) {
		switch (below(5)) {
		case 0:
			if (len)
				f[below(len)] ^= (uint8_t)(1u << below(8));
			break;
		case 1:
			len = below(len + 1);
			break;
		case 2: {
			size_t add = below(64);
			for (size_t k = 0; k < add && len < MAXF; k++)
				f[len++] = (uint8_t)rnd();
			break;
		}
		case 3:
			poison_field(f, len);
			break;
		default:
			if (len)
				f[below(len)] = (uint8_t)rnd();
		}
	}
	return len;
}

static int violations;

/* What decap and delivery do with one datagram from the underlay. */
static void from_underlay(const uint8_t *frame, size_t flen, struct rv_gro *g, int *gro_open)
{
	uint8_t d[MAXF + RV_VXLAN_HLEN];
	size_t len = flen + RV_VXLAN_HLEN, fl;
	uint8_t *p, *fr;
	uint32_t vni;
	struct rv_l3 l;
	struct rv_vnet_hdr vh = { 0 };
	rv_vxlan_hdr(d, (uint32_t)below(1 << 24));
	if (below(8) == 0)
		d[0] = (uint8_t)rnd();
	memcpy(d + RV_VXLAN_HLEN, frame, flen);
	if (below(10) == 0)
		len = below(len + 1);
	p = t_exact(d, len);
	if (rv_vxlan_parse(p, len, &vni) != 0 || len < RV_VXLAN_HLEN + RV_ETH_HLEN)
		goto out;
	fr = p + RV_VXLAN_HLEN;
	fl = len - RV_VXLAN_HLEN;
	if (rv_parse(fr, fl, &l) != 0)
		goto out;
	if (fl >= 18 && rv_get16(fr + 12) == RV_ETH_P_8021Q)
		fr = rv_vlan_strip(fr, &fl);
	if (rv_make_partial(fr, fl, &vh) && (size_t)vh.csum_start + vh.csum_offset + 2 > fl)
		violations++;
	/* The run keeps its head buffer: coalescing works on frames still held by the caller. */
	if (*gro_open && rv_gro_append(g, fr, fl)) {
		free(p);
		return;
	}
	if (*gro_open) {
		struct rv_vnet_hdr gv;
		struct iovec iov[RV_GRO_MAXSEG + 1];
		size_t total = 0;
		int cnt = rv_gro_finish(g, &gv, iov, RV_GRO_MAXSEG + 1);
		for (int i = 1; i < cnt; i++)
			total += iov[i].iov_len;
		if (cnt < 2 || total != g->total)
			violations++;
		free(g->head);
		*gro_open = 0;
	}
	if (rv_gro_start(g, fr, fl)) {
		/* Keep the datagram alive as the run's head (fr points into it). */
		uint8_t *head = t_exact(fr, fl);
		free(p);
		rv_gro_start(g, head, fl);
		*gro_open = 1;
		return;
	}
out:
	free(p);
}

/* What the fast path does with one frame from an instance's TAP. */
static void from_instance(const uint8_t *frame, size_t len)
{
	uint8_t *f = t_exact(frame, len), reply[2048];
	size_t cap = below(80000), off[128], sl[128];
	uint8_t *out = malloc(cap ? cap : 1);
	static const uint8_t gso[] = { RV_GSO_NONE, RV_GSO_TCPV4, RV_GSO_UDP, RV_GSO_TCPV6, RV_GSO_UDP_L4, RV_GSO_TCPV4 | RV_GSO_ECN, 0x7f };
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, gso[below(sizeof(gso))], (uint16_t)rnd(), (uint16_t)below(3000),
				  (uint16_t)below(len + 4), (uint16_t)below(64) };
	uint16_t vid = (uint16_t)below(4096);
	int maxseg = 1 + (int)below(128);
	int n = rv_segment(&vh, f, len, vid, RV_VXLAN_HLEN, out, cap, off, sl, maxseg);
	for (int i = 0; i < n; i++)
		if (off[i] + RV_VXLAN_HLEN + sl[i] > cap)
			violations++;
	if (n > 0) {
		/* Again into a buffer that ends exactly after the last segment. */
		size_t exact = off[n - 1] + RV_VXLAN_HLEN + sl[n - 1];
		uint8_t *tight = malloc(exact);
		if (rv_segment(&vh, f, len, vid, RV_VXLAN_HLEN, tight, exact, off, sl, maxseg) != n)
			violations++;
		free(tight);
	}
	(void)rv_csum_complete(f, len, vh.csum_start, vh.csum_offset);
	(void)rv_icmp_too_big(reply, sizeof(reply), f, len, (uint16_t)below(65536));
	(void)rv_arp_reply(reply, f, len, T_MAC_B);
	(void)rv_nd_advert(reply, sizeof(reply), f, len, T_MAC_B);
	(void)rv_flow_hash(f, len);
	free(out);
	free(f);
}

/* Valid segments of one flow, some mutated, through coalescing. */
static void gro_chain(void)
{
	static uint8_t f[70000], out[80000];
	size_t off[64], sl[64], len = t_tcp4(f, 500 + below(20000), (uint32_t)rnd(), 0x10, 5 + (unsigned)below(4) * 3);
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, (uint16_t)(536 + below(1000)), 34, 16 };
	int n = rv_segment(&vh, f, len, 0, 0, out, sizeof(out), off, sl, 64), open = 0;
	/* Sometimes one hostile header field shared by the whole flow (they coalesce together). */
	size_t common_at = below(4) == 0 ? 14 + below(60) : 0;
	uint8_t common_val = (uint8_t)rnd();
	struct rv_gro g;
	for (int i = 0; i < n; i++) {
		uint8_t seg[MAXF];
		size_t sn = sl[i];
		if (sn > MAXF)
			continue;
		memcpy(seg, out + off[i], sn);
		if (common_at && common_at < sn)
			seg[common_at] = common_val;
		if (below(3) == 0)
			sn = mutate(seg, sn);
		from_underlay(seg, sn, &g, &open);
	}
	if (open)
		free(g.head);
}

int main(void)
{
	const char *seed = getenv("RHUMB_FUZZ_SEED"), *iters = getenv("RHUMB_FUZZ_ITERS");
	long n = iters ? atol(iters) : 20000;
	struct rv_gro g;
	int open = 0;
	t_init();
	if (seed)
		rng_state = strtoull(seed, NULL, 0) | 1;
	printf("fuzz seed %#llx, %ld iterations\n", (unsigned long long)rng_state, n);
	for (long i = 0; i < n; i++) {
		uint8_t f[MAXF + 64];
		size_t len = mutate(f, template(f));
		from_underlay(f, len, &g, &open);
		from_instance(f, len);
		if (i % 64 == 0)
			gro_chain();
	}
	if (open)
		free(g.head);
	CHECK(violations == 0, "fuzz: %d invariant violations", violations);
	return t_report();
}
