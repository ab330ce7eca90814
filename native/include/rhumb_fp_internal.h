#ifndef RHUMB_FP_INTERNAL_H
#define RHUMB_FP_INTERNAL_H
/*
 * Inside the forwarding engine: its state, tables and the functions fp_engine.c (the
 * data path) and fp_control.c (lifecycle and table writes) share. native/test/ includes
 * it to drive the data path on crafted frames without sockets or threads.
 *
 * Forwarding threads: the transmit thread (TAP -> UDP: anti-spoofing, answers, misses,
 * parking, encapsulation) and FP_NRX receive threads (UDP -> TAP: peer check, decap, VLAN
 * check, coalescing), one per receiving socket, so that one direction's copies and the
 * instance's TCP work the kernel does inside our TAP writes do not wait for the other's,
 * and flows arriving on different sockets are received in parallel. With one_thread
 * (FP_THREADS_ONE, asked for at open) there are no receive threads: the
 * transmit thread's epoll set also holds the receiving sockets and it takes their batches
 * without blocking, so an instance's ACK that its own TAP write caused is read on the next
 * turn of the loop instead of waking another thread.
 *
 * Locking: the mutex `mu` is held by the transmit thread while it handles one wakeup's
 * batch (a few hundred microseconds at most) and by every control call; it guards the
 * misses (pending, parked frames) and the transmit queues. The rwlock `tabs` is held for
 * reading by the receive threads while they handle one batch, and for writing (with `mu`)
 * by control calls that change what the receive path reads: tables, NICs, peers. Lock
 * order: mu, then tabs. Counters are added to atomically (both threads count per NIC).
 */
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "rhumb_fp.h"
#include "rhumb_vxlan.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define FP_NTX 8            /* sending sockets: the flow hash picks one (outer source port) */
#define FP_NRX 2            /* receiving sockets on the VXLAN port (SO_REUSEPORT: the kernel keeps a
			     * flow on one by its outer ports), each with its own receive thread */
#define FP_BATCH 64         /* frames per TAP wakeup, datagrams per recvmmsg */
#define FP_GRO_BATCH 8      /* datagrams per recvmmsg with UDP_GRO (each up to 64 KiB): stays in cache */
#define FP_TX_FLUSH 49152   /* bytes queued before they are sent, while the frames are still in cache */
#define FP_TXQ 256          /* queued datagrams per sending socket before sendmmsg */
#define FP_TXIOV 1024       /* their iovecs (a segment is its headers + its payload in place) */
#define FP_RXBUF 65536
#define FP_MAXSEG 128       /* segments of one superframe (MSS >= 536) */
#define FP_L2CAP 16384
#define FP_L3CAP 16384
#define FP_PEND_PER_NIC 32   /* outstanding misses per NIC: one instance cannot crowd out the others */
#define FP_PARK_BYTES (128 * 1024)         /* parked per destination */
#define FP_NIC_PARK_BYTES (1024 * 1024)    /* parked per sending NIC */
#define FP_PARK_TOTAL (64 * 1024 * 1024)   /* parked in all */
#define FP_PARK_MS 1000      /* unanswered misses drop their frames after this */
#define FP_NEG_MS 2000       /* ... and are negatively cached this long */
#define FP_GSO_MAX 65000     /* bytes per UDP_SEGMENT send */
#define FP_GSO_SEGS 64       /* segments per UDP_SEGMENT send (UDP_MAX_SEGMENTS of older kernels) */
#define FP_PEER_MISS_MS 1000 /* at most one "unknown underlay source" upcall per this */

/* epoll ids of the transmit thread: 0..FP_MAX_NICS-1 are the NICs' TAPs. */
#define EV_CTL (FP_MAX_NICS + 1)
#define EV_RX0 (FP_MAX_NICS + 2) /* + q: a receiving socket, when the transmit thread also receives */

#define CNT_ADD(x, v) __atomic_fetch_add(&(x), (uint64_t)(v), __ATOMIC_RELAXED)

