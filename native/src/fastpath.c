/*
 * The userspace VXLAN fast path: TAP devices (one per NIC, created inside the instance's
 * network namespace by a short-lived thread that setns()es there, so the device is born in
 * place and the fd stays with us), UDP sockets on the underlay address, one forwarding
 * thread (epoll) that moves every frame in C, and the tables TypeScript writes in batches.
 * JavaScript is called only for misses (one upcall per destination, threadsafe function).
 *
 * Locking: one mutex. The forwarding thread holds it while it handles one wakeup's batch
 * (a few hundred microseconds at most); table writes from JavaScript take it briefly.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "rhumb_fastpath.h"

/* <net/if.h> clashes with <linux/if.h>. */
extern unsigned int if_nametoindex(const char *ifname);
#include "rhumb_vxlan.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

#define FP_MAX_NICS 256
#define FP_NTX 8            /* sending sockets: the flow hash picks one (outer source port) */
#define FP_BATCH 64         /* frames per TAP wakeup, datagrams per recvmmsg */
#define FP_TXQ 256          /* queued datagrams per sending socket before sendmmsg */
#define FP_RXBUF 65536
#define FP_SEGBUF (RV_MAX_FRAME + 128 * 160) /* payload + per-segment headers at MSS >= 536 */
#define FP_L2CAP 16384
#define FP_L3CAP 16384
#define FP_PEND_PER_NIC 32   /* outstanding misses per NIC: one instance cannot crowd out the others */
#define FP_PARK_BYTES (128 * 1024)         /* parked per destination */
#define FP_NIC_PARK_BYTES (1024 * 1024)    /* parked per sending NIC */
#define FP_PARK_TOTAL (64 * 1024 * 1024)   /* parked in all */
#define FP_PARK_MS 1000      /* unanswered misses drop their frames after this */
#define FP_NEG_MS 2000       /* ... and are negatively cached this long */
#define FP_GSO_MAX 65000     /* bytes per UDP_SEGMENT send */
#define FP_PEER_MISS_MS 1000 /* at most one "unknown underlay source" upcall per this */
#define FP_MAX_PEERS 65536

enum {
	C_TX_FRAMES, C_TX_BYTES, C_RX_FRAMES, C_RX_BYTES, C_ENCAP, C_LOCAL, C_SEGMENTS, C_GSO_SENDS,
	C_COALESCED, C_MISSES, C_PARKED, C_FLUSHED, C_ARP_REPLIES, C_ND_REPLIES, C_ICMP_TOO_BIG,
	D_SPOOF_MAC, D_SPOOF_IP, D_BCAST, D_TOO_BIG, D_PARK_FULL, D_PARK_TIMEOUT, D_NEGATIVE, D_MALFORMED,
	D_TAGGED, D_TAP_WRITE, D_SEND, D_BAD_VXLAN, D_UNKNOWN_VNI, D_NO_NIC, D_RX_SPOOF, D_RX_VLAN,
	D_VLAN, D_UNKNOWN_PEER, C_COUNT
};
static const char *counter_names[C_COUNT] = {
	"tx_frames", "tx_bytes", "rx_frames", "rx_bytes", "encap", "local", "segments", "gso_sends",
	"coalesced", "misses", "parked", "flushed", "arp_replies", "nd_replies", "icmp_too_big",
	"drop_spoof_mac", "drop_spoof_ip", "drop_broadcast", "drop_too_big", "drop_park_full",
	"drop_park_timeout", "drop_negative", "drop_malformed", "drop_tagged", "drop_tap_write",
	"drop_send", "drop_bad_vxlan", "drop_unknown_vni", "drop_no_nic", "drop_rx_spoof", "drop_rx_vlan",
	"drop_vlan", "drop_unknown_peer",
};

struct parked {
	struct parked *next;
	int nic;
	uint32_t gen;
	size_t len;
	struct rv_vnet_hdr vh;
	uint8_t data[];
};

/*
 * One destination being asked about (a miss). Each NIC holds its own FP_PEND_PER_NIC of
 * them: the NIC whose frame missed first owns the entry; frames of other NICs of the vnet
 * asking for the same destination wait in it too.
 */
struct pending {
	bool used;
	uint8_t kind; /* 2 = MAC, 3 = IP */
	uint16_t owner;
	uint32_t vnet;
	uint8_t key[16];
	uint64_t t0, neg_until;
	size_t bytes;
	struct parked *head, *tail;
};

struct nic {
	bool used;
	uint32_t gen;
	int fd;
	uint8_t mac[6];
	uint8_t ip[4];
	uint32_t vnet;
	uint16_t vlan;
	uint16_t mtu;
	bool allow_mac, allow_ip;
	uint64_t c[C_COUNT];
	int npend;
	size_t parked_bytes; /* frames this NIC sent that wait for an answer */
	struct pending pend[FP_PEND_PER_NIC];
};

/* Table entries carry the fabric VLAN of the NIC they name: answers never cross VLANs. */
struct l2e { uint8_t state; uint32_t vnet; uint8_t mac[6]; int16_t nic; uint16_t vlan; uint32_t ul; };
struct l3e { uint8_t state; uint32_t vnet; uint8_t addr[16]; uint8_t mac[6]; uint16_t vlan; };
enum { E_EMPTY = 0, E_USED = 1, E_TOMB = 2 };

/* kind 2: MAC, 3: IP (vnet, key); 4: a datagram from an unknown underlay address (key: it, v4-mapped). */
struct upcall { uint8_t kind; uint32_t vnet; uint8_t key[16]; };

struct txq {
	int n;
	struct mmsghdr msg[FP_TXQ];
	struct iovec iov[FP_TXQ][2];
	uint8_t hdr[FP_TXQ][RV_VXLAN_HLEN + 16];
	struct sockaddr_in dst[FP_TXQ];
	union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } cmsg[FP_TXQ];
};

