/*
 * The forwarding engine's data path: frames from the instances' TAPs (anti-spoofing, ARP
 * and neighbour answers from the tables, misses parked and asked about once, encapsulation
 * with segmentation and UDP_SEGMENT), datagrams from the underlay (peer check, decap,
 * VLAN check, coalescing towards the TAP), and the forwarding thread. Everything here runs
 * on that thread with the engine's mutex held (see rhumb_fp_internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

/* ---- state ---------------------------------------------------------------------------- */

struct fp *fp_alloc(const struct fp_options *o, fp_upcall_fn upcall, void *ctx)
{
	struct fp *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	f->epfd = f->evfd = f->rxfd = -1;
	for (int s = 0; s < FP_NTX; s++)
		f->txfd[s] = -1;
	memcpy(f->ul_ip, o->underlay_ip, 4);
	f->port = o->port;
	f->ul_mtu = o->underlay_mtu;
	f->upcall = upcall;
	f->upcall_ctx = ctx;
	f->l2 = calloc(FP_L2CAP, sizeof(*f->l2));
	f->l3 = calloc(FP_L3CAP, sizeof(*f->l3));
	f->tapbuf = malloc(sizeof(*f->tapbuf) * FP_BATCH);
	f->segbuf = malloc(sizeof(*f->segbuf) * FP_BATCH);
	f->rxbuf = malloc((size_t)FP_RXBUF * FP_BATCH);
	f->txq = calloc(FP_NTX, sizeof(*f->txq));
	if (!f->l2 || !f->l3 || !f->tapbuf || !f->segbuf || !f->rxbuf || !f->txq) {
		fp_free(f);
		return NULL;
	}
	return f;
}

void fp_free(struct fp *f)
{
	free(f->l2);
	free(f->l3);
	free(f->tapbuf);
	free(f->segbuf);
	free(f->rxbuf);
	free(f->txq);
	free(f->peers);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

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
			f->c[D_SEND]++;
			sent++;
			continue;
		}
		sent += r;
	}
	q->n = 0;
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

static struct mmsghdr *txq_push(struct fp *f, int s, uint32_t ul, int *slot)
{
	struct txq *q = &f->txq[s];
	struct mmsghdr *m;
	int i;
	if (q->n == FP_TXQ)
		txq_flush(f, s);
	i = q->n++;
	m = &q->msg[i];
	memset(m, 0, sizeof(*m));
	q->dst[i].sin_family = AF_INET;
	q->dst[i].sin_port = htons(f->port);
	q->dst[i].sin_addr.s_addr = ul;
	m->msg_hdr.msg_name = &q->dst[i];
	m->msg_hdr.msg_namelen = sizeof(q->dst[i]);
	m->msg_hdr.msg_iov = q->iov[i];
	*slot = i;
	return m;
}

/* One frame, VXLAN header (and 802.1Q tag) in front, zero copy of the payload. */
static void send_frame(struct fp *f, int s, uint32_t ul, uint32_t vni, uint16_t vid, uint8_t *frame, size_t len)
{
	int i;
	struct mmsghdr *m = txq_push(f, s, ul, &i);
	struct txq *q = &f->txq[s];
	uint8_t *h = q->hdr[i];
	rv_vxlan_hdr(h, vni);
	if (vid) {
		memcpy(h + 8, frame, 12);
		rv_put16(h + 20, RV_ETH_P_8021Q);
		rv_put16(h + 22, vid);
		q->iov[i][0] = (struct iovec){ h, 24 };
		q->iov[i][1] = (struct iovec){ frame + 12, len - 12 };
	} else {
		q->iov[i][0] = (struct iovec){ h, 8 };
		q->iov[i][1] = (struct iovec){ frame, len };
	}
	m->msg_hdr.msg_iovlen = 2;
}

