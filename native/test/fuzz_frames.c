/*
 * A small hostile-frame fuzz loop: valid frames (TCP/UDP over IPv4/IPv6, ARP, ND, with
 * and without an 802.1Q tag) are mutated (bit flips, truncation, random tails, extreme
 * header fields) and run through the forwarding engine (native/src/fp_engine.c) as
 * datagrams from the underlay (peer check, decap, VLAN check, coalescing towards the TAP)
 * and as frames from an instance with random virtio headers (anti-spoofing, ARP/ND
 * answers, misses, segmentation, encapsulation), and through the packet functions
 * directly (segmentation into tight buffers, checksum completion, ICMP answers).
 * Every input sits in a heap buffer of exactly its length; built with ASan/UBSan, the
 * first out-of-bounds access aborts the run. Deterministic: RHUMB_FUZZ_SEED and
 * RHUMB_FUZZ_ITERS pick the run.
 */
#include <sys/uio.h>
#include "enginelib.h"

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
static struct fp *engine;
static int peer_a, peer_b;
#define VNET_TX 1 /* NIC A (T_MAC_A, T_IP_A) sends; T_MAC_B / T_IP_B are remote */
#define VNET_RX 2 /* NIC B (T_MAC_B) receives from the underlay */
static const uint8_t UL_PEER[4] = { 198, 18, 0, 2 };

static void engine_up(void)
{
	static struct recorded rec;
	uint8_t ops[3 * FP_RECORD], ipb[16] = { 0 };
	engine = t_engine(&rec);
	t_nic(engine, 0, T_MAC_A, T_IP_A, VNET_TX, 0, &peer_a);
	t_nic(engine, 1, T_MAC_B, T_IP_B, VNET_RX, 0, &peer_b);
	t_record_op(ops, 1, VNET_TX, 0, T_MAC_B, NULL, UL_PEER);
	t_record_op(ops + FP_RECORD, 3, VNET_TX, 0, T_MAC_B, T_IP_B, NULL);
	/* The IPv6 target of t_ns (fe80::2) is known too. */
	ipb[0] = 0xfe; ipb[1] = 0x80; ipb[15] = 2;
	t_record_op(ops + 2 * FP_RECORD, 3, VNET_TX, 0, T_MAC_B, NULL, NULL);
	memcpy(ops + 2 * FP_RECORD + 16, ipb, 16);
	fp_update(engine, ops, sizeof(ops));
	fp_set_peers(engine, UL_PEER, 1);
}

/* Datagrams of one receive batch, each in its own exact-size buffer until delivered. */
static struct fp_delivery batch[16];
static uint8_t *held[16];
static int nbatch;

static void deliver_batch(void)
{
	fp_deliver(engine, batch, nbatch);
	for (int i = 0; i < nbatch; i++)
		free(held[i]);
	nbatch = 0;
	t_drain(peer_b);
}

/* A datagram from the underlay through the engine: peer check, decap, coalescing. */
static void from_underlay(const uint8_t *frame, size_t flen)
{
	uint8_t d[MAXF + RV_VXLAN_HLEN], *p, *fr;
	size_t len = flen + RV_VXLAN_HLEN, fl;
	uint32_t src;
	int ni;
	rv_vxlan_hdr(d, below(8) == 0 ? (uint32_t)below(1 << 24) : VNET_RX);
	if (below(8) == 0)
		d[0] = (uint8_t)rnd();
	memcpy(d + RV_VXLAN_HLEN, frame, flen);
	if (below(10) == 0)
		len = below(len + 1);
	memcpy(&src, UL_PEER, 4);
	if (below(16) == 0)
		src ^= 0x01000000u;
	if (!fp_accept_from(engine, src, 1))
		return;
	p = t_exact(d, len);
	ni = fp_decap(engine, p, len, &fr, &fl);
	if (ni < 0) {
		free(p);
		return;
	}
	held[nbatch] = p;
	batch[nbatch++] = (struct fp_delivery){ ni, fr, fl };
	if (nbatch == 16 || below(4) == 0)
		deliver_batch();
}

