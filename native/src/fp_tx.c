/*
 * The engine's transmit path: frames from the instances' TAPs (anti-spoofing, ARP and
 * neighbour answers from the tables, misses handed to fp_park.c, local delivery,
 * encapsulation with segmentation around the payload in place and UDP_SEGMENT), batched
 * into the sending sockets' queues. Runs on the transmit thread with the mutex held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

/* ---- transmit (towards the underlay) ------------------------------------------------- */

static void txq_flush(struct fp *f, int s)
{
	struct txq *q = &f->txq[s];
	int sent = 0;
	while (sent < q->n) {
		int r = sendmmsg(f->txfd[s], q->msg + sent, (unsigned)(q->n - sent), 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EIO && f->gso) {
				/* The egress device cannot checksum GSO sends: stop using UDP_SEGMENT. */
				f->gso = false;
			}
			CNT_ADD(f->c[D_SEND], 1);
			sent++;
			continue;
		}
		sent += r;
	}
	q->n = 0;
	q->niov = 0;
	q->bytes = 0;
}

static size_t txq_bytes(const struct fp *f)
{
	size_t b = 0;
	for (int s = 0; s < FP_NTX; s++)
		b += f->txq[s].bytes;
	return b;
}

static void txq_flush_all(struct fp *f)
{
	for (int s = 0; s < FP_NTX; s++)
		if (f->txq[s].n)
			txq_flush(f, s);
}

void fp_flush(struct fp *f)
{
	txq_flush_all(f);
}

/* A datagram of `bytes` to ul with niov (<= FP_TXIOV) iovecs for the caller to fill: msg_iov. */
static struct mmsghdr *txq_push(struct fp *f, int s, uint32_t ul, int niov, size_t bytes, int *slot)
{
	struct txq *q = &f->txq[s];
	struct mmsghdr *m;
	int i;
	if (q->n == FP_TXQ || q->niov + niov > FP_TXIOV)
		txq_flush(f, s);
	q->bytes += bytes;
	i = q->n++;
	m = &q->msg[i];
	memset(m, 0, sizeof(*m));
	q->dst[i].sin_family = AF_INET;
	q->dst[i].sin_port = htons(f->port);
	q->dst[i].sin_addr.s_addr = ul;
	m->msg_hdr.msg_name = &q->dst[i];
	m->msg_hdr.msg_namelen = sizeof(q->dst[i]);
	m->msg_hdr.msg_iov = &q->iov[q->niov];
	m->msg_hdr.msg_iovlen = (size_t)niov;
	q->niov += niov;
	*slot = i;
	return m;
}

/* One frame, VXLAN header (and 802.1Q tag) in front, zero copy of the payload. */
static void send_frame(struct fp *f, int s, uint32_t ul, uint32_t vni, uint16_t vid, uint8_t *frame, size_t len)
{
	int i;
	struct mmsghdr *m = txq_push(f, s, ul, 2, len + 8, &i);
	struct iovec *iov = m->msg_hdr.msg_iov;
	uint8_t *h = f->txq[s].hdr[i];
	rv_vxlan_hdr(h, vni);
	if (vid) {
		memcpy(h + 8, frame, 12);
		rv_put16(h + 20, RV_ETH_P_8021Q);
		rv_put16(h + 22, vid);
		iov[0] = (struct iovec){ h, 24 };
		iov[1] = (struct iovec){ frame + 12, len - 12 };
	} else {
		iov[0] = (struct iovec){ h, 8 };
		iov[1] = (struct iovec){ frame, len };
	}
}

/* A run of segments as iovecs: each one's VXLAN + inner headers, then its payload in place. */
static void fill_segments(struct iovec *iov, const struct rv_seg *seg, int n)
{
	for (int i = 0; i < n; i++) {
		iov[2 * i] = (struct iovec){ seg[i].hdr, seg[i].hlen };
		iov[2 * i + 1] = (struct iovec){ (void *)seg[i].data, seg[i].dlen };
	}
}