/* Segments laid out back to back, each behind its 8-byte VXLAN header. */
static void send_segments(struct fp *f, int s, uint32_t ul, uint32_t vni, uint8_t *buf, const size_t *off,
			  const size_t *seglen, int n)
{
	for (int i = 0; i < n; i++)
		rv_vxlan_hdr(buf + off[i], vni);
	f->c[C_SEGMENTS] += (uint64_t)n;
	if (!f->gso || n == 1) {
		for (int i = 0; i < n; i++) {
			int k;
			struct mmsghdr *m = txq_push(f, s, ul, &k);
			f->txq[s].iov[k][0] = (struct iovec){ buf + off[i], RV_VXLAN_HLEN + seglen[i] };
			m->msg_hdr.msg_iovlen = 1;
		}
		return;
	}
	{
		size_t dgram = RV_VXLAN_HLEN + seglen[0];
		int per = (int)(FP_GSO_MAX / dgram);
		if (per > 64)
			per = 64;
		if (per < 1)
			per = 1;
		for (int i = 0; i < n; i += per) {
			int cnt = n - i < per ? n - i : per, k;
			size_t bytes = off[i + cnt - 1] + RV_VXLAN_HLEN + seglen[i + cnt - 1] - off[i];
			struct mmsghdr *m = txq_push(f, s, ul, &k);
			struct txq *q = &f->txq[s];
			q->iov[k][0] = (struct iovec){ buf + off[i], bytes };
			m->msg_hdr.msg_iovlen = 1;
			if (cnt > 1) {
				struct cmsghdr *c = (struct cmsghdr *)q->cmsg[k].buf;
				uint16_t g = (uint16_t)dgram;
				m->msg_hdr.msg_control = q->cmsg[k].buf;
				m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
				c->cmsg_level = SOL_UDP;
				c->cmsg_type = UDP_SEGMENT;
				c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
				memcpy(CMSG_DATA(c), &g, sizeof(g));
				f->c[C_GSO_SENDS]++;
			}
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
		n->c[D_TAP_WRITE]++;
		return;
	}
	n->c[C_RX_FRAMES]++;
	n->c[C_RX_BYTES] += len;
}

static void upcall(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	if (f->upcall)
		f->upcall(f->upcall_ctx, kind, vnet, key);
}

struct pending *fp_pending_find(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	for (int i = 0; i < FP_MAX_NICS; i++) {
		struct nic *n = &f->nics[i];
		if (n->npend == 0 || n->vnet != vnet)
			continue;
		for (int j = 0; j < FP_PEND_PER_NIC; j++) {
			struct pending *p = &n->pend[j];
			if (p->used && p->kind == kind && p->vnet == vnet && memcmp(p->key, key, 16) == 0)
				return p;
		}
	}
	return NULL;
}

/* Frees one parked frame: its bytes go back to its NIC's and the engine's budgets. */
static void parked_free(struct fp *f, struct parked *pk)
{
	struct nic *n = &f->nics[pk->nic];
	if (n->gen == pk->gen)
		n->parked_bytes -= pk->len;
	f->parked_bytes -= pk->len;
	free(pk);
}

void fp_pending_drop(struct fp *f, struct pending *p, int reason)
{
	for (struct parked *pk = p->head; pk;) {
		struct parked *next = pk->next;
		struct nic *n = &f->nics[pk->nic];
		if (reason >= 0 && n->used && n->gen == pk->gen)
			n->c[reason]++;
		parked_free(f, pk);
		pk = next;
	}
	p->head = p->tail = NULL;
	p->bytes = 0;
}

/* Frees the entry and its parked frames; the owner gets its share back. */
static void pending_release(struct fp *f, struct pending *p)
{
	fp_pending_drop(f, p, -1);
	p->used = false;
	f->nics[p->owner].npend--;
}

/* A free entry in the NIC's own share, or NULL when the NIC has used all of it. */
static struct pending *pending_alloc(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	if (n->npend >= FP_PEND_PER_NIC)
		return NULL;
	for (int j = 0; j < FP_PEND_PER_NIC; j++) {
		struct pending *p = &n->pend[j];
		if (!p->used) {
			memset(p, 0, sizeof(*p));
			p->used = true;
			p->owner = (uint16_t)ni;
			n->npend++;
			return p;
		}
	}
	return NULL;
}

/* Every entry of the NIC's share (a removed NIC or a stopped engine): frames dropped. */
static void pending_release_all(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	for (int j = 0; j < FP_PEND_PER_NIC && n->npend > 0; j++)
		if (n->pend[j].used)
			pending_release(f, &n->pend[j]);
}

/* A frame whose destination is unknown: park it and ask the owner (upcall) once. */
static void park(struct fp *f, int ni, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len,
		 uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct nic *n = &f->nics[ni];
	struct pending *p = fp_pending_find(f, kind, vnet, key);
	uint64_t now = now_ms();
	struct parked *pk;

	if (p && p->neg_until > now) {
		n->c[D_NEGATIVE]++;
		return;
	}
	if (p && p->neg_until && p->neg_until <= now && !p->head) {
		pending_release(f, p); /* negative entry expired: ask again */
		p = NULL;
	}
	if (!p) {
		p = pending_alloc(f, ni);
		if (!p) {
			n->c[D_PARK_FULL]++;
			return;
		}
		p->kind = kind;
		p->vnet = vnet;
		memcpy(p->key, key, 16);
		p->t0 = now;
		n->c[C_MISSES]++;
		upcall(f, kind, vnet, key);
	}
	if (p->bytes + len > FP_PARK_BYTES || n->parked_bytes + len > FP_NIC_PARK_BYTES ||
	    f->parked_bytes + len > FP_PARK_TOTAL || !(pk = malloc(sizeof(*pk) + len))) {
		n->c[D_PARK_FULL]++;
		return;
	}
	pk->next = NULL;
	pk->nic = ni;
	pk->gen = n->gen;
	pk->len = len;
	pk->vh = vh ? *vh : (struct rv_vnet_hdr){ 0 };
	memcpy(pk->data, frame, len);
	if (p->tail)
		p->tail->next = pk;
	else
		p->head = pk;
	p->tail = pk;
	p->bytes += len;
	n->parked_bytes += len;
	f->parked_bytes += len;
	n->c[C_PARKED]++;
}

static bool src_ip_ok(const struct nic *n, const uint8_t ip[4])
{
	return n->allow_ip || memcmp(ip, n->ip, 4) == 0;
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
	n->c[D_TOO_BIG]++;
	if (r) {
		reply_to(f, n, out, r);
		n->c[C_ICMP_TOO_BIG]++;
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
		n->c[C_TX_FRAMES]++;
		n->c[C_TX_BYTES] += len;
	}
	if (rv_parse(frame, len, &l) != 0) {
		n->c[D_MALFORMED]++;
		return;
	}
	if (l.vlan >= 0) {
		n->c[D_TAGGED]++;
		return;
	}
	if (!n->allow_mac && memcmp(frame + 6, n->mac, 6) != 0) {
		n->c[D_SPOOF_MAC]++;
		return;
	}
	if (l.ethertype == RV_ETH_P_ARP) {
		const uint8_t *a = frame + RV_ETH_HLEN;
		struct l3e *t;
		static const uint8_t zero4[4] = { 0 };
		if (len < 42) {
			n->c[D_MALFORMED]++;
			return;
		}
		if (!n->allow_mac && memcmp(a + 8, n->mac, 6) != 0) {
			n->c[D_SPOOF_MAC]++;
			return;
		}
		if (!src_ip_ok(n, a + 14) && memcmp(a + 14, zero4, 4) != 0) {
			n->c[D_SPOOF_IP]++;
			return;
		}
		if (rv_get16(a + 6) == 1) {
			uint8_t reply[42];
			if (memcmp(a + 14, a + 24, 4) == 0) {
				n->c[D_BCAST]++; /* gratuitous: nobody to tell */
				return;
			}
			v4key(key, a + 24);
			t = l3_find(f, n->vnet, key);
			if (!t) {
				park(f, ni, vh, frame, len, 3, n->vnet, key);
				return;
			}
			if (t->vlan != n->vlan) {
				n->c[D_VLAN]++; /* another fabric VLAN's address: not ours to tell */
				return;
			}
			if (rv_arp_reply(reply, frame, len, t->mac)) {
				reply_to(f, n, reply, 42);
				n->c[C_ARP_REPLIES]++;
			}
			return;
		}
	} else if (l.ethertype == RV_ETH_P_IP) {
		if (!src_ip_ok(n, frame + l.l3 + 12)) {
			n->c[D_SPOOF_IP]++;
			return;
		}
	} else if (l.ethertype == RV_ETH_P_IPV6) {
		const uint8_t *src = frame + l.l3 + 8;
		static const uint8_t unspec[16] = { 0 };
		uint8_t target[16];
		if (!n->allow_ip && !(src[0] == 0xfe && (src[1] & 0xc0) == 0x80) && memcmp(src, unspec, 16) != 0) {
			n->c[D_SPOOF_IP]++;
			return;
		}
		if (rv_nd_target(frame, len, target)) {
			struct l3e *t;
			if (memcmp(src, unspec, 16) == 0) {
				/* Duplicate address detection: nobody else may claim the address. */
				n->c[D_BCAST]++;
				return;
			}
			t = l3_find(f, n->vnet, target);
			uint8_t out[RV_ETH_HLEN + 72];
			size_t r;
			if (!t) {
				park(f, ni, vh, frame, len, 3, n->vnet, target);
				return;
			}
			if (t->vlan != n->vlan) {
				n->c[D_VLAN]++;
				return;
			}
			r = rv_nd_advert(out, sizeof(out), frame, len, t->mac);
			if (r) {
				reply_to(f, n, out, r);
				n->c[C_ND_REPLIES]++;
			}
			return;
		}
	} else if (!n->allow_ip) {
		n->c[D_MALFORMED]++;
		return;
	}
	if (frame[0] & 1) {
		n->c[D_BCAST]++; /* broadcast and multicast are never flooded */
		return;
	}
	e = l2_find(f, n->vnet, frame);
	if (!e) {
		uint8_t k[16] = { 0 };
		memcpy(k, frame, 6);
		park(f, ni, vh, frame, len, 2, n->vnet, k);
		return;
	}
	if (e->vlan != n->vlan) {
		n->c[D_VLAN]++;
		return;
	}
	if (e->nic >= 0) {
		struct nic *d = &f->nics[e->nic];
		if (d->used) {
			fp_tap_write(f, d, vh, frame, len);
			n->c[C_LOCAL]++;
		} else {
			n->c[D_NO_NIC]++;
		}
		return;
	}
	{
		uint16_t vid = n->vlan;
		uint16_t limit = (uint16_t)(f->ul_mtu - RV_VXLAN_OVERHEAD - (vid ? 4 : 0));
		int s = (int)(rv_flow_hash(frame, len) % FP_NTX);
		if (gso == RV_GSO_TCPV4 || gso == RV_GSO_TCPV6 || gso == RV_GSO_UDP_L4) {
			size_t off[128], seglen[128];
			size_t hl = l.l4 ? (l.proto == 6 && len >= l.l4 + 20 ? l.l4 + (size_t)(frame[l.l4 + 12] >> 4) * 4 : l.l4 + 8) : 0;
			int cnt;
			if (!hl || hl - RV_ETH_HLEN + vh->gso_size > limit) {
				too_big(f, ni, frame, len, limit);
				return;
			}
			cnt = rv_segment(vh, frame, len, vid, RV_VXLAN_HLEN, f->segbuf[slot], FP_SEGBUF, off, seglen, 128);
			if (cnt < 0) {
				n->c[D_MALFORMED]++;
				return;
			}
			send_segments(f, s, e->ul, n->vnet, f->segbuf[slot], off, seglen, cnt);
			n->c[C_ENCAP]++;
			return;
		}
		if (gso != RV_GSO_NONE) {
			n->c[D_MALFORMED]++;
			return;
		}
		if (vh && (vh->flags & RV_VNET_F_NEEDS_CSUM) &&
		    rv_csum_complete(frame, len, vh->csum_start, vh->csum_offset) != 0) {
			n->c[D_MALFORMED]++;
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
		n->c[C_ENCAP]++;
	}
}

static void run_pending_one(struct fp *f, struct pending *p, uint64_t now)
{
	bool known;
	if (p->kind == 2)
		known = l2_find(f, p->vnet, p->key) != NULL;
	else
		known = l3_find(f, p->vnet, p->key) != NULL;
	if (known) {
		struct parked *pk = p->head;
		p->head = p->tail = NULL;
		pending_release(f, p);
		while (pk) {
			struct parked *next = pk->next;
			struct nic *n = &f->nics[pk->nic];
			if (n->used && n->gen == pk->gen) {
				n->c[C_FLUSHED]++;
				/* Segments are built in slot 0; send before it is reused. */
				fp_from_tap(f, pk->nic, &pk->vh, pk->data, pk->len, 0, true);
				txq_flush_all(f);
			}
			parked_free(f, pk);
			pk = next;
		}
		return;
	}
	if (p->head && now - p->t0 >= FP_PARK_MS) {
		fp_pending_drop(f, p, D_PARK_TIMEOUT);
		p->neg_until = now + FP_NEG_MS;
	} else if (!p->head && p->neg_until && p->neg_until <= now) {
		pending_release(f, p);
	}
}

void fp_run_pending(struct fp *f)
{
	uint64_t now = now_ms();
	for (int i = 0; i < FP_MAX_NICS; i++) {
		struct nic *n = &f->nics[i];
		for (int j = 0; j < FP_PEND_PER_NIC && n->npend > 0; j++)
			if (n->pend[j].used)
				run_pending_one(f, &n->pend[j], now);
	}
}

static void tap_ready(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	int batch = f->mmsg ? FP_BATCH : 1;
	for (int i = 0; i < batch && n->used; i++) {
		uint8_t *b = f->tapbuf[i];
		ssize_t r = read(n->fd, b, RV_VNET_HLEN + RV_MAX_FRAME);
		if (r < 0)
			break;
		if (f->vnethdr) {
			if (r < RV_VNET_HLEN)
				continue;
			fp_from_tap(f, ni, (struct rv_vnet_hdr *)b, b + RV_VNET_HLEN, (size_t)r - RV_VNET_HLEN, i, false);
		} else {
			fp_from_tap(f, ni, NULL, b, (size_t)r, i, false);
		}
	}
	txq_flush_all(f);
}

/* ---- receive (from the underlay) ------------------------------------------------------ */

void fp_deliver(struct fp *f, struct fp_delivery *d, int nd)
{
	struct rv_gro g;
	struct rv_vnet_hdr vh;
	struct iovec iov[RV_GRO_MAXSEG + 1];
	int i = 0;
	while (i < nd) {
		struct nic *n = &f->nics[d[i].nic];
		int j = i + 1, cnt;
		if (!f->coalesce || !rv_gro_start(&g, d[i].frame, d[i].len)) {
			struct rv_vnet_hdr one = { 0 };
			rv_make_partial(d[i].frame, d[i].len, &one);
			fp_tap_write(f, n, &one, d[i].frame, d[i].len);
			i++;
			continue;
		}
		while (j < nd && d[j].nic == d[i].nic && rv_gro_append(&g, d[j].frame, d[j].len))
			j++;
		cnt = rv_gro_finish(&g, &vh, iov, RV_GRO_MAXSEG + 1);
		if (writev(n->fd, iov, cnt) < 0) {
			n->c[D_TAP_WRITE]++;
		} else {
			n->c[C_RX_FRAMES]++;
			n->c[C_RX_BYTES] += g.total;
			if (g.nseg > 1)
				n->c[C_COALESCED] += (uint64_t)g.nseg;
		}
		i = j;
	}
}

static bool vnet_known(struct fp *f, uint32_t vni)
{
	for (int i = 0; i < FP_MAX_NICS; i++)
		if (f->nics[i].used && f->nics[i].vnet == vni)
			return true;
	return false;
}

int fp_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

bool fp_accept_from(struct fp *f, uint32_t addr, uint64_t datagrams)
{
	uint64_t now;
	uint8_t key[16];
	if (f->npeers && bsearch(&addr, f->peers, f->npeers, sizeof(uint32_t), fp_cmp_u32) != NULL)
		return true;
	/* Dropped; the owner hears of it (rate-limited) and may list the nodes again. */
	f->c[D_UNKNOWN_PEER] += datagrams;
	now = now_ms();
	if (f->peer_miss_at && now - f->peer_miss_at < FP_PEER_MISS_MS)
		return false;
	f->peer_miss_at = now;
	v4key(key, (const uint8_t *)&addr);
	upcall(f, 4, 0, key);
	return false;
}

int fp_decap(struct fp *f, uint8_t *p, size_t len, uint8_t **frame, size_t *flen)
{
	uint32_t vni;
	struct l2e *e, *se;
	struct rv_l3 l;
	uint8_t *fr;
	size_t fl;
	struct nic *n;

	if (rv_vxlan_parse(p, len, &vni) != 0 || len < RV_VXLAN_HLEN + RV_ETH_HLEN) {
		f->c[D_BAD_VXLAN]++;
		return -1;
	}
	fr = p + RV_VXLAN_HLEN;
	fl = len - RV_VXLAN_HLEN;
	if (rv_parse(fr, fl, &l) != 0) { /* truncated inner frame or IP header */
		f->c[D_BAD_VXLAN]++;
		return -1;
	}
	if (fr[0] & 1) {
		f->c[vnet_known(f, vni) ? D_BCAST : D_UNKNOWN_VNI]++;
		return -1;
	}
	e = l2_find(f, vni, fr);
	if (!e || e->nic < 0) {
		f->c[vnet_known(f, vni) ? D_NO_NIC : D_UNKNOWN_VNI]++;
		return -1;
	}
	n = &f->nics[e->nic];
	/* A frame from the underlay claiming a local NIC's source MAC is a spoof. */
	se = l2_find(f, vni, fr + 6);
	if (se && se->nic >= 0) {
		n->c[D_RX_SPOOF]++;
		return -1;
	}
	/* The inner tag must name the NIC's fabric VLAN; untagged frames are for VLAN 0 only. */
	if (l.vlan >= 0) {
		if ((uint16_t)l.vlan != n->vlan) {
			n->c[D_RX_VLAN]++;
			return -1;
		}
		fr = rv_vlan_strip(fr, &fl);
	} else if (n->vlan != 0) {
		n->c[D_RX_VLAN]++;
		return -1;
	}
	*frame = fr;
	*flen = fl;
	return e->nic;
}

static void rx_ready(struct fp *f)
{
	int batch = f->mmsg ? FP_BATCH : 1;
	struct mmsghdr msg[FP_BATCH];
	struct iovec iov[FP_BATCH];
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl[FP_BATCH];
	struct sockaddr_in from[FP_BATCH];
	static __thread struct fp_delivery d[FP_BATCH * 64];
	int nd = 0, r;

	memset(msg, 0, sizeof(msg[0]) * (size_t)batch);
	for (int i = 0; i < batch; i++) {
		iov[i] = (struct iovec){ f->rxbuf + (size_t)i * FP_RXBUF, FP_RXBUF };
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
		msg[i].msg_hdr.msg_control = ctl[i].buf;
		msg[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
		msg[i].msg_hdr.msg_name = &from[i];
		msg[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	r = recvmmsg(f->rxfd, msg, (unsigned)batch, MSG_DONTWAIT, NULL);
	if (r <= 0)
		return;
	for (int i = 0; i < r; i++) {
		uint8_t *p = f->rxbuf + (size_t)i * FP_RXBUF;
		size_t len = msg[i].msg_len, gsz = len;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg[i].msg_hdr); c; c = CMSG_NXTHDR(&msg[i].msg_hdr, c)) {
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int v;
				memcpy(&v, CMSG_DATA(c), sizeof(v));
				if (v > 0)
					gsz = (size_t)v;
			}
		}
		/* VXLAN is accepted only from the underlay addresses of known nodes. */
		if (msg[i].msg_hdr.msg_namelen < sizeof(from[i]) ||
		    !fp_accept_from(f, from[i].sin_addr.s_addr, len == 0 ? 1 : (len + gsz - 1) / gsz))
			continue;
		for (size_t o = 0; o < len; o += gsz) {
			size_t dl = len - o < gsz ? len - o : gsz;
			uint8_t *fr;
			size_t fl;
			int ni = fp_decap(f, p + o, dl, &fr, &fl);
			if (ni < 0)
				continue;
			if (nd == (int)(sizeof(d) / sizeof(d[0]))) {
				fp_deliver(f, d, nd);
				nd = 0;
			}
			d[nd++] = (struct fp_delivery){ ni, fr, fl };
		}
	}
	fp_deliver(f, d, nd);
}

/* ---- the forwarding thread ------------------------------------------------------------ */

void *fp_thread_main(void *arg)
{
	struct fp *f = arg;
	struct epoll_event ev[64];
	uint64_t last = 0;

	while (!f->stop) {
		int n = epoll_wait(f->epfd, ev, 64, 100);
		uint64_t now;
		pthread_mutex_lock(&f->mu);
		for (int i = 0; i < n && !f->stop; i++) {
			uint64_t id = ev[i].data.u64;
			if (id == EV_RX) {
				rx_ready(f);
			} else if (id == EV_CTL) {
				uint64_t v;
				if (read(f->evfd, &v, sizeof(v)) < 0) { /* nothing to drain */ }
				f->flush_wanted = true;
			} else if (id < FP_MAX_NICS && f->nics[id].used) {
				tap_ready(f, (int)id);
			}
		}
		now = now_ms();
		if (f->flush_wanted || now - last >= 100) {
			f->flush_wanted = false;
			last = now;
			fp_run_pending(f);
			txq_flush_all(f);
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

void fp_wake(struct fp *f)
{
	uint64_t one = 1;
	if (write(f->evfd, &one, sizeof(one)) < 0) { /* already pending */ }
}

/* ---- NICs in the tables --------------------------------------------------------------- */

int fp_install_nic(struct fp *f, int slot, int fd, const struct fp_nic_spec *s)
{
	struct nic *nic = &f->nics[slot];
	uint8_t key[16];
	struct l2e *e;
	struct l3e *e3;

	memset(nic, 0, sizeof(*nic));
	nic->gen = ++f->next_gen;
	nic->fd = fd;
	memcpy(nic->mac, s->mac, 6);
	memcpy(nic->ip, s->ip, 4);
	nic->vnet = s->vnet & 0xffffff;
	nic->vlan = s->vlan & 0x0fff;
	nic->mtu = (uint16_t)(s->mtu < 0 ? f->ul_mtu - RV_VXLAN_OVERHEAD : s->mtu);
	nic->allow_mac = s->allow_mac;
	nic->allow_ip = s->allow_ip;
	e = l2_slot(f, nic->vnet, nic->mac);
	v4key(key, s->ip);
	e3 = e ? l3_slot(f, nic->vnet, key) : NULL;
	if (!e || !e3) {
		if (e)
			l2_del(f, nic->vnet, nic->mac);
		return FP_EFULL;
	}
	e->nic = (int16_t)slot;
	e->vlan = nic->vlan;
	e->ul = 0;
	memcpy(e3->mac, nic->mac, 6);
	e3->vlan = nic->vlan;
	nic->used = true;
	return FP_OK;
}

void fp_uninstall_nic(struct fp *f, int slot)
{
	struct nic *n = &f->nics[slot];
	struct l2e *e;
	struct l3e *e3;
	uint8_t key[16];

	pending_release_all(f, slot);
	n->used = false;
	e = l2_find(f, n->vnet, n->mac);
	if (e && e->nic == slot)
		l2_del(f, n->vnet, n->mac);
	v4key(key, n->ip);
	e3 = l3_find(f, n->vnet, key);
	if (e3 && memcmp(e3->mac, n->mac, 6) == 0)
		l3_del(f, n->vnet, key);
}
