#ifndef RHUMB_FP_H
#define RHUMB_FP_H
/*
 * The userspace VXLAN forwarding engine, without Node-API: TAP devices (one per NIC,
 * created inside the instance's namespace), UDP sockets on the underlay address, one
 * forwarding thread, and the tables its owner writes in batches. Misses reach the owner
 * through an upcall function called on the forwarding thread.
 *
 * native/src/fp_engine.c moves the frames, native/src/fp_control.c is this interface,
 * native/src/fastpath.c binds it to JavaScript (class FastPath).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_MAX_NICS 256
#define FP_MAX_PEERS 65536
#define FP_RECORD 32 /* bytes per table record (fp_update, fp_entries) */

/* Results of the control calls; FP_ESYS leaves errno and the failed step in struct fp_error. */
enum {
	FP_OK = 0,
	FP_ESYS = -1,
	FP_ETOO_MANY = -2, /* no free NIC slot / too many peers */
	FP_EFULL = -3,     /* the tables are (3/4) full */
	FP_EBADOP = -4,    /* an update record with an unknown operation */
	FP_ENOENT = -5,    /* no such NIC */
	FP_ENOMEM = -6,
};

struct fp_error {
	int err;          /* errno */
	const char *step; /* what failed ("open netns", "TUNSETIFF", "bind underlay UDP socket", ...) */
};

/* kind 2: MAC (key: 6 bytes, zero-padded), 3: IP (16 bytes, IPv4-mapped for v4) on vnet;
 * 4: VXLAN arrived from an unknown underlay address (key: it, IPv4-mapped; vnet 0). */
typedef void (*fp_upcall_fn)(void *ctx, uint8_t kind, uint32_t vnet, const uint8_t key[16]);

struct fp_options {
	uint8_t underlay_ip[4];
	uint16_t port;         /* 0: ephemeral */
	uint16_t underlay_mtu; /* at least 576 + 50 */
	bool tso, uso, gso, gro, coalesce, mmsg; /* wanted; each is used only when probed */
	int threads;           /* FP_THREADS_*: who receives from the underlay */
};

/*
 * Receive threads (FP_THREADS_SPLIT, the default) let the two directions run on different
 * CPUs. FP_THREADS_ONE has the transmit thread receive too: fewer wakeups and hand-offs (an
 * instance's ACK written by one thread, read by another) and ~10% less CPU per byte under
 * iperf3 on 2 CPUs, but fewer threads also get less of CPUs shared with busy neighbours
 * (bench/dataplane on a loaded machine: lower throughput), so it is asked for, not chosen.
 */
enum { FP_THREADS_SPLIT = 0, FP_THREADS_ONE = 1 };

struct fp_offloads {
	bool vnethdr, tso, uso, gso, gro, coalesce, mmsg;
	bool probed_tso, probed_uso, probed_gso, probed_gro;
	bool one_thread; /* the transmit thread also receives (no receive threads) */
};

struct fp_nic_spec {
	const char *netns;  /* '' or NULL: this process's namespace */
	const char *ifname;
	uint8_t mac[6];
	uint8_t ip[16];     /* the NIC's address as a table key: IPv6, or IPv4-mapped */
	uint32_t vnet;
	uint16_t vlan;
	int mtu;            /* < 0: the underlay MTU - 50 */
	bool allow_mac, allow_ip;
	bool shared_mac;    /* a gateway port: every node's has this MAC, frames from it may arrive */
	bool persist;       /* TUNSETPERSIST: the TAP outlives this process */
	bool reattach;      /* attach to the existing TAP of that name */
};

struct fp;

/* Probes the offloads, binds the sockets, starts the forwarding thread. NULL on failure (*e). */
struct fp *fp_open(const struct fp_options *o, fp_upcall_fn upcall, void *ctx, struct fp_error *e);
/* Stops the thread and closes every descriptor (no upcall after it returns); idempotent. */
void fp_close(struct fp *f);
bool fp_is_closed(const struct fp *f);
/* fp_close, then frees everything. */
void fp_destroy(struct fp *f);

/* The NIC's id (>= 0), or FP_ESYS (*e), FP_ETOO_MANY, FP_EFULL. */
int fp_add_nic(struct fp *f, const struct fp_nic_spec *s, struct fp_error *e);
/* Removes the NIC and its TAP (persistent or not). FP_OK or FP_ENOENT. */
int fp_remove_nic(struct fp *f, int id);
bool fp_nic_exists(struct fp *f, int id);

/*
 * FP_RECORD-byte records, applied all or nothing under one lock hold:
 *   [0] op: 1 l2set, 2 l2del, 3 l3set, 4 l3del, 5 l2notfound, 6 l3notfound
 *   [2..4) fabric VLAN of the named NIC (LE; l2set, l3set)
 *   [4..8) vnet (LE) [8..14) mac [16..32) address (IPv6 or IPv4-mapped; l2set: underlay at 28..32)
 * FP_OK, FP_EBADOP or FP_EFULL.
 */
int fp_update(struct fp *f, const uint8_t *records, size_t len);
/* The vnet's remote l2set and l3set records in a malloc'd buffer (*out, *len). */
int fp_entries(struct fp *f, uint32_t vnet, uint8_t **out, size_t *len);
/* The underlay addresses (4 bytes each, network order) VXLAN is accepted from. */
int fp_set_peers(struct fp *f, const uint8_t *addrs, size_t n);
/* Writes frame into every other local TAP of the vnet on the VLAN of its source MAC. */
void fp_inject(struct fp *f, uint32_t vnet, const uint8_t *frame, size_t len);

extern const char *const fp_counter_names[];
size_t fp_counter_count(void);
/* The NIC's counters (id >= 0) or the engine's (id < 0) into out[fp_counter_count()]. */
int fp_counters(struct fp *f, int id, uint64_t *out);
void fp_get_offloads(const struct fp *f, struct fp_offloads *out);

#endif