struct fp {
	pthread_mutex_t mu;
	pthread_t thr;
	bool thread_started;
	volatile bool stop;
	int epfd, evfd, rxfd, txfd[FP_NTX];
	uint8_t ul_ip[4];
	uint16_t port, ul_mtu;
	/* offloads: probed & wanted */
	bool vnethdr, tso, uso, gso, gro, coalesce, mmsg;
	bool probed_vnethdr, probed_tso, probed_uso, probed_gso, probed_gro;
	struct nic nics[FP_MAX_NICS];
	uint32_t next_gen;
	struct l2e *l2;
	struct l3e *l3;
	size_t l2n, l3n;
	/* Underlay addresses VXLAN is accepted from (network order, sorted); none until set. */
	uint32_t *peers;
	size_t npeers;
	uint64_t peer_miss_at;
	size_t parked_bytes;
	bool flush_wanted;
	uint64_t c[C_COUNT];
	napi_threadsafe_function tsfn;
	/* forwarding-thread buffers */
	uint8_t (*tapbuf)[RV_VNET_HLEN + RV_MAX_FRAME];
	uint8_t (*segbuf)[FP_SEGBUF];
	uint8_t *rxbuf;
	struct txq *txq;
	struct parked *to_free;
	napi_env env;
	napi_ref self;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tables -------------------------------------------------------------------------- */

static uint32_t key_hash(uint32_t vnet, const uint8_t *k, size_t n)
{
	uint32_t h = 2166136261u ^ vnet;
	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

/*
 * Both tables are open-addressed arrays (linear probing, tombstones) of entries that
 * start with {state, vnet} followed by their key; one implementation serves both.
 */
_Static_assert(offsetof(struct l2e, state) == 0 && offsetof(struct l3e, state) == 0, "state first");
_Static_assert(offsetof(struct l2e, vnet) == offsetof(struct l3e, vnet), "vnet at one offset");

struct tab {
	uint8_t *base;
	size_t esz, cap, koff, klen;
	size_t *count;
};

#define TAB_STATE(e) (*(uint8_t *)(e))
#define TAB_VNET(e) (*(uint32_t *)((uint8_t *)(e) + offsetof(struct l2e, vnet)))

static inline void *tab_find(const struct tab *t, uint32_t vnet, const uint8_t *key)
{
	uint32_t i = key_hash(vnet, key, t->klen) & (t->cap - 1);
	for (size_t n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1)) {
		uint8_t *e = t->base + i * t->esz;
		if (TAB_STATE(e) == E_EMPTY)
			return NULL;
		if (TAB_STATE(e) == E_USED && TAB_VNET(e) == vnet && memcmp(e + t->koff, key, t->klen) == 0)
			return e;
	}
	return NULL;
}

/* The entry for (vnet, key), created if absent; NULL when the table is 3/4 full. */
static inline void *tab_slot(const struct tab *t, uint32_t vnet, const uint8_t *key)
{
	uint8_t *e = tab_find(t, vnet, key), *tomb = NULL;
	uint32_t i;
	if (e)
		return e;
	if (*t->count >= t->cap * 3 / 4)
		return NULL;
	i = key_hash(vnet, key, t->klen) & (t->cap - 1);
	for (size_t n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1)) {
		e = t->base + i * t->esz;
		if (TAB_STATE(e) == E_TOMB && !tomb)
			tomb = e;
		if (TAB_STATE(e) == E_EMPTY) {
			e = tomb ? tomb : e;
			TAB_STATE(e) = E_USED;
			TAB_VNET(e) = vnet;
			memcpy(e + t->koff, key, t->klen);
			(*t->count)++;
			return e;
		}
	}
	return NULL;
}

static inline void tab_del(const struct tab *t, uint32_t vnet, const uint8_t *key)
{
	uint8_t *e = tab_find(t, vnet, key);
	if (e) {
		TAB_STATE(e) = E_TOMB;
		(*t->count)--;
	}
}

#define L2TAB(f) (&(struct tab){ (uint8_t *)(f)->l2, sizeof(struct l2e), FP_L2CAP, offsetof(struct l2e, mac), 6, &(f)->l2n })
#define L3TAB(f) (&(struct tab){ (uint8_t *)(f)->l3, sizeof(struct l3e), FP_L3CAP, offsetof(struct l3e, addr), 16, &(f)->l3n })

