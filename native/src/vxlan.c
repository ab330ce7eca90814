/*
 * Pure packet functions of the userspace fast path (see rhumb_vxlan.h). Everything works
 * on byte buffers in network order; nothing allocates or calls the kernel.
 */
#include "rhumb_vxlan.h"
#include "rhumb_csum.h"
#include <string.h>
#include <sys/uio.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_ECE 0x40
#define TCP_CWR 0x80

int rv_parse(const uint8_t *f, size_t len, struct rv_l3 *o)
{
	size_t off = 12;
	uint16_t et;

	if (len < RV_ETH_HLEN)
		return -1;
	o->vlan = -1;
	et = rv_get16(f + 12);
	if (et == RV_ETH_P_8021Q) {
		if (len < 18)
			return -1;
		o->vlan = rv_get16(f + 14) & 0x0fff;
		et = rv_get16(f + 16);
		off = 16;
	}
	o->ethertype = et;
	o->l3 = off + 2;
	o->proto = 0;
	o->l4 = 0;
	if (et == RV_ETH_P_IP) {
		size_t ihl;
		if (len < o->l3 + 20 || (f[o->l3] >> 4) != 4)
			return -1;
		ihl = (size_t)(f[o->l3] & 0x0f) * 4;
		if (ihl < 20 || len < o->l3 + ihl)
			return -1;
		o->proto = f[o->l3 + 9];
		/* Fragments after the first carry no transport header. */
		if ((rv_get16(f + o->l3 + 6) & 0x1fff) == 0)
			o->l4 = o->l3 + ihl;
	} else if (et == RV_ETH_P_IPV6) {
		if (len < o->l3 + 40 || (f[o->l3] >> 4) != 6)
			return -1;
		o->proto = f[o->l3 + 6];
		o->l4 = o->l3 + 40;
	}
	return 0;
}

static uint32_t mix(uint32_t h, const uint8_t *p, size_t n)
{
	/* FNV-1a; good enough to spread flows over sockets and ECMP paths. */
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

uint32_t rv_flow_hash(const uint8_t *f, size_t len)
{
	struct rv_l3 l;
	uint32_t h = 2166136261u;

	if (rv_parse(f, len, &l) != 0)
		return mix(h, f, len < 12 ? len : 12);
	if (l.ethertype == RV_ETH_P_IP) {
		h = mix(h, f + l.l3 + 12, 8);
	} else if (l.ethertype == RV_ETH_P_IPV6) {
		h = mix(h, f + l.l3 + 8, 32);
	} else {
		return mix(h, f, 12);
	}
	h = mix(h, &l.proto, 1);
	if (l.l4 && (l.proto == 6 || l.proto == 17) && len >= l.l4 + 4)
		h = mix(h, f + l.l4, 4);
	h ^= h >> 16;
	return h;
}

uint16_t rv_src_port(uint32_t hash)
{
	return (uint16_t)(32768 + (((uint64_t)hash * (61000 - 32768)) >> 32));
}

void rv_vxlan_hdr(uint8_t out[RV_VXLAN_HLEN], uint32_t vni)
{
	out[0] = 0x08;
	out[1] = out[2] = out[3] = 0;
	out[4] = (uint8_t)(vni >> 16);
	out[5] = (uint8_t)(vni >> 8);
	out[6] = (uint8_t)vni;
	out[7] = 0;
}

int rv_vxlan_parse(const uint8_t *p, size_t len, uint32_t *vni)
{
	if (len < RV_VXLAN_HLEN)
		return -1;
	if (!(p[0] & 0x08))
		return -2;
	*vni = ((uint32_t)p[4] << 16) | ((uint32_t)p[5] << 8) | p[6];
	return 0;
}

size_t rv_vlan_insert(uint8_t *dst, const uint8_t *f, size_t len, uint16_t vid)
{
	memcpy(dst, f, 12);
	rv_put16(dst + 12, RV_ETH_P_8021Q);
	rv_put16(dst + 14, vid & 0x0fff);
	memmove(dst + 16, f + 12, len - 12);
	return len + 4;
}

uint8_t *rv_vlan_strip(uint8_t *f, size_t *len)
{
	memmove(f + 4, f, 12);
	*len -= 4;
	return f + 4;
}

size_t rv_arp_reply(uint8_t out[42], const uint8_t *req, size_t len, const uint8_t mac[6])
{
	const uint8_t *a = req + RV_ETH_HLEN;
	uint8_t *r = out + RV_ETH_HLEN;

	if (len < 42 || rv_get16(req + 12) != RV_ETH_P_ARP || rv_get16(a) != 1 || rv_get16(a + 2) != RV_ETH_P_IP ||
	    a[4] != 6 || a[5] != 4 || rv_get16(a + 6) != 1)
		return 0;
	memcpy(out, a + 8, 6);
	memcpy(out + 6, mac, 6);
	rv_put16(out + 12, RV_ETH_P_ARP);
	rv_put16(r, 1);
	rv_put16(r + 2, RV_ETH_P_IP);
	r[4] = 6;
	r[5] = 4;
	rv_put16(r + 6, 2);
	memcpy(r + 8, mac, 6);
	memcpy(r + 14, a + 24, 4); /* spa = the target asked about */
	memcpy(r + 18, a + 8, 6);  /* tha = requester */
	memcpy(r + 24, a + 14, 4); /* tpa = requester's IP */
	return 42;
}

size_t rv_garp(uint8_t out[42], const uint8_t mac[6], const uint8_t ip[4])
{
	uint8_t *r = out + RV_ETH_HLEN;

	memset(out, 0xff, 6);
	memcpy(out + 6, mac, 6);
	rv_put16(out + 12, RV_ETH_P_ARP);
	rv_put16(r, 1);
	rv_put16(r + 2, RV_ETH_P_IP);
	r[4] = 6;
	r[5] = 4;
	rv_put16(r + 6, 1);
	memcpy(r + 8, mac, 6);
	memcpy(r + 14, ip, 4);
	memset(r + 18, 0, 6);
	memcpy(r + 24, ip, 4);
	return 42;
}

static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t l4len, uint8_t proto)
{
	uint8_t tail[8] = { (uint8_t)(l4len >> 24), (uint8_t)(l4len >> 16), (uint8_t)(l4len >> 8), (uint8_t)l4len, 0, 0, 0, proto };
	uint32_t s = rhumb_csum_partial(src, 16, 0);
	s = rhumb_csum_partial(dst, 16, s);
	return rhumb_csum_partial(tail, 8, s);
}