/* A frame from an instance: the engine (anti-spoofing, answers, segmentation), then the packet functions. */
static void from_instance(const uint8_t *frame, size_t len)
{
	uint8_t *f = t_exact(frame, len), reply[2048];
	static const uint8_t gso[] = { RV_GSO_NONE, RV_GSO_TCPV4, RV_GSO_UDP, RV_GSO_TCPV6, RV_GSO_UDP_L4, RV_GSO_TCPV4 | RV_GSO_ECN, 0x7f };
	struct rv_vnet_hdr vh = { (uint8_t)(below(2) ? RV_VNET_F_NEEDS_CSUM : rnd()), gso[below(sizeof(gso))], (uint16_t)rnd(),
				  (uint16_t)below(3000), (uint16_t)below(len + 4), (uint16_t)below(64) };
	size_t cap = below(80000), off[128], sl[128];
	uint8_t *out = malloc(cap ? cap : 1);
	uint16_t vid = (uint16_t)below(4096);
	int maxseg = 1 + (int)below(128), n;

	engine->gso = below(2);
	engine->nics[0].allow_mac = below(8) == 0;
	engine->nics[0].allow_ip = below(8) == 0;
	fp_from_tap(engine, 0, below(4) ? &vh : NULL, f, len, (int)below(FP_BATCH), false);
	fp_flush(engine);
	t_drain(peer_a);
	if (below(64) == 0)
		fp_run_pending(engine);

	n = rv_segment(&vh, f, len, vid, RV_VXLAN_HLEN, out, cap, off, sl, maxseg);
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

/* Valid segments of one flow, some mutated, through decap and coalescing. */
static void gro_chain(void)
{
	static uint8_t f[70000], out[80000];
	size_t off[64], sl[64], len = t_tcp4(f, 500 + below(20000), (uint32_t)rnd(), 0x10, 5 + (unsigned)below(4) * 3);
	struct rv_vnet_hdr vh = { RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 0, (uint16_t)(536 + below(1000)), 34, 16 };
	int n = rv_segment(&vh, f, len, 0, 0, out, sizeof(out), off, sl, 64);
	/* Sometimes one hostile header field shared by the whole flow (they coalesce together). */
	size_t common_at = below(4) == 0 ? 14 + below(60) : 0;
	uint8_t common_val = (uint8_t)rnd();
	deliver_batch();
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
		from_underlay(seg, sn);
	}
	deliver_batch();
}

int main(void)
{
	const char *seed = getenv("RHUMB_FUZZ_SEED"), *iters = getenv("RHUMB_FUZZ_ITERS");
	long n = iters ? atol(iters) : 20000;
	t_init();
	if (seed)
		rng_state = strtoull(seed, NULL, 0) | 1;
	printf("fuzz seed %#llx, %ld iterations\n", (unsigned long long)rng_state, n);
	engine_up();
	for (long i = 0; i < n; i++) {
		uint8_t f[MAXF + 64];
		size_t len = mutate(f, template(f));
		from_underlay(f, len);
		from_instance(f, len);
		if (i % 64 == 0)
			gro_chain();
	}
	deliver_batch();
	{
		const uint64_t *a = engine->nics[0].c, *b = engine->nics[1].c;
		printf("reached: rx %llu coalesced %llu rx_vlan %llu | encap %llu segments %llu arp %llu nd %llu misses %llu "
		       "too_big %llu malformed %llu | bad_vxlan %llu unknown_peer %llu\n",
		       (unsigned long long)b[C_RX_FRAMES], (unsigned long long)b[C_COALESCED], (unsigned long long)b[D_RX_VLAN],
		       (unsigned long long)a[C_ENCAP], (unsigned long long)engine->c[C_SEGMENTS], (unsigned long long)a[C_ARP_REPLIES],
		       (unsigned long long)a[C_ND_REPLIES], (unsigned long long)a[C_MISSES], (unsigned long long)a[C_ICMP_TOO_BIG],
		       (unsigned long long)a[D_MALFORMED], (unsigned long long)engine->c[D_BAD_VXLAN],
		       (unsigned long long)engine->c[D_UNKNOWN_PEER]);
		CHECK(b[C_RX_FRAMES] > 0 && b[C_COALESCED] > 0, "fuzz reached delivery and coalescing");
		CHECK(a[C_ENCAP] > 0 && engine->c[C_SEGMENTS] > 0 && a[C_ARP_REPLIES] > 0, "fuzz reached encapsulation, segmentation and ARP answers");
	}
	close(peer_a);
	close(peer_b);
	t_release(engine);
	CHECK(violations == 0, "fuzz: %d invariant violations", violations);
	return t_report();
}
