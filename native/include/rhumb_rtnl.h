#ifndef RHUMB_RTNL_H
#define RHUMB_RTNL_H
/*
 * rtnetlink neighbour/FDB protocol layer: sockets, request building, ACK and dump
 * handling, message parsing. No Node-API in here; native/src/netlink.c (with
 * netlink_requests.c) binds it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>

#define RHUMB_RTNL_BUFSZ (64 * 1024)

typedef struct rhumb_rtnl_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t len;    /* 4 or 16 */
	uint8_t bytes[16];
} rhumb_rtnl_addr;

/* One RTM_{NEW,DEL,GET}NEIGH message, decoded. */
typedef struct rhumb_rtnl_neigh {
	uint16_t msg_type;
	uint8_t family; /* ndm_family: AF_INET, AF_INET6, AF_BRIDGE */
	int32_t ifindex;
	uint16_t state; /* NUD_* */
	uint8_t flags;  /* NTF_* */
	bool has_dst;
	rhumb_rtnl_addr dst;
	bool has_lladdr;
	uint8_t lladdr[6];
	bool has_port;
	uint16_t port; /* host order */
	bool has_vni;
	uint32_t vni;
	bool has_master;
	uint32_t master;
} rhumb_rtnl_neigh;

/* What a notification means for the agent. */
enum rhumb_rtnl_miss {
	RHUMB_MISS_NONE = 0,
	RHUMB_MISS_L2,           /* RTM_GETNEIGH with NDA_LLADDR only: where is this MAC? */
	RHUMB_MISS_L3,           /* RTM_GETNEIGH with NDA_DST: who has this IP? */
	RHUMB_MISS_L3_RESOLVING, /* RTM_NEWNEIGH of an IP entry that is resolving or went stale */
};

typedef struct rhumb_rtnl_error {
	int err;       /* positive errno */
	char msg[256]; /* kernel extended-ACK message, "" when none */
} rhumb_rtnl_error;

/* Synchronous request socket: one request in flight, answers matched by sequence. */
typedef struct rhumb_rtnl_req {
	int fd;
	uint32_t seq;
	uint32_t portid;
	uint8_t *buf; /* RHUMB_RTNL_BUFSZ */
} rhumb_rtnl_req;

/* Opens the request socket (blocking, receive timeout timeout_ms). Returns 0 or -errno. */
int rhumb_rtnl_req_open(rhumb_rtnl_req *r, int timeout_ms);
void rhumb_rtnl_req_close(rhumb_rtnl_req *r);

/* Opens a non-blocking socket joined to an rtnetlink group (RTNLGRP_NEIGH, RTNLGRP_LINK…). Returns the fd or -errno. */
int rhumb_rtnl_monitor_open(int group);

/* Request message under construction: header, ndmsg, attributes. */
typedef struct rhumb_rtnl_msg {
	union {
		struct nlmsghdr nh;
		uint8_t raw[512];
	} u;
} rhumb_rtnl_msg;

void rhumb_rtnl_msg_init(rhumb_rtnl_msg *m, uint16_t type, uint16_t flags, uint8_t family,
			 int32_t ifindex, uint16_t state, uint8_t ntf_flags);
int rhumb_rtnl_msg_put(rhumb_rtnl_msg *m, uint16_t type, const void *data, size_t len);

/* Sends m and waits for its ACK. Returns 0 or -errno (details in *e). */
int rhumb_rtnl_ack(rhumb_rtnl_req *r, rhumb_rtnl_msg *m, rhumb_rtnl_error *e);

/*
 * Sends any request (NLM_F_ACK is added) and waits for its ACK; the replies before it
 * (a GET's answer) go to cb when given. Returns 0 or -errno (details in *e).
 */
typedef void (*rhumb_rtnl_reply_cb)(const struct nlmsghdr *nh, void *ctx);
int rhumb_rtnl_exchange(rhumb_rtnl_req *r, struct nlmsghdr *req, rhumb_rtnl_reply_cb cb, void *ctx, rhumb_rtnl_error *e);

/*
 * Sends a dump request (NLM_F_DUMP is added) and calls cb with every message of the
 * answer; like rhumb_rtnl_dump for the rest (cb(NULL) announces a retry of an
 * interrupted dump, a non-zero return stops the callbacks and is returned).
 */
typedef int (*rhumb_rtnl_dump_raw_cb)(const struct nlmsghdr *nh, void *ctx);
int rhumb_rtnl_dump_raw(rhumb_rtnl_req *r, struct nlmsghdr *req, rhumb_rtnl_dump_raw_cb cb, void *ctx,
			rhumb_rtnl_error *e);

/*
 * Sends a dump request and calls cb for every neighbour message. A non-zero return from
 * cb stops further callbacks (the dump is still drained) and is returned. An interrupted
 * dump (NLM_F_DUMP_INTR) is retried a few times; cb(NULL, ctx) announces a retry, so
 * the caller drops what it collected so far.
 */
typedef int (*rhumb_rtnl_dump_cb)(const rhumb_rtnl_neigh *n, void *ctx);
int rhumb_rtnl_dump(rhumb_rtnl_req *r, uint8_t family, rhumb_rtnl_dump_cb cb, void *ctx,
		    rhumb_rtnl_error *e);

/* Decodes one neighbour message. Returns 0, or -EINVAL when malformed. */
int rhumb_rtnl_parse_neigh(const struct nlmsghdr *nh, rhumb_rtnl_neigh *out);

/* Classifies a notification (see enum rhumb_rtnl_miss). */
enum rhumb_rtnl_miss rhumb_rtnl_classify(const rhumb_rtnl_neigh *n);

/* "permanent", "reachable", ... for a NUD_* state. */
const char *rhumb_rtnl_state_name(uint16_t state);

#endif