static struct l2e *l2_find(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { return tab_find(L2TAB(f), vnet, mac); }
static struct l2e *l2_slot(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { return tab_slot(L2TAB(f), vnet, mac); }
static void l2_del(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { tab_del(L2TAB(f), vnet, mac); }
static struct l3e *l3_find(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { return tab_find(L3TAB(f), vnet, addr); }
static struct l3e *l3_slot(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { return tab_slot(L3TAB(f), vnet, addr); }
static void l3_del(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { tab_del(L3TAB(f), vnet, addr); }

/* IPv4 addresses are keyed as IPv4-mapped IPv6. */
static void v4key(uint8_t out[16], const uint8_t ip[4])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, ip, 4);
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
	for (struct parked *p = f->to_free; p;) {
		struct parked *n = p->next;
		free(p);
		p = n;
	}
	f->to_free = NULL;
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

static void tap_write(struct fp *f, struct nic *n, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len)
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
	struct upcall *u = malloc(sizeof(*u));
	if (!u)
		return;
	u->kind = kind;
	u->vnet = vnet;
	memcpy(u->key, key, 16);
	if (napi_call_threadsafe_function(f->tsfn, u, napi_tsfn_nonblocking) != napi_ok)
		free(u);
}

/* The entry asking about (kind, vnet, key), whichever NIC of the vnet owns it. */
static struct pending *pending_find(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
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

/* Drops the entry's parked frames, counting `reason` for the NICs still there (-1: none). */
static void pending_drop_frames(struct fp *f, struct pending *p, int reason)
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
	pending_drop_frames(f, p, -1);
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

/* A frame whose destination is unknown: park it and ask TypeScript once. */
static void park(struct fp *f, int ni, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len,
		 uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct nic *n = &f->nics[ni];
	struct pending *p = pending_find(f, kind, vnet, key);
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
	tap_write(f, n, NULL, frame, len);
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

/*
 * One frame an instance sent (also re-run for parked frames once their destination is
 * known). slot selects the segmentation buffer.
 */
static void from_tap(struct fp *f, int ni, struct rv_vnet_hdr *vh, uint8_t *frame, size_t len, int slot, bool rerun)
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
			tap_write(f, d, vh, frame, len);
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
				from_tap(f, pk->nic, &pk->vh, pk->data, pk->len, 0, true);
				txq_flush_all(f);
			}
			parked_free(f, pk);
			pk = next;
		}
		return;
	}
	if (p->head && now - p->t0 >= FP_PARK_MS) {
		pending_drop_frames(f, p, D_PARK_TIMEOUT);
		p->neg_until = now + FP_NEG_MS;
	} else if (!p->head && p->neg_until && p->neg_until <= now) {
		pending_release(f, p);
	}
}

/* Parked frames whose destination is now known go out; expired ones are dropped. */
static void run_pending(struct fp *f)
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
			from_tap(f, ni, (struct rv_vnet_hdr *)b, b + RV_VNET_HLEN, (size_t)r - RV_VNET_HLEN, i, false);
		} else {
			from_tap(f, ni, NULL, b, (size_t)r, i, false);
		}
	}
	txq_flush_all(f);
}

/* ---- receive (from the underlay) ------------------------------------------------------ */

struct delivery { int nic; uint8_t *frame; size_t len; };

static void deliver_all(struct fp *f, struct delivery *d, int nd)
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
			tap_write(f, n, &one, d[i].frame, d[i].len);
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

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Is addr (network order) the underlay address of a known peer node? */
static bool peer_known(struct fp *f, uint32_t addr)
{
	return f->npeers && bsearch(&addr, f->peers, f->npeers, sizeof(uint32_t), cmp_u32) != NULL;
}

/* A datagram from an unknown underlay address: dropped; TypeScript hears of it (rate-limited). */
static void peer_miss(struct fp *f, uint32_t addr, uint64_t datagrams)
{
	uint64_t now = now_ms();
	uint8_t key[16];
	f->c[D_UNKNOWN_PEER] += datagrams;
	if (f->peer_miss_at && now - f->peer_miss_at < FP_PEER_MISS_MS)
		return;
	f->peer_miss_at = now;
	v4key(key, (const uint8_t *)&addr);
	upcall(f, 4, 0, key);
}

/* Validates one VXLAN datagram; returns the NIC it is for (frame adjusted), or -1. */
static int decap(struct fp *f, uint8_t *p, size_t len, uint8_t **frame, size_t *flen)
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
	static __thread struct delivery d[FP_BATCH * 64];
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
		if (msg[i].msg_hdr.msg_namelen < sizeof(from[i]) || !peer_known(f, from[i].sin_addr.s_addr)) {
			peer_miss(f, from[i].sin_addr.s_addr, len == 0 ? 1 : (len + gsz - 1) / gsz);
			continue;
		}
		for (size_t o = 0; o < len; o += gsz) {
			size_t dl = len - o < gsz ? len - o : gsz;
			uint8_t *fr;
			size_t fl;
			int ni = decap(f, p + o, dl, &fr, &fl);
			if (ni < 0)
				continue;
			if (nd == (int)(sizeof(d) / sizeof(d[0]))) {
				deliver_all(f, d, nd);
				nd = 0;
			}
			d[nd++] = (struct delivery){ ni, fr, fl };
		}
	}
	deliver_all(f, d, nd);
}

/* ---- the forwarding thread ------------------------------------------------------------ */

#define EV_RX FP_MAX_NICS
#define EV_CTL (FP_MAX_NICS + 1)

static void *fwd_main(void *arg)
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
			run_pending(f);
			txq_flush_all(f);
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

static void wake(struct fp *f)
{
	uint64_t one = 1;
	if (write(f->evfd, &one, sizeof(one)) < 0) { /* already pending */ }
}

/* ---- TAP creation in another namespace ------------------------------------------------- */

struct tap_req {
	const char *netns, *ifname;
	uint8_t mac[6];
	uint16_t mtu;
	bool vnethdr, persist, must_exist;
	unsigned offload;
	int fd, err;
	const char *step;
};