static uint32_t pseudo4(const uint8_t *src, const uint8_t *dst, uint16_t l4len, uint8_t proto)
{
	uint8_t tail[4] = { 0, proto, (uint8_t)(l4len >> 8), (uint8_t)l4len };
	uint32_t s = rhumb_csum_partial(src, 4, 0);
	s = rhumb_csum_partial(dst, 4, s);
	return rhumb_csum_partial(tail, 4, s);
}

int rv_nd_target(const uint8_t *f, size_t len, uint8_t target[16])
{
	struct rv_l3 l;
	if (rv_parse(f, len, &l) != 0 || l.vlan >= 0 || l.ethertype != RV_ETH_P_IPV6 || l.proto != 58)
		return 0;
	if (len < l.l4 + 24 || f[l.l4] != 135 || f[l.l4 + 1] != 0)
		return 0;
	memcpy(target, f + l.l4 + 8, 16);
	return 1;
}

size_t rv_nd_advert(uint8_t *out, size_t cap, const uint8_t *ns, size_t len, const uint8_t mac[6])
{
	static const uint8_t all_nodes[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t zero[16] = { 0 };
	uint8_t target[16];
	const uint8_t *ip = ns + RV_ETH_HLEN;
	uint8_t *o6 = out + RV_ETH_HLEN, *icmp = o6 + 40;
	int from_unspec;
	size_t n = RV_ETH_HLEN + 40 + 32;

	if (cap < n || !rv_nd_target(ns, len, target))
		return 0;
	from_unspec = memcmp(ip + 8, zero, 16) == 0;
	memcpy(out, ns + 6, 6);
	memcpy(out + 6, mac, 6);
	rv_put16(out + 12, RV_ETH_P_IPV6);
	memset(o6, 0, 40);
	o6[0] = 0x60;
	rv_put16(o6 + 4, 32);
	o6[6] = 58;
	o6[7] = 255;
	memcpy(o6 + 8, target, 16);
	memcpy(o6 + 24, from_unspec ? all_nodes : ip + 8, 16);
	memset(icmp, 0, 32);
	icmp[0] = 136;
	icmp[4] = from_unspec ? 0x20 : 0x60; /* Solicited (when answered to a node) | Override */
	memcpy(icmp + 8, target, 16);
	icmp[24] = 2; /* target link-layer address */
	icmp[25] = 1;
	memcpy(icmp + 26, mac, 6);
	rv_put16(icmp + 2, rhumb_csum_fold(rhumb_csum_partial(icmp, 32, pseudo6(o6 + 8, o6 + 24, 32, 58))));
	return n;
}

size_t rv_icmp_too_big(uint8_t *out, size_t cap, const uint8_t *f, size_t len, uint16_t mtu)
{
	struct rv_l3 l;

	if (rv_parse(f, len, &l) != 0 || l.vlan >= 0)
		return 0;
	memcpy(out, f + 6, 6);
	memcpy(out + 6, f, 6);
	rv_put16(out + 12, l.ethertype);
	if (l.ethertype == RV_ETH_P_IP) {
		const uint8_t *ip = f + l.l3;
		size_t ihl = (size_t)(ip[0] & 0x0f) * 4, quote = ihl + 8;
		uint8_t *o = out + RV_ETH_HLEN, *icmp = o + 20;
		size_t n;
		if (len - l.l3 < quote)
			quote = len - l.l3;
		n = RV_ETH_HLEN + 20 + 8 + quote;
		if (cap < n)
			return 0;
		memset(o, 0, 20);
		o[0] = 0x45;
		rv_put16(o + 2, (uint16_t)(20 + 8 + quote));
		o[8] = 64;
		o[9] = 1;
		memcpy(o + 12, ip + 16, 4);
		memcpy(o + 16, ip + 12, 4);
		rv_put16(o + 10, rhumb_csum_fold(rhumb_csum_partial(o, 20, 0)));
		memset(icmp, 0, 8);
		icmp[0] = 3;
		icmp[1] = 4;
		rv_put16(icmp + 6, mtu);
		memcpy(icmp + 8, ip, quote);
		rv_put16(icmp + 2, rhumb_csum_fold(rhumb_csum_partial(icmp, 8 + quote, 0)));
		return n;
	}
	if (l.ethertype == RV_ETH_P_IPV6) {
		const uint8_t *ip = f + l.l3;
		size_t quote = len - l.l3, n;
		uint8_t *o = out + RV_ETH_HLEN, *icmp = o + 40;
		if (quote > 1280 - 48)
			quote = 1280 - 48;
		n = RV_ETH_HLEN + 40 + 8 + quote;
		if (cap < n)
			return 0;
		memset(o, 0, 40);
		o[0] = 0x60;
		rv_put16(o + 4, (uint16_t)(8 + quote));
		o[6] = 58;
		o[7] = 64;
		memcpy(o + 8, ip + 24, 16);
		memcpy(o + 24, ip + 8, 16);
		memset(icmp, 0, 8);
		icmp[0] = 2;
		rv_put32(icmp + 4, mtu);
		memcpy(icmp + 8, ip, quote);
		rv_put16(icmp + 2,
			 rhumb_csum_fold(rhumb_csum_partial(icmp, 8 + quote, pseudo6(o + 8, o + 24, (uint32_t)(8 + quote), 58))));
		return n;
	}
	return 0;
}

int rv_csum_complete(uint8_t *f, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	uint16_t c;
	if ((size_t)csum_start + csum_offset + 2 > len)
		return -1;
	c = rhumb_csum_fold(rhumb_csum_partial(f + csum_start, len - csum_start, 0));
	rv_put16(f + csum_start + csum_offset, c);
	return 0;
}

int rv_make_partial(uint8_t *f, size_t len, struct rv_vnet_hdr *vh)
{
	struct rv_l3 l;
	size_t l4len, coff;
	uint32_t s;
	if (rv_parse(f, len, &l) != 0 || l.vlan >= 0 || !l.l4 || (l.proto != 6 && l.proto != 17))
		return 0;
	coff = l.proto == 6 ? 16 : 6;
	if (len < l.l4 + (l.proto == 6 ? 20 : 8))
		return 0;
	if (l.ethertype == RV_ETH_P_IP) {
		const uint8_t *ip = f + l.l3;
		if (rv_get16(ip + 6) & 0x2000)
			return 0; /* first fragment: the checksum covers more than this frame */
		if ((size_t)rv_get16(ip + 2) + l.l3 > len || rv_get16(ip + 2) < l.l4 - l.l3 + (l.proto == 6 ? 20 : 8))
			return 0; /* the IP length must cover the headers it carries */
		l4len = rv_get16(ip + 2) - (l.l4 - l.l3);
		if (l.proto == 17 && rv_get16(f + l.l4 + 6) == 0)
			return 0; /* UDP without checksum */
		s = pseudo4(ip + 12, ip + 16, (uint16_t)l4len, l.proto);
	} else {
		const uint8_t *ip = f + l.l3;
		l4len = rv_get16(ip + 4);
		if (l.l4 + l4len > len || l4len < (l.proto == 6 ? 20u : 8u))
			return 0;
		s = pseudo6(ip + 8, ip + 24, (uint32_t)l4len, l.proto);
	}
	rv_put16(f + l.l4 + coff, (uint16_t)~rhumb_csum_fold(s));
	vh->flags = RV_VNET_F_NEEDS_CSUM;
	vh->gso_type = RV_GSO_NONE;
	vh->csum_start = (uint16_t)l.l4;
	vh->csum_offset = (uint16_t)coff;
	return 1;
}

/*
 * The sums every segment of a superframe shares: its IPv4 header with the length, ID and
 * checksum zeroed (ip), and its pseudo header without the length plus its L4 header with
 * the fields that differ per segment zeroed (l4: TCP sequence, data offset and flags word,
 * checksum; UDP length and checksum). Each segment then adds only what is its own.
 */
static void segment_base_sums(const uint8_t *f, const struct rv_l3 *l, size_t hl, int tcp, uint32_t *ip, uint32_t *l4)
{
	uint8_t h[RV_SEG_STRIDE];
	uint8_t proto[2] = { 0, tcp ? 6 : 17 };
	uint32_t s;
	memcpy(h, f, hl);
	if (l->ethertype == RV_ETH_P_IP) {
		uint8_t *iph = h + l->l3;
		rv_put16(iph + 2, 0);
		rv_put16(iph + 4, 0);
		rv_put16(iph + 10, 0);
		*ip = rhumb_csum_partial(iph, l->l4 - l->l3, 0);
		s = rhumb_csum_partial(iph + 12, 8, 0);
	} else {
		*ip = 0;
		s = rhumb_csum_partial(h + l->l3 + 8, 32, 0);
	}
	s = rhumb_csum_partial(proto, 2, s);
	if (tcp) {
		rv_put32(h + l->l4 + 4, 0);
		rv_put16(h + l->l4 + 12, 0);
		rv_put16(h + l->l4 + 16, 0);
	} else {
		rv_put16(h + l->l4 + 4, 0);
		rv_put16(h + l->l4 + 6, 0);
	}
	*l4 = rhumb_csum_partial(h + l->l4, hl - l->l4, s);
}

int rv_segment_hdrs(const struct rv_vnet_hdr *h, const uint8_t *f, size_t len, uint16_t vid, size_t headroom,
		    uint8_t *hdrs, size_t stride, struct rv_seg *seg, int maxseg)
{
	struct rv_l3 l;
	uint8_t gso = h->gso_type & (uint8_t)~RV_GSO_ECN;
	int tcp = gso == RV_GSO_TCPV4 || gso == RV_GSO_TCPV6;
	size_t hl, plen, mss = h->gso_size, tag = vid ? 4 : 0;
	int nseg;
	uint32_t seq0 = 0, ip_base, l4_base;
	uint16_t id0 = 0;
	struct rv_l3 sl;

	if (rv_parse(f, len, &l) != 0 || l.vlan >= 0 || !l.l4 || mss == 0)
		return -1;
	if (tcp) {
		if (l.proto != 6 || len < l.l4 + 20 || (f[l.l4 + 12] >> 4) < 5)
			return -1; /* every segment's TCP fields must lie inside its header */
		hl = l.l4 + (size_t)(f[l.l4 + 12] >> 4) * 4;
		seq0 = rv_get32(f + l.l4 + 4);
	} else if (gso == RV_GSO_UDP_L4) {
		if (l.proto != 17)
			return -1;
		hl = l.l4 + 8;
	} else {
		return -1;
	}
	if (hl > len || headroom + hl + tag > stride || hl > RV_SEG_STRIDE)
		return -1;
	if (l.ethertype == RV_ETH_P_IP)
		id0 = rv_get16(f + l.l3 + 4);
	plen = len - hl;
	nseg = plen == 0 ? 1 : (int)((plen + mss - 1) / mss);
	if (nseg > maxseg)
		return -1;
	segment_base_sums(f, &l, hl, tcp, &ip_base, &l4_base);
	sl = l;
	sl.l3 += tag;
	sl.l4 += tag;
	for (int i = 0; i < nseg; i++) {
		size_t chunk = plen - (size_t)i * mss < mss ? plen - (size_t)i * mss : mss;
		const uint8_t *data = f + hl + (size_t)i * mss;
		uint8_t *s = hdrs + (size_t)i * stride + headroom;
		size_t l4len = hl - l.l4 + chunk;
		uint32_t sum = l4_base + (uint32_t)l4len; /* the pseudo header's length */

		if (tag) {
			memcpy(s, f, 12);
			rv_put16(s + 12, RV_ETH_P_8021Q);
			rv_put16(s + 14, vid & 0x0fff);
			memcpy(s + 16, f + 12, hl - 12);
		} else {
			memcpy(s, f, hl);
		}
		if (l.ethertype == RV_ETH_P_IP) {
			uint8_t *ip = s + sl.l3;
			uint16_t iplen = (uint16_t)(sl.l4 - sl.l3 + l4len), id = (uint16_t)(id0 + i);
			rv_put16(ip + 2, iplen);
			rv_put16(ip + 4, id);
			rv_put16(ip + 10, rhumb_csum_fold(ip_base + iplen + id));
		} else {
			rv_put16(s + sl.l3 + 4, (uint16_t)(sl.l4 - sl.l3 - 40 + l4len));
		}
		if (tcp) {
			uint8_t *t = s + sl.l4;
			uint32_t seq = seq0 + (uint32_t)((size_t)i * mss);
			rv_put32(t + 4, seq);
			if (i != nseg - 1)
				t[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
			if (i != 0)
				t[13] &= (uint8_t)~TCP_CWR;
			sum += (seq >> 16) + (seq & 0xffff) + rv_get16(t + 12);
			/* The header's length is a multiple of 4, so the payload's sum chains after it. */
			rv_put16(t + 16, rhumb_csum_fold(rhumb_csum_partial(data, chunk, sum)));
		} else {
			uint8_t *u = s + sl.l4;
			uint16_t c;
			rv_put16(u + 4, (uint16_t)l4len);
			c = rhumb_csum_fold(rhumb_csum_partial(data, chunk, sum + (uint32_t)l4len));
			rv_put16(u + 6, c ? c : 0xffff);
		}
		seg[i] = (struct rv_seg){ s - headroom, headroom + hl + tag, data, chunk };
	}
	return nseg;
}

int rv_segment(const struct rv_vnet_hdr *h, const uint8_t *f, size_t len, uint16_t vid, size_t headroom,
	       uint8_t *out, size_t cap, size_t *off, size_t *seglen, int maxseg)
{
	struct rv_seg seg[128];
	uint8_t hdrs[128 * RV_SEG_STRIDE];
	size_t pos = 0;
	int n;

	if (maxseg > 128)
		maxseg = 128;
	n = rv_segment_hdrs(h, f, len, vid, headroom, hdrs, RV_SEG_STRIDE, seg, maxseg);
	for (int i = 0; i < n; i++) {
		if (pos + seg[i].hlen + seg[i].dlen > cap)
			return -1;
		memcpy(out + pos, seg[i].hdr, seg[i].hlen);
		memcpy(out + pos + seg[i].hlen, seg[i].data, seg[i].dlen);
		off[i] = pos;
		seglen[i] = seg[i].hlen - headroom + seg[i].dlen;
		pos += seg[i].hlen + seg[i].dlen;
	}
	return n;
}

/* A TCP/IPv4 segment that may join a run: its header length and payload length. */
static int gro_shape(const uint8_t *f, size_t len, size_t *hl, size_t *plen)
{
	struct rv_l3 l;
	const uint8_t *ip, *t;
	if (rv_parse(f, len, &l) != 0 || l.vlan >= 0 || l.ethertype != RV_ETH_P_IP || l.proto != 6 || !l.l4)
		return 0;
	ip = f + l.l3;
	if ((ip[0] & 0x0f) != 5 || (rv_get16(ip + 6) & 0x3fff) != 0 || len < l.l4 + 20)
		return 0;
	/* The frame must be exactly the IP packet (no Ethernet padding). */
	if ((size_t)rv_get16(ip + 2) + l.l3 != len)
		return 0;
	t = f + l.l4;
	if (t[13] & (uint8_t)~(TCP_ACK | TCP_PSH))
		return 0;
	if (!(t[13] & TCP_ACK))
		return 0;
	/* A data offset below 5 would put the options' length (hl - 54) below zero. */
	if ((t[12] >> 4) < 5)
		return 0;
	*hl = l.l4 + (size_t)(t[12] >> 4) * 4;
	if (*hl >= len)
		return 0;
	*plen = len - *hl;
	return 1;
}

int rv_gro_start(struct rv_gro *g, uint8_t *f, size_t len)
{
	size_t hl, plen;
	memset(g, 0, sizeof(*g));
	g->head = f;
	g->head_len = len;
	g->total = len;
	g->nseg = 1;
	if (!gro_shape(f, len, &hl, &plen)) {
		g->closed = 1;
		g->hdr_len = 0;
		return 0;
	}
	g->hdr_len = hl;
	g->mss = (uint16_t)plen;
	g->next_seq = rv_get32(f + 34 + 4) + (uint32_t)plen;
	g->psh = f[34 + 13] & TCP_PSH;
	g->closed = g->psh ? 1 : 0;
	return 1;
}

int rv_gro_append(struct rv_gro *g, const uint8_t *f, size_t len)
{
	size_t hl, plen;
	const uint8_t *h = g->head;
	if (g->closed || g->hdr_len == 0 || g->nseg >= RV_GRO_MAXSEG)
		return 0;
	if (!gro_shape(f, len, &hl, &plen) || hl != g->hdr_len || plen > g->mss)
		return 0;
	if (memcmp(f, h, 12) != 0 || memcmp(f + 26, h + 26, 8) != 0 || memcmp(f + 34, h + 34, 4) != 0)
		return 0; /* MACs, IP addresses, ports */
	if (f[15] != h[15] || f[22] != h[22])
		return 0; /* TOS, TTL */
	if (rv_get32(f + 38) != g->next_seq || rv_get32(f + 42) != rv_get32(h + 42))
		return 0; /* contiguous, same ACK */
	if (memcmp(f + 54, h + 54, hl - 54) != 0)
		return 0; /* TCP options (timestamps) */
	if (g->total - RV_ETH_HLEN + plen > 65535)
		return 0;
	g->payload[g->nseg] = f + hl;
	g->plen[g->nseg] = plen;
	g->nseg++;
	g->total += plen;
	g->next_seq += (uint32_t)plen;
	if (f[47] & TCP_PSH) {
		g->psh = 1;
		g->closed = 1;
	}
	if (plen < g->mss)
		g->closed = 1;
	return 1;
}

int rv_gro_finish(struct rv_gro *g, struct rv_vnet_hdr *vh, struct iovec *iov, int maxiov)
{
	int n = 0;
	memset(vh, 0, sizeof(*vh));
	if (maxiov < g->nseg + 1)
		return -1;
	iov[n].iov_base = vh;
	iov[n++].iov_len = RV_VNET_HLEN;
	iov[n].iov_base = g->head;
	iov[n++].iov_len = g->head_len;
	if (g->nseg == 1)
		rv_make_partial(g->head, g->head_len, vh);
	if (g->nseg > 1) {
		uint8_t *ip = g->head + RV_ETH_HLEN;
		uint8_t *t = ip + 20;
		uint16_t iplen = (uint16_t)(g->total - RV_ETH_HLEN);
		uint32_t ps;
		for (int i = 1; i < g->nseg; i++) {
			iov[n].iov_base = (void *)g->payload[i];
			iov[n++].iov_len = g->plen[i];
		}
		rv_put16(ip + 2, iplen);
		rv_put16(ip + 10, 0);
		rv_put16(ip + 10, rhumb_csum_fold(rhumb_csum_partial(ip, 20, 0)));
		if (g->psh)
			t[13] |= TCP_PSH;
		/* NEEDS_CSUM: the field holds the folded pseudo-header sum, not complemented. */
		ps = pseudo4(ip + 12, ip + 16, (uint16_t)(iplen - 20), 6);
		rv_put16(t + 16, (uint16_t)~rhumb_csum_fold(ps));
		vh->flags = RV_VNET_F_NEEDS_CSUM;
		vh->gso_type = RV_GSO_TCPV4;
		vh->hdr_len = (uint16_t)g->hdr_len;
		vh->gso_size = g->mss;
		vh->csum_start = RV_ETH_HLEN + 20;
		vh->csum_offset = 16;
	}
	return n;
}