/*
 * The segments of one superframe, each behind its 8-byte VXLAN header: one datagram each,
 * or runs of up to 64 sent as one UDP_SEGMENT datagram (all but the last of a run have
 * the same length, as the kernel requires).
 */
static void send_segments(struct fp *f, int s, uint32_t ul, uint32_t vni, const struct rv_seg *seg, int n)
{
	size_t dgram = seg[0].hlen + seg[0].dlen;
	int per = f->gso && n > 1 ? (int)(FP_GSO_MAX / dgram) : 1;
	for (int i = 0; i < n; i++)
		rv_vxlan_hdr(seg[i].hdr, vni);
	CNT_ADD(f->c[C_SEGMENTS], (uint64_t)n);
	if (per > FP_GSO_SEGS)
		per = FP_GSO_SEGS;
	if (per < 1)
		per = 1;
	for (int i = 0; i < n; i += per) {
		int cnt = n - i < per ? n - i : per, k;
		struct mmsghdr *m = txq_push(f, s, ul, 2 * cnt, dgram * (size_t)cnt, &k);
		fill_segments(m->msg_hdr.msg_iov, seg + i, cnt);
		if (cnt > 1) {
			struct txq *q = &f->txq[s];
			struct cmsghdr *c = (struct cmsghdr *)q->cmsg[k].buf;
			uint16_t g = (uint16_t)dgram;
			m->msg_hdr.msg_control = q->cmsg[k].buf;
			m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
			memcpy(CMSG_DATA(c), &g, sizeof(g));
			CNT_ADD(f->c[C_GSO_SENDS], 1);
		}
	}
}

void fp_tap_write(struct fp *f, struct nic *n, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len)
{
	struct rv_vnet_hdr zero = { 0 };
	struct iovec iov[2];
	int cnt = 0;
	ssize_t r;
	if (f->vnethdr) {
		iov[cnt++] = (struct iovec){ (void *)(vh ? vh : &zero), RV_VNET_HLEN };
	}
	iov[cnt++] = (struct iovec){ (void *)frame, len };
	r = writev(n->fd, iov, cnt);
	if (r < 0) {
		CNT_ADD(n->c[D_TAP_WRITE], 1);
		return;
	}
	CNT_ADD(n->c[C_RX_FRAMES], 1);
	CNT_ADD(n->c[C_RX_BYTES], len);
}

static bool src_ip_ok(const struct nic *n, const uint8_t ip[4])
{
	uint8_t key[16];
	v4key(key, ip);
	return n->allow_ip || memcmp(key, n->ip, 16) == 0;
}

/* An IPv6 source the NIC may use: its address, link-local (neighbour discovery) or :: (DAD). */
static bool src_ip6_ok(const struct nic *n, const uint8_t src[16])
{
	static const uint8_t unspec[16] = { 0 };
	return n->allow_ip || (src[0] == 0xfe && (src[1] & 0xc0) == 0x80) || memcmp(src, unspec, 16) == 0 ||
	       memcmp(src, n->ip, 16) == 0;
}

static void reply_to(struct fp *f, struct nic *n, const uint8_t *frame, size_t len)
{
	fp_tap_write(f, n, NULL, frame, len);
}

static void too_big(struct fp *f, int ni, const uint8_t *frame, size_t len, uint16_t mtu)
{
	uint8_t out[RV_ETH_HLEN + 40 + 8 + 1280];
	size_t r = rv_icmp_too_big(out, sizeof(out), frame, len, mtu);
	struct nic *n = &f->nics[ni];
	CNT_ADD(n->c[D_TOO_BIG], 1);
	if (r) {
		reply_to(f, n, out, r);
		CNT_ADD(n->c[C_ICMP_TOO_BIG], 1);
	}
}