static void *tap_thread(void *arg)
{
	struct tap_req *r = arg;
	struct ifreq ifr;
	int s;

	r->fd = -1;
	if (r->netns && *r->netns) {
		int nsfd = open(r->netns, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0) {
			r->err = errno;
			r->step = "open netns";
			return NULL;
		}
		/* Only this short-lived thread changes namespace. */
		if (setns(nsfd, CLONE_NEWNET) != 0) {
			r->err = errno;
			r->step = "setns";
			close(nsfd);
			return NULL;
		}
		close(nsfd);
	}
	if (r->must_exist && if_nametoindex(r->ifname) == 0) {
		r->err = ENODEV;
		r->step = "re-attach (no such device)";
		return NULL;
	}
	r->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0) {
		r->err = errno;
		r->step = "open /dev/net/tun";
		return NULL;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (r->vnethdr ? IFF_VNET_HDR : 0);
	if (ioctl(r->fd, TUNSETIFF, &ifr) != 0) {
		r->step = "TUNSETIFF";
		goto fail;
	}
	if (r->vnethdr && ioctl(r->fd, TUNSETOFFLOAD, r->offload) != 0) {
		r->step = "TUNSETOFFLOAD";
		goto fail;
	}
	/* A persistent TAP outlives the agent: a restarted one re-attaches to it by name. */
	if (r->persist && ioctl(r->fd, TUNSETPERSIST, 1) != 0) {
		r->step = "TUNSETPERSIST";
		goto fail;
	}
	if (r->must_exist)
		return NULL; /* re-attached: address and MTU are as the first agent set them */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		r->step = "socket";
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, r->mac, 6);
	if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) {
		r->step = "SIOCSIFHWADDR";
		close(s);
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_mtu = r->mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) != 0) {
		r->step = "SIOCSIFMTU";
		close(s);
		goto fail;
	}
	close(s);
	return NULL;
fail:
	r->err = errno;
	close(r->fd);
	r->fd = -1;
	return NULL;
}

static unsigned tap_offload_flags(const struct fp *f)
{
	unsigned o = 0;
	if (f->tso)
		o |= TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	if (f->uso)
		o |= TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6;
	return o;
}

static void probe_offloads(struct fp *f)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	int s;
	if (fd >= 0) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		snprintf(ifr.ifr_name, IFNAMSIZ, "rhprobe%%d");
		if (ioctl(fd, TUNSETIFF, &ifr) == 0) {
			f->probed_vnethdr = true;
			f->probed_tso = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0;
			f->probed_uso = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6) == 0;
		}
		close(fd);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		int v = 1400, one = 1;
		f->probed_gso = setsockopt(s, SOL_UDP, UDP_SEGMENT, &v, sizeof(v)) == 0;
		f->probed_gro = setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
		close(s);
	}
}

/* ---- Node-API ------------------------------------------------------------------------- */

#define CHECK(env, call)                                                                \
	do {                                                                            \
		if ((call) != napi_ok) {                                                \
			bool pending_ = false;                                          \
			napi_is_exception_pending((env), &pending_);                    \
			if (!pending_)                                                  \
				napi_throw_error((env), "ERR_NAPI", #call " failed");   \
			return NULL;                                                    \
		}                                                                       \
	} while (0)

static void throw_errno(napi_env env, const char *what, int err)
{
	char msg[256];
	const char *code = strerrorname_np(err);
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_throw_error(env, code ? code : "EUNKNOWN", msg);
}

static void call_js(napi_env env, napi_value cb, void *ctx, void *data)
{
	struct upcall *u = data;
	napi_value argv[3], undef;
	void *bytes;
	if (env && cb) {
		napi_create_uint32(env, u->kind, &argv[0]);
		napi_create_uint32(env, u->vnet, &argv[1]);
		if (napi_create_buffer(env, 16, &bytes, &argv[2]) == napi_ok) {
			memcpy(bytes, u->key, 16);
			napi_get_undefined(env, &undef);
			napi_call_function(env, undef, cb, 3, argv, NULL);
		}
	}
	free(u);
}

static void fp_stop(struct fp *f)
{
	if (f->thread_started) {
		f->stop = true;
		wake(f);
		pthread_join(f->thr, NULL);
		f->thread_started = false;
	}
	for (int i = 0; i < FP_MAX_NICS; i++) {
		if (f->nics[i].used) {
			close(f->nics[i].fd);
			f->nics[i].used = false;
		}
	}
	for (int i = 0; i < FP_MAX_NICS; i++)
		pending_release_all(f, i);
	if (f->rxfd >= 0)
		close(f->rxfd);
	for (int s = 0; s < FP_NTX; s++)
		if (f->txfd[s] >= 0)
			close(f->txfd[s]);
	if (f->epfd >= 0)
		close(f->epfd);
	if (f->evfd >= 0)
		close(f->evfd);
	f->rxfd = f->epfd = f->evfd = -1;
	for (int s = 0; s < FP_NTX; s++)
		f->txfd[s] = -1;
	if (f->tsfn) {
		napi_release_threadsafe_function(f->tsfn, napi_tsfn_abort);
		f->tsfn = NULL;
	}
}

static void fp_free(struct fp *f)
{
	fp_stop(f);
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

static void cleanup_hook(void *arg)
{
	fp_stop(arg);
}

static void finalize(napi_env env, void *data, void *hint)
{
	struct fp *f = data;
	napi_remove_env_cleanup_hook(env, cleanup_hook, f);
	fp_free(f);
}

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out)
{
	bool has = false;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return false;
	return napi_get_named_property(env, obj, name, out) == napi_ok;
}

static bool opt_bool(napi_env env, napi_value obj, const char *name, bool dflt)
{
	napi_value v;
	bool b;
	if (!get_prop(env, obj, name, &v) || napi_get_value_bool(env, v, &b) != napi_ok)
		return dflt;
	return b;
}

static uint32_t opt_u32(napi_env env, napi_value obj, const char *name, uint32_t dflt)
{
	napi_value v;
	uint32_t u;
	if (!get_prop(env, obj, name, &v) || napi_get_value_uint32(env, v, &u) != napi_ok)
		return dflt;
	return u;
}

static bool buf_arg(napi_env env, napi_value v, size_t want, uint8_t *out)
{
	bool is = false;
	void *d;
	size_t n;
	if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, &d, &n) != napi_ok || n != want)
		return false;
	memcpy(out, d, want);
	return true;
}