/* Counters, per NIC and for the engine; names in fp_counter_names (fp_control.c). */
enum {
	C_TX_FRAMES, C_TX_BYTES, C_RX_FRAMES, C_RX_BYTES, C_ENCAP, C_LOCAL, C_SEGMENTS, C_GSO_SENDS,
	C_COALESCED, C_MISSES, C_PARKED, C_FLUSHED, C_ARP_REPLIES, C_ND_REPLIES, C_ICMP_TOO_BIG,
	D_SPOOF_MAC, D_SPOOF_IP, D_BCAST, D_TOO_BIG, D_PARK_FULL, D_PARK_TIMEOUT, D_NEGATIVE, D_MALFORMED,
	D_TAGGED, D_TAP_WRITE, D_SEND, D_BAD_VXLAN, D_UNKNOWN_VNI, D_NO_NIC, D_RX_SPOOF, D_RX_VLAN,
	D_VLAN, D_UNKNOWN_PEER, C_COUNT
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
	uint8_t ip[16]; /* as a table key: IPv6, or IPv4-mapped */
	uint32_t vnet;
	uint16_t vlan;
	uint16_t mtu;
	bool allow_mac, allow_ip;
	bool shared_mac; /* the distributed gateway's MAC: also the source of frames other nodes route here */
	uint64_t c[C_COUNT];
	int npend;
	size_t parked_bytes; /* frames this NIC sent that wait for an answer */
	struct pending pend[FP_PEND_PER_NIC];
};

/* Table entries carry the fabric VLAN of the NIC they name: answers never cross VLANs. */
struct l2e { uint8_t state; uint32_t vnet; uint8_t mac[6]; int16_t nic; uint16_t vlan; uint32_t ul; };
struct l3e { uint8_t state; uint32_t vnet; uint8_t addr[16]; uint8_t mac[6]; uint16_t vlan; };
enum { E_EMPTY = 0, E_USED = 1, E_TOMB = 2 };

struct txq {
	int n, niov;
	size_t bytes;
	struct mmsghdr msg[FP_TXQ];
	struct iovec iov[FP_TXIOV];
	uint8_t hdr[FP_TXQ][RV_VXLAN_HLEN + 16];
	struct sockaddr_in dst[FP_TXQ];
	union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } cmsg[FP_TXQ];
};

/* One receiving socket, its thread and its buffers. */
struct rxq {
	struct fp *f;
	int fd;
	pthread_t thr;
	bool started;
	uint8_t *buf;            /* FP_BATCH * FP_RXBUF */
	struct fp_delivery *dlv; /* FP_BATCH * 64: the frames of one receive batch */
};

struct fp {
	pthread_mutex_t mu;
	pthread_rwlock_t tabs;
	pthread_t thr;
	bool thread_started;
	volatile bool stop;
	int epfd, evfd, txfd[FP_NTX];
	struct rxq rxq[FP_NRX];
	int nrx;
	bool one_thread; /* the transmit thread also receives (no receive threads) */
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
	fp_upcall_fn upcall;
	void *upcall_ctx;
	/* the transmit thread's buffers */
	uint8_t (*tapbuf)[RV_VNET_HLEN + RV_MAX_FRAME];
	uint8_t (*hdrbuf)[FP_MAXSEG * RV_SEG_STRIDE]; /* per TAP frame of a batch: its segments' headers */
	struct txq *txq;
};

static inline uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tables -------------------------------------------------------------------------- */

static inline uint32_t key_hash(uint32_t vnet, const uint8_t *k, size_t n)
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