void fp_from_tap(struct fp *f, int ni, struct rv_vnet_hdr *vh, uint8_t *frame, size_t len, int slot, bool rerun)
{
	struct nic *n = &f->nics[ni];
	struct rv_l3 l;
	uint8_t key[16];
	struct l2e *e;
	uint8_t gso = vh ? (vh->gso_type & (uint8_t)~RV_GSO_ECN) : 0;

	if (!rerun) {
		CNT_ADD(n->c[C_TX_FRAMES], 1);
		CNT_ADD(n->c[C_TX_BYTES], len);
	}
	if (rv_parse(frame, len, &l) != 0) {
		CNT_ADD(n->c[D_MALFORMED], 1);
		return;
	}
	if (l.vlan >= 0) {
		CNT_ADD(n->c[D_TAGGED], 1);
		return;
	}
	if (!n->allow_mac && memcmp(frame + 6, n->mac, 6) != 0) {
		CNT_ADD(n->c[D_SPOOF_MAC], 1);
		return;
	}
	if (l.ethertype == RV_ETH_P_ARP) {
		const uint8_t *a = frame + RV_ETH_HLEN;
		struct l3e *t;
		static const uint8_t zero4[4] = { 0 };
		if (len < 42) {
			CNT_ADD(n->c[D_MALFORMED], 1);
			return;
		}
		if (!n->allow_mac && memcmp(a + 8, n->mac, 6) != 0) {
			CNT_ADD(n->c[D_SPOOF_MAC], 1);
			return;
		}
		if (!src_ip_ok(n, a + 14) && memcmp(a + 14, zero4, 4) != 0) {
			CNT_ADD(n->c[D_SPOOF_IP], 1);
			return;
		}
		if (rv_get16(a + 6) == 1) {
			uint8_t reply[42];
			if (memcmp(a + 14, a + 24, 4) == 0) {
				CNT_ADD(n->c[D_BCAST], 1); /* gratuitous: nobody to tell */
				return;
			}
			v4key(key, a + 24);
			t = l3_find(f, n->vnet, key);
			if (!t) {
				fp_park(f, ni, vh, frame, len, 3, n->vnet, key);
				return;
			}
			if (t->vlan != n->vlan) {
				CNT_ADD(n->c[D_VLAN], 1); /* another fabric VLAN's address: not ours to tell */
				return;
			}
			if (rv_arp_reply(reply, frame, len, t->mac)) {
				reply_to(f, n, reply, 42);
				CNT_ADD(n->c[C_ARP_REPLIES], 1);
			}
			return;
		}
	} else if (l.ethertype == RV_ETH_P_IP) {
		if (!src_ip_ok(n, frame + l.l3 + 12)) {
			CNT_ADD(n->c[D_SPOOF_IP], 1);
			return;
		}
	} else if (l.ethertype == RV_ETH_P_IPV6) {
		const uint8_t *src = frame + l.l3 + 8;
		static const uint8_t unspec[16] = { 0 };
		uint8_t target[16];
		if (!src_ip6_ok(n, src)) {
			CNT_ADD(n->c[D_SPOOF_IP], 1);
			return;
		}
		if (rv_nd_target(frame, len, target)) {
			struct l3e *t;
			if (memcmp(src, unspec, 16) == 0) {
				/* Duplicate address detection: nobody else may claim the address. */
				CNT_ADD(n->c[D_BCAST], 1);
				return;
			}
			t = l3_find(f, n->vnet, target);
			uint8_t out[RV_ETH_HLEN + 72];
			size_t r;
			if (!t) {
				fp_park(f, ni, vh, frame, len, 3, n->vnet, target);
				return;
			}
			if (t->vlan != n->vlan) {
				CNT_ADD(n->c[D_VLAN], 1);
				return;
			}
			r = rv_nd_advert(out, sizeof(out), frame, len, t->mac);
			if (r) {
				reply_to(f, n, out, r);
				CNT_ADD(n->c[C_ND_REPLIES], 1);
			}
			return;
		}
	} else if (!n->allow_ip) {
		CNT_ADD(n->c[D_MALFORMED], 1);
		return;
	}
	if (frame[0] & 1) {
		CNT_ADD(n->c[D_BCAST], 1); /* broadcast and multicast are never flooded */
		return;
	}
	e = l2_find(f, n->vnet, frame);
	if (!e) {
		uint8_t k[16] = { 0 };
		memcpy(k, frame, 6);
		fp_park(f, ni, vh, frame, len, 2, n->vnet, k);
		return;
	}
	if (e->vlan != n->vlan) {
		CNT_ADD(n->c[D_VLAN], 1);
		return;
	}
	if (e->nic >= 0) {
		struct nic *d = &f->nics[e->nic];
		if (d->used) {
			fp_tap_write(f, d, vh, frame, len);
			CNT_ADD(n->c[C_LOCAL], 1);
		} else {
			CNT_ADD(n->c[D_NO_NIC], 1);
		}
		return;
	}
	{
		uint16_t vid = n->vlan;
		uint16_t limit = (uint16_t)(f->ul_mtu - RV_VXLAN_OVERHEAD - (vid ? 4 : 0));
		int s = (int)(rv_flow_hash(frame, len) % FP_NTX);
		if (gso == RV_GSO_TCPV4 || gso == RV_GSO_TCPV6 || gso == RV_GSO_UDP_L4) {
			struct rv_seg seg[FP_MAXSEG];
			size_t hl = l.l4 ? (l.proto == 6 && len >= l.l4 + 20 ? l.l4 + (size_t)(frame[l.l4 + 12] >> 4) * 4 : l.l4 + 8) : 0;
			int cnt;
			if (!hl || hl - RV_ETH_HLEN + vh->gso_size > limit) {
				too_big(f, ni, frame, len, limit);
				return;
			}
			cnt = rv_segment_hdrs(vh, frame, len, vid, RV_VXLAN_HLEN, f->hdrbuf[slot], RV_SEG_STRIDE, seg, FP_MAXSEG);
			if (cnt < 0) {
				CNT_ADD(n->c[D_MALFORMED], 1);
				return;
			}
			send_segments(f, s, e->ul, n->vnet, seg, cnt);
			CNT_ADD(n->c[C_ENCAP], 1);
			return;
		}
		if (gso != RV_GSO_NONE) {
			CNT_ADD(n->c[D_MALFORMED], 1);
			return;
		}
		if (vh && (vh->flags & RV_VNET_F_NEEDS_CSUM) &&
		    rv_csum_complete(frame, len, vh->csum_start, vh->csum_offset) != 0) {
			CNT_ADD(n->c[D_MALFORMED], 1);
			return;
		}
		if (len - RV_ETH_HLEN > limit) {
			bool df = l.ethertype == RV_ETH_P_IPV6 ||
				  (l.ethertype == RV_ETH_P_IP && (rv_get16(frame + l.l3 + 6) & 0x4000));
			if (df) {
				too_big(f, ni, frame, len, limit);
				return;
			}
		}
		send_frame(f, s, e->ul, n->vnet, vid, frame, len);
		CNT_ADD(n->c[C_ENCAP], 1);
	}
}

/*
 * Frames queued for sending point into their TAP buffers; once about FP_TX_FLUSH bytes
 * wait, they are sent (the kernel copies them while they are still in cache) and the
 * buffers are free again: a stream of superframes cycles through one or two of them.
 */
void fp_tap_ready(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	int batch = f->mmsg ? FP_BATCH : 1, slot = 0;
	for (int i = 0; i < batch && n->used; i++) {
		uint8_t *b = f->tapbuf[slot];
		ssize_t r = read(n->fd, b, RV_VNET_HLEN + RV_MAX_FRAME);
		if (r < 0)
			break;
		if (f->vnethdr) {
			if (r < RV_VNET_HLEN)
				continue;
			fp_from_tap(f, ni, (struct rv_vnet_hdr *)b, b + RV_VNET_HLEN, (size_t)r - RV_VNET_HLEN, slot, false);
		} else {
			fp_from_tap(f, ni, NULL, b, (size_t)r, slot, false);
		}
		if (txq_bytes(f) >= FP_TX_FLUSH) {
			txq_flush_all(f);
			slot = 0;
		} else {
			slot++;
		}
	}
	txq_flush_all(f);
}