static int open_udp(struct fp *f, uint16_t port, int *err)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 4 << 20, dont = IP_PMTUDISC_DONT;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (s < 0) {
		*err = errno;
		return -1;
	}
	memcpy(&a.sin_addr, f->ul_ip, 4);
	if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	/* Inner packets without DF may be larger than the path: let the kernel fragment the outer one. */
	setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof(dont));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		*err = errno;
		close(s);
		return -1;
	}
	return s;
}

/* new FastPath({ underlayIp: Buffer(4), port, underlayMtu, tso, uso, gso, gro, coalesce, mmsg }, onMiss) */
static napi_value js_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self, v, name;
	struct fp *f;
	struct epoll_event ev;
	int err = 0;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc < 2) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath(options, onMiss)");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		napi_throw_error(env, "ENOMEM", "FastPath: out of memory");
		return NULL;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->epfd = f->evfd = f->rxfd = -1;
	for (int s = 0; s < FP_NTX; s++)
		f->txfd[s] = -1;
	if (!get_prop(env, argv[0], "underlayIp", &v) || !buf_arg(env, v, 4, f->ul_ip)) {
		fp_free(f);
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath: underlayIp must be a 4-byte Buffer");
		return NULL;
	}
	f->port = (uint16_t)opt_u32(env, argv[0], "port", RV_VXLAN_PORT);
	{
		uint32_t mtu = opt_u32(env, argv[0], "underlayMtu", 1500);
		f->ul_mtu = (uint16_t)(mtu > 65535 ? 65535 : mtu); /* loopback: 65536 */
	}
	if (f->ul_mtu < 576 + RV_VXLAN_OVERHEAD) {
		fp_free(f);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: underlayMtu too small");
		return NULL;
	}
	probe_offloads(f);
	f->tso = f->probed_tso && opt_bool(env, argv[0], "tso", true);
	f->uso = f->probed_uso && opt_bool(env, argv[0], "uso", true);
	f->gso = f->probed_gso && opt_bool(env, argv[0], "gso", true);
	f->gro = f->probed_gro && opt_bool(env, argv[0], "gro", true);
	f->coalesce = opt_bool(env, argv[0], "coalesce", true);
	f->mmsg = opt_bool(env, argv[0], "mmsg", true);
	/*
	 * The virtio header is kept even with every offload off: frames from the underlay are
	 * written with a partial L4 checksum (the outer UDP checksum covered them, and kernel
	 * senders on veth leave the inner one unfinished).
	 */
	f->vnethdr = f->probed_vnethdr;
	if (!f->vnethdr)
		f->coalesce = f->tso = f->uso = false;
	f->l2 = calloc(FP_L2CAP, sizeof(*f->l2));
	f->l3 = calloc(FP_L3CAP, sizeof(*f->l3));
	f->tapbuf = malloc(sizeof(*f->tapbuf) * FP_BATCH);
	f->segbuf = malloc(sizeof(*f->segbuf) * FP_BATCH);
	f->rxbuf = malloc((size_t)FP_RXBUF * FP_BATCH);
	f->txq = calloc(FP_NTX, sizeof(*f->txq));
	if (!f->l2 || !f->l3 || !f->tapbuf || !f->segbuf || !f->rxbuf || !f->txq) {
		fp_free(f);
		napi_throw_error(env, "ENOMEM", "FastPath: out of memory");
		return NULL;
	}
	f->rxfd = open_udp(f, f->port, &err);
	if (f->rxfd < 0) {
		fp_free(f);
		throw_errno(env, "FastPath: bind underlay UDP socket", err);
		return NULL;
	}
	if (f->gro) {
		int one = 1;
		if (setsockopt(f->rxfd, SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0)
			f->gro = false;
	}
	for (int s = 0; s < FP_NTX; s++) {
		f->txfd[s] = open_udp(f, 0, &err);
		if (f->txfd[s] < 0) {
			fp_free(f);
			throw_errno(env, "FastPath: sending socket", err);
			return NULL;
		}
	}
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	f->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->epfd < 0 || f->evfd < 0) {
		err = errno;
		fp_free(f);
		throw_errno(env, "FastPath: epoll", err);
		return NULL;
	}
	ev.events = EPOLLIN;
	ev.data.u64 = EV_RX;
	epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->rxfd, &ev);
	ev.data.u64 = EV_CTL;
	epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->evfd, &ev);
	napi_create_string_utf8(env, "rhumb-fastpath-miss", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &f->tsfn) != napi_ok) {
		fp_free(f);
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath: onMiss must be a function");
		return NULL;
	}
	if (napi_wrap(env, self, f, finalize, NULL, NULL) != napi_ok) {
		fp_free(f);
		napi_throw_error(env, "ERR_NAPI", "FastPath: wrap failed");
		return NULL;
	}
	napi_add_env_cleanup_hook(env, cleanup_hook, f);
	if (pthread_create(&f->thr, NULL, fwd_main, f) != 0) {
		napi_throw_error(env, "EAGAIN", "FastPath: cannot start the forwarding thread");
		return NULL;
	}
	f->thread_started = true;
	return self;
}

static struct fp *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv)
{
	napi_value self;
	struct fp *f = NULL;
	if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, (void **)&f) != napi_ok || !f) {
		napi_throw_error(env, "ERR_NAPI", "FastPath: not a FastPath");
		return NULL;
	}
	if (f->epfd < 0) {
		napi_throw_error(env, "ERR_CLOSED", "FastPath: closed");
		return NULL;
	}
	return f;
}