static inline struct l2e *l2_find(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { return tab_find(L2TAB(f), vnet, mac); }
static inline struct l2e *l2_slot(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { return tab_slot(L2TAB(f), vnet, mac); }
static inline void l2_del(struct fp *f, uint32_t vnet, const uint8_t mac[6]) { tab_del(L2TAB(f), vnet, mac); }
static inline struct l3e *l3_find(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { return tab_find(L3TAB(f), vnet, addr); }
static inline struct l3e *l3_slot(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { return tab_slot(L3TAB(f), vnet, addr); }
static inline void l3_del(struct fp *f, uint32_t vnet, const uint8_t addr[16]) { tab_del(L3TAB(f), vnet, addr); }

/* IPv4 addresses are keyed as IPv4-mapped IPv6. */
static inline void v4key(uint8_t out[16], const uint8_t ip[4])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, ip, 4);
}

/* ---- the data path (fp_engine.c, fp_tx.c, fp_rx.c, fp_park.c) ------------------------- */

/* Allocates the tables and buffers; no descriptors, no thread (fp_control.c adds those). */
struct fp *fp_alloc(const struct fp_options *o, fp_upcall_fn upcall, void *ctx);
/* Frees what fp_alloc allocated (the caller has closed everything). */
void fp_free(struct fp *f);
/* Puts a NIC into slot with its TAP fd: its own table entries, counters reset. FP_OK or FP_EFULL. */
int fp_install_nic(struct fp *f, int slot, int fd, const struct fp_nic_spec *s);
/* Takes the NIC out of the tables and drops what it has parked (its fd is the caller's). */
void fp_uninstall_nic(struct fp *f, int slot);
/*
 * One frame an instance sent (also re-run for parked frames once their destination is
 * known); slot selects the buffer for its segments' headers. The frame must stay in
 * place until the transmit queues are flushed (segments point into it).
 */
void fp_from_tap(struct fp *f, int ni, struct rv_vnet_hdr *vh, uint8_t *frame, size_t len, int slot, bool rerun);
/*
 * Is VXLAN from underlay address addr (network order) accepted? When not, its datagrams
 * are counted (drop_unknown_peer) and the owner is told (upcall 4, at most once a second).
 */
bool fp_accept_from(struct fp *f, uint32_t addr, uint64_t datagrams);
/* Validates one VXLAN datagram; returns the NIC it is for (frame adjusted), or -1. */
int fp_decap(struct fp *f, uint8_t *p, size_t len, uint8_t **frame, size_t *flen);
/*
 * The first FP_DECAP_KEY bytes of a VXLAN datagram (its header, the inner MACs and the
 * tag or type) are all fp_decap's table lookups depend on: a datagram that starts like
 * one fp_decap accepted for NIC ni, with the tables unchanged since, gets the same answer
 * from fp_decap_again (which still checks the inner frame itself).
 */
#define FP_DECAP_KEY (RV_VXLAN_HLEN + 16)
int fp_decap_again(struct fp *f, int ni, uint8_t *p, size_t len, uint8_t **frame, size_t *flen);
/* Decapsulated frames of one receive batch, written to their TAPs (runs of one flow coalesced). */
struct fp_delivery { int nic; uint8_t *frame; size_t len; };
void fp_deliver(struct fp *f, struct fp_delivery *d, int nd);
/* The entry asking about (kind, vnet, key), whichever NIC of the vnet owns it. */
struct pending *fp_pending_find(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16]);
/* Drops the entry's parked frames, counting `reason` for the NICs still there (-1: none). */
void fp_pending_drop(struct fp *f, struct pending *p, int reason);
/* Parked frames whose destination is now known go out; expired ones are dropped. */
void fp_run_pending(struct fp *f);
/* A TAP to create (or re-attach to) in a namespace: what fp_tap_thread is given and answers. */
struct tap_req {
	const char *netns, *ifname;
	uint8_t mac[6];
	uint16_t mtu;
	uint16_t gso_max_segs; /* 0: the kernel's */
	bool vnethdr, persist, must_exist;
	unsigned offload;
	int fd, err;
	const char *step;
};
void *fp_tap_thread(void *arg);
/*
 * The most segments a superframe of a TAP with this MTU may have for all of them to go in
 * one UDP_SEGMENT send (FP_GSO_MAX bytes, FP_GSO_SEGS segments): without the cap, the
 * instance's TCP builds 64 KiB superframes (46 segments at MTU 1450) that need two sends,
 * the second of two segments, each a datagram through both nodes' stacks.
 */
uint16_t fp_tap_gso_segs(uint16_t mtu);
/* Sends what the transmit queues hold. */
void fp_flush(struct fp *f);
void fp_tap_write(struct fp *f, struct nic *n, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len);
/* A TAP is readable: its frames go through fp_from_tap and out (fp_tx.c). */
void fp_tap_ready(struct fp *f, int ni);
/* Tells the owner (the upcall function) about a miss or an unknown underlay source. */
void fp_upcall(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16]);
/* A frame whose destination (kind, vnet, key) is unknown: parked, and asked about once (fp_park.c). */
void fp_park(struct fp *f, int ni, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len, uint8_t kind,
	     uint32_t vnet, const uint8_t key[16]);
/* Every pending entry of the NIC's share (a removed NIC or a stopped engine): frames dropped. */
void fp_pending_release_all(struct fp *f, int ni);
void *fp_thread_main(void *arg);
/* A receive thread: arg is its struct rxq. */
void *fp_rx_main(void *arg);
/* Receives one batch on q (blocking until there is one, unless nonblocking) and forwards it. */
int fp_rx_batch(struct fp *f, struct rxq *q, bool nonblocking);
/* Control calls that change tables, NICs or peers: mu, then tabs for writing. */
void fp_lock_write(struct fp *f);
void fp_unlock_write(struct fp *f);
void fp_wake(struct fp *f);
int fp_cmp_u32(const void *a, const void *b);

#endif