/* addNic({ netns, ifname, mac: Buffer(6), ip: Buffer(4), vnet, vlan, mtu, allowMac, allowIp }) -> id */
static napi_value js_add_nic(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], v, out;
	struct fp *f = unwrap(env, info, &argc, argv);
	struct tap_req req = { 0 };
	char netns[512] = "", ifname[64] = "";
	uint8_t ip[4], key[16];
	size_t n;
	pthread_t th;
	int slot = -1;
	struct epoll_event ev;
	struct nic *nic;
	struct l2e *e;
	struct l3e *e3;

	if (!f)
		return NULL;
	if (argc < 1 || !get_prop(env, argv[0], "mac", &v) || !buf_arg(env, v, 6, req.mac) ||
	    !get_prop(env, argv[0], "ip", &v) || !buf_arg(env, v, 4, ip) || !get_prop(env, argv[0], "ifname", &v) ||
	    napi_get_value_string_utf8(env, v, ifname, sizeof(ifname), &n) != napi_ok || n == 0 || n > IFNAMSIZ - 1) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "addNic: mac (6-byte Buffer), ip (4-byte Buffer) and ifname are required");
		return NULL;
	}
	if (get_prop(env, argv[0], "netns", &v) && napi_get_value_string_utf8(env, v, netns, sizeof(netns), &n) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "addNic: netns must be a path");
		return NULL;
	}
	req.netns = netns;
	req.ifname = ifname;
	req.mtu = (uint16_t)opt_u32(env, argv[0], "mtu", (uint32_t)f->ul_mtu - RV_VXLAN_OVERHEAD);
	req.vnethdr = f->vnethdr;
	req.offload = tap_offload_flags(f);
	req.persist = opt_bool(env, argv[0], "persist", false);
	req.must_exist = opt_bool(env, argv[0], "reattach", false);
	if (pthread_create(&th, NULL, tap_thread, &req) != 0) {
		napi_throw_error(env, "EAGAIN", "addNic: cannot start the namespace thread");
		return NULL;
	}
	pthread_join(th, NULL);
	if (req.fd < 0) {
		char what[128];
		snprintf(what, sizeof(what), "addNic %s: %s", ifname, req.step ? req.step : "?");
		throw_errno(env, what, req.err);
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < FP_MAX_NICS && slot < 0; i++)
		if (!f->nics[i].used)
			slot = i;
	if (slot < 0) {
		pthread_mutex_unlock(&f->mu);
		close(req.fd);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "addNic: too many NICs");
		return NULL;
	}
	nic = &f->nics[slot];
	memset(nic, 0, sizeof(*nic));
	nic->gen = ++f->next_gen;
	nic->fd = req.fd;
	memcpy(nic->mac, req.mac, 6);
	memcpy(nic->ip, ip, 4);
	nic->vnet = opt_u32(env, argv[0], "vnet", 0) & 0xffffff;
	nic->vlan = (uint16_t)(opt_u32(env, argv[0], "vlan", 0) & 0x0fff);
	nic->mtu = req.mtu;
	nic->allow_mac = opt_bool(env, argv[0], "allowMac", false);
	nic->allow_ip = opt_bool(env, argv[0], "allowIp", false);
	e = l2_slot(f, nic->vnet, nic->mac);
	v4key(key, ip);
	e3 = e ? l3_slot(f, nic->vnet, key) : NULL;
	if (!e || !e3) {
		if (e)
			l2_del(f, nic->vnet, nic->mac);
		pthread_mutex_unlock(&f->mu);
		close(req.fd);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "addNic: tables full");
		return NULL;
	}
	e->nic = (int16_t)slot;
	e->vlan = nic->vlan;
	e->ul = 0;
	memcpy(e3->mac, nic->mac, 6);
	e3->vlan = nic->vlan;
	nic->used = true;
	ev.events = EPOLLIN;
	ev.data.u64 = (uint64_t)slot;
	epoll_ctl(f->epfd, EPOLL_CTL_ADD, nic->fd, &ev);
	f->flush_wanted = true;
	pthread_mutex_unlock(&f->mu);
	wake(f);
	CHECK(env, napi_create_int32(env, slot, &out));
	return out;
}

static bool nic_arg(napi_env env, struct fp *f, napi_value v, int *slot)
{
	int32_t id;
	if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= FP_MAX_NICS || !f->nics[id].used) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: unknown NIC id");
		return false;
	}
	*slot = id;
	return true;
}

static napi_value js_remove_nic(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	int slot;
	struct nic *n;
	struct l2e *e;
	struct l3e *e3;
	uint8_t key[16];
	if (!f || argc < 1)
		return NULL;
	pthread_mutex_lock(&f->mu);
	if (!nic_arg(env, f, argv[0], &slot)) {
		pthread_mutex_unlock(&f->mu);
		return NULL;
	}
	n = &f->nics[slot];
	epoll_ctl(f->epfd, EPOLL_CTL_DEL, n->fd, NULL);
	pending_release_all(f, slot);
	/* Removing a NIC removes its device, persistent or not. */
	if (ioctl(n->fd, TUNSETPERSIST, 0) != 0) { /* was not persistent */ }
	close(n->fd);
	n->used = false;
	e = l2_find(f, n->vnet, n->mac);
	if (e && e->nic == slot)
		l2_del(f, n->vnet, n->mac);
	v4key(key, n->ip);
	e3 = l3_find(f, n->vnet, key);
	if (e3 && memcmp(e3->mac, n->mac, 6) == 0)
		l3_del(f, n->vnet, key);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/*
 * update(records: Buffer): 32-byte records applied all or nothing, under one lock hold.
 *   [0] op: 1 l2set, 2 l2del, 3 l3set, 4 l3del, 5 l2notfound, 6 l3notfound
 *   [2..4) fabric VLAN of the named NIC (LE; l2set, l3set)
 *   [4..8) vnet (LE) [8..14) mac [16..32) address (IPv6 or IPv4-mapped; l2set: underlay at 28..32)
 */
static napi_value js_update(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	bool is = false;
	uint8_t *b;
	if (!f)
		return NULL;
	if (argc < 1 || napi_is_buffer(env, argv[0], &is) != napi_ok || !is ||
	    napi_get_buffer_info(env, argv[0], (void **)&b, &len) != napi_ok || len % 32 != 0) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "update: records must be a Buffer of 32-byte records");
		return NULL;
	}
	for (size_t o = 0; o < len; o += 32) {
		if (b[o] < 1 || b[o] > 6) {
			napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "update: unknown operation");
			return NULL;
		}
	}
	pthread_mutex_lock(&f->mu);
	if ((f->l2n + len / 32 > FP_L2CAP * 3 / 4) || (f->l3n + len / 32 > FP_L3CAP * 3 / 4)) {
		pthread_mutex_unlock(&f->mu);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "update: tables full");
		return NULL;
	}
	for (size_t o = 0; o < len; o += 32) {
		uint8_t *r = b + o;
		uint32_t vnet = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
		uint16_t vlan = (uint16_t)((r[2] | r[3] << 8) & 0x0fff);
		struct l2e *e;
		struct l3e *e3;
		struct pending *p;
		switch (r[0]) {
		case 1:
			e = l2_find(f, vnet, r + 8);
			if (e && e->nic >= 0)
				break; /* a local NIC wins over a remote answer */
			e = l2_slot(f, vnet, r + 8);
			if (e) {
				e->nic = -1;
				e->vlan = vlan;
				memcpy(&e->ul, r + 28, 4);
			}
			break;
		case 2:
			e = l2_find(f, vnet, r + 8);
			if (e && e->nic < 0)
				l2_del(f, vnet, r + 8);
			break;
		case 3:
			e3 = l3_slot(f, vnet, r + 16);
			if (e3) {
				memcpy(e3->mac, r + 8, 6);
				e3->vlan = vlan;
			}
			break;
		case 4:
			l3_del(f, vnet, r + 16);
			break;
		case 5:
		case 6: {
			uint8_t key[16] = { 0 };
			if (r[0] == 5)
				memcpy(key, r + 8, 6);
			else
				memcpy(key, r + 16, 16);
			p = pending_find(f, r[0] == 5 ? 2 : 3, vnet, key);
			if (p) {
				pending_drop_frames(f, p, D_NEGATIVE);
				p->neg_until = now_ms() + FP_NEG_MS;
			}
			break;
		}
		}
	}
	f->flush_wanted = true;
	pthread_mutex_unlock(&f->mu);
	wake(f);
	return NULL;
}

/* entries(vnet) -> Buffer of l2set (remote) and l3set records. */
static napi_value js_entries(napi_env env, napi_callback_info info)
{
	size_t argc = 1, cnt = 0, k = 0;
	napi_value argv[1], out;
	struct fp *f = unwrap(env, info, &argc, argv);
	uint32_t vnet;
	uint8_t *b;
	if (!f)
		return NULL;
	if (argc < 1 || napi_get_value_uint32(env, argv[0], &vnet) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "entries(vnet)");
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < FP_L2CAP; i++)
		if (f->l2[i].state == E_USED && f->l2[i].vnet == vnet && f->l2[i].nic < 0)
			cnt++;
	for (size_t i = 0; i < FP_L3CAP; i++)
		if (f->l3[i].state == E_USED && f->l3[i].vnet == vnet)
			cnt++;
	if (napi_create_buffer(env, cnt * 32, (void **)&b, &out) != napi_ok) {
		pthread_mutex_unlock(&f->mu);
		return NULL;
	}
	memset(b, 0, cnt * 32);
	for (size_t i = 0; i < FP_L2CAP && k < cnt; i++) {
		struct l2e *e = &f->l2[i];
		if (e->state == E_USED && e->vnet == vnet && e->nic < 0) {
			uint8_t *r = b + 32 * k++;
			r[0] = 1;
			r[2] = (uint8_t)e->vlan;
			r[3] = (uint8_t)(e->vlan >> 8);
			memcpy(r + 4, &vnet, 4);
			memcpy(r + 8, e->mac, 6);
			r[26] = r[27] = 0xff;
			memcpy(r + 28, &e->ul, 4);
		}
	}
	for (size_t i = 0; i < FP_L3CAP && k < cnt; i++) {
		struct l3e *e = &f->l3[i];
		if (e->state == E_USED && e->vnet == vnet) {
			uint8_t *r = b + 32 * k++;
			r[0] = 3;
			r[2] = (uint8_t)e->vlan;
			r[3] = (uint8_t)(e->vlan >> 8);
			memcpy(r + 4, &vnet, 4);
			memcpy(r + 8, e->mac, 6);
			memcpy(r + 16, e->addr, 16);
		}
	}
	pthread_mutex_unlock(&f->mu);
	return out;
}

/*
 * setPeers(addresses: Buffer): the underlay addresses (4 bytes each, network order) VXLAN
 * is accepted from, replacing the previous set.
 */
static napi_value js_set_peers(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len, n;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	bool is = false;
	uint8_t *b;
	uint32_t *set = NULL, *old;
	if (!f)
		return NULL;
	if (argc < 1 || napi_is_buffer(env, argv[0], &is) != napi_ok || !is ||
	    napi_get_buffer_info(env, argv[0], (void **)&b, &len) != napi_ok || len % 4 != 0) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setPeers: addresses must be a Buffer of 4-byte IPv4 addresses");
		return NULL;
	}
	n = len / 4;
	if (n > FP_MAX_PEERS) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "setPeers: too many addresses");
		return NULL;
	}
	if (n > 0) {
		set = malloc(len);
		if (!set) {
			napi_throw_error(env, "ENOMEM", "setPeers: out of memory");
			return NULL;
		}
		memcpy(set, b, len);
		qsort(set, n, sizeof(uint32_t), cmp_u32);
	}
	pthread_mutex_lock(&f->mu);
	old = f->peers;
	f->peers = set;
	f->npeers = n;
	pthread_mutex_unlock(&f->mu);
	free(old);
	return NULL;
}

/* counters(id?) -> Float64Array (per NIC, or the engine's when id is omitted) */
static napi_value js_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], ab, out;
	struct fp *f = unwrap(env, info, &argc, argv);
	double *d;
	uint64_t *src;
	napi_valuetype t = napi_undefined;
	int slot;
	if (!f)
		return NULL;
	CHECK(env, napi_create_arraybuffer(env, sizeof(double) * C_COUNT, (void **)&d, &ab));
	pthread_mutex_lock(&f->mu);
	if (argc >= 1)
		napi_typeof(env, argv[0], &t);
	if (t == napi_number) {
		if (!nic_arg(env, f, argv[0], &slot)) {
			pthread_mutex_unlock(&f->mu);
			return NULL;
		}
		src = f->nics[slot].c;
	} else {
		src = f->c;
	}
	for (int i = 0; i < C_COUNT; i++)
		d[i] = (double)src[i];
	pthread_mutex_unlock(&f->mu);
	CHECK(env, napi_create_typedarray(env, napi_float64_array, C_COUNT, ab, 0, &out));
	return out;
}

/*
 * inject(vnet, frame): writes a frame (a gratuitous ARP) into every other local TAP on the
 * vnet that is on the fabric VLAN of the frame's source MAC (as the table knows it).
 */
static napi_value js_inject(napi_env env, napi_callback_info info)
{
	size_t argc = 2, len;
	napi_value argv[2];
	struct fp *f = unwrap(env, info, &argc, argv);
	uint32_t vnet;
	uint8_t *b;
	bool is = false;
	struct l2e *src;
	if (!f)
		return NULL;
	if (argc < 2 || napi_get_value_uint32(env, argv[0], &vnet) != napi_ok || napi_is_buffer(env, argv[1], &is) != napi_ok ||
	    !is || napi_get_buffer_info(env, argv[1], (void **)&b, &len) != napi_ok || len < RV_ETH_HLEN) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "inject(vnet, frame: Buffer)");
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	src = l2_find(f, vnet, b + 6);
	for (int i = 0; i < FP_MAX_NICS && src; i++)
		if (f->nics[i].used && f->nics[i].vnet == vnet && f->nics[i].vlan == src->vlan && memcmp(f->nics[i].mac, b + 6, 6) != 0)
			tap_write(f, &f->nics[i], NULL, b, len);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static napi_value js_offloads(napi_env env, napi_callback_info info)
{
	size_t argc = 0;
	napi_value out, v;
	struct fp *f = unwrap(env, info, &argc, NULL);
	const char *names[] = { "vnethdr", "tso", "uso", "gso", "gro", "coalesce", "mmsg",
				"probedTso", "probedUso", "probedGso", "probedGro" };
	bool vals[11];
	if (!f)
		return NULL;
	vals[0] = f->vnethdr; vals[1] = f->tso; vals[2] = f->uso; vals[3] = f->gso; vals[4] = f->gro;
	vals[5] = f->coalesce; vals[6] = f->mmsg; vals[7] = f->probed_tso; vals[8] = f->probed_uso;
	vals[9] = f->probed_gso; vals[10] = f->probed_gro;
	CHECK(env, napi_create_object(env, &out));
	for (int i = 0; i < 11; i++) {
		CHECK(env, napi_get_boolean(env, vals[i], &v));
		CHECK(env, napi_set_named_property(env, out, names[i], v));
	}
	return out;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value self;
	struct fp *f = NULL;
	size_t argc = 0;
	if (napi_get_cb_info(env, info, &argc, NULL, &self, NULL) != napi_ok || napi_unwrap(env, self, (void **)&f) != napi_ok || !f)
		return NULL;
	fp_stop(f);
	return NULL;
}

static napi_value js_counter_names(napi_env env, napi_callback_info info)
{
	napi_value arr, s;
	CHECK(env, napi_create_array_with_length(env, C_COUNT, &arr));
	for (uint32_t i = 0; i < C_COUNT; i++) {
		CHECK(env, napi_create_string_utf8(env, counter_names[i], NAPI_AUTO_LENGTH, &s));
		CHECK(env, napi_set_element(env, arr, i, s));
	}
	return arr;
}

napi_status rhumb_fastpath_register(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "addNic", NULL, js_add_nic, NULL, NULL, NULL, napi_default, NULL },
		{ "removeNic", NULL, js_remove_nic, NULL, NULL, NULL, napi_default, NULL },
		{ "update", NULL, js_update, NULL, NULL, NULL, napi_default, NULL },
		{ "entries", NULL, js_entries, NULL, NULL, NULL, napi_default, NULL },
		{ "setPeers", NULL, js_set_peers, NULL, NULL, NULL, napi_default, NULL },
		{ "counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL },
		{ "inject", NULL, js_inject, NULL, NULL, NULL, napi_default, NULL },
		{ "offloads", NULL, js_offloads, NULL, NULL, NULL, napi_default, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
		{ "counterNames", NULL, js_counter_names, NULL, NULL, NULL, napi_static, NULL },
	};
	napi_value cls;
	napi_status st = napi_define_class(env, "FastPath", NAPI_AUTO_LENGTH, js_ctor, NULL,
					   sizeof(methods) / sizeof(methods[0]), methods, &cls);
	if (st != napi_ok)
		return st;
	return napi_set_named_property(env, exports, "FastPath", cls);
}
