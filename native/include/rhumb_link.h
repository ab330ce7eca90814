#ifndef RHUMB_LINK_H
#define RHUMB_LINK_H
/*
 * rtnetlink for links, addresses and routes: what the kernel backend plumbs (vxlan
 * devices, bridges, veth pairs with one end born in an instance namespace, addresses and
 * routes inside it, bridge port flags), each one request on a request socket (rhumb_rtnl.h)
 * of the namespace it acts in. No Node-API here; native/src/links.c binds it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rhumb_rtnl.h"

/* A request under construction, with nested attributes. */
#define RL_MSG_MAX 2048
#define RL_MAX_NEST 6
struct rl_msg {
	union {
		struct nlmsghdr nh;
		uint8_t raw[RL_MSG_MAX];
	} u;
	size_t nest[RL_MAX_NEST];
	int depth;
	bool overflow; /* an attribute did not fit: the request is not sent */
};

void rl_init(struct rl_msg *m, uint16_t type, uint16_t flags, const void *fam, size_t famlen);
void rl_put(struct rl_msg *m, uint16_t type, const void *data, size_t len);
void rl_put_u8(struct rl_msg *m, uint16_t type, uint8_t v);
void rl_put_u32(struct rl_msg *m, uint16_t type, uint32_t v);
void rl_put_str(struct rl_msg *m, uint16_t type, const char *s);
void rl_nest(struct rl_msg *m, uint16_t type);
void rl_nest_end(struct rl_msg *m);
/* Raw bytes inside the current nest (VETH_INFO_PEER starts with a struct ifinfomsg). */
void rl_raw(struct rl_msg *m, const void *data, size_t len);
/* Sends m and waits for the ACK (cb: the replies before it). 0 or -errno; -EMSGSIZE on overflow. */
int rl_talk(rhumb_rtnl_req *r, struct rl_msg *m, rhumb_rtnl_reply_cb cb, void *ctx, rhumb_rtnl_error *e);

enum rl_kind { RL_VXLAN = 1, RL_BRIDGE, RL_VETH };

struct rl_vxlan {
	uint32_t vni;
	uint16_t port;      /* host order */
	uint8_t local[4];   /* network order */
	uint32_t link;      /* underlay ifindex; 0: none */
	bool learning, proxy, l2miss, l3miss;
};

struct rl_peer {
	char name[16];
	uint32_t mtu;       /* 0: the kernel's */
	bool has_mac;
	uint8_t mac[6];
	int netns_fd;       /* -1: this namespace */
};

struct rl_link {
	enum rl_kind kind;
	char name[16];
	uint32_t mtu;       /* 0: the kernel's */
	bool has_mac;
	uint8_t mac[6];
	uint32_t master;    /* ifindex; 0: none */
	uint32_t group;     /* IFLA_GROUP; 0: the default group */
	bool up;
	struct rl_vxlan vxlan;
	struct rl_peer peer;
};

/* Creates a link (NLM_F_EXCL: an existing name is EEXIST). */
int rl_link_add(rhumb_rtnl_req *r, const struct rl_link *l, rhumb_rtnl_error *e);

/* Changes of an existing link, by name. */
struct rl_change {
	int up;             /* -1 keep, 0 down, 1 up */
	int64_t master;     /* -1 keep, 0 none, else ifindex */
	uint32_t mtu;       /* 0 keep */
	uint32_t gso_max_segs; /* 0 keep (settable from Linux 5.19) */
	bool has_mac;
	uint8_t mac[6];
};
int rl_link_set(rhumb_rtnl_req *r, const char *name, const struct rl_change *c, rhumb_rtnl_error *e);

/* Deletes a link by name (a veth takes its peer along). -ENODEV when there is none. */
int rl_link_del(rhumb_rtnl_req *r, const char *name, rhumb_rtnl_error *e);

/*
 * Deletes a link by name in this namespace and returns once the kernel has unlisted it
 * (native/src/link_unlist.c): the rest of its teardown finishes on a detached thread.
 * -ENODEV when there is none.
 */
int rl_link_del_unlisted(const char *name, int timeout_ms, rhumb_rtnl_error *e);

/* Deletes every link of a group in one request (one wait for the kernel, not one per link); -ENODEV when none. */
int rl_group_del(rhumb_rtnl_req *r, uint32_t group, rhumb_rtnl_error *e);

/* A link's ifindex by name, or -ENODEV. */
int rl_link_index(rhumb_rtnl_req *r, const char *name, rhumb_rtnl_error *e);

struct rl_link_info {
	int32_t ifindex;
	char name[16];
	uint32_t mtu;
	uint32_t master;    /* 0: none */
	bool up;
	bool has_mac;
	uint8_t mac[6];
	char kind[16];      /* "" when the link has no IFLA_INFO_KIND */
	bool has_vni;
	uint32_t vni;
	bool has_vxlan_local;
	uint8_t vxlan_local[4]; /* IPv4 source address of a vxlan device */
};
/* Every link; cb(NULL) announces a restarted dump. */
typedef int (*rl_link_cb)(const struct rl_link_info *l, void *ctx);
int rl_link_dump(rhumb_rtnl_req *r, rl_link_cb cb, void *ctx, rhumb_rtnl_error *e);
/* Decodes an RTM_NEWLINK message; 0 or -EINVAL. */
int rl_parse_link(const struct nlmsghdr *nh, struct rl_link_info *out);

struct rl_addr_info {
	int32_t ifindex;
	uint8_t prefix;
	uint8_t addr[4];
};
typedef int (*rl_addr_cb)(const struct rl_addr_info *a, void *ctx);
/* Every IPv4 address; cb(NULL) announces a restarted dump. */
int rl_addr_dump(rhumb_rtnl_req *r, rl_addr_cb cb, void *ctx, rhumb_rtnl_error *e);

/* addr/prefix on ifindex (create or replace). */
int rl_addr_add(rhumb_rtnl_req *r, int32_t ifindex, const uint8_t addr[4], uint8_t prefix, rhumb_rtnl_error *e);

/* dst/prefix via gw (NULL: on-link, scope link) out of ifindex, main table, create or replace. */
int rl_route_replace(rhumb_rtnl_req *r, const uint8_t dst[4], uint8_t prefix, const uint8_t *gw, int32_t ifindex,
		     rhumb_rtnl_error *e);

/* An IPv4 or IPv6 address (family AF_INET or AF_INET6; 0: none), network order. */
struct rl_ip {
	uint8_t family;
	uint8_t addr[16];
};

/* The gateway's kernel state (native/src/rtnl_edge.c). Deletions name what to delete. */
/* addr/prefix on ifindex, noprefixroute (IPv6: nodad); add creates or replaces. */
int rl_addr_change(rhumb_rtnl_req *r, bool add, const struct rl_ip *a, uint8_t prefix, int32_t ifindex, rhumb_rtnl_error *e);
/* dst/prefix in table out of ifindex (scope link), preferred source src, route MTU mtu (0: none); add replaces. */
int rl_table_route_change(rhumb_rtnl_req *r, bool add, const struct rl_ip *dst, uint8_t prefix, uint32_t table,
			  int32_t ifindex, const struct rl_ip *src, uint32_t mtu, rhumb_rtnl_error *e);
/* pref P fwmark mark/mask lookup table (family AF_INET or AF_INET6); add is exclusive (EEXIST). */
int rl_rule_change(rhumb_rtnl_req *r, bool add, uint8_t family, uint32_t pref, uint32_t mark, uint32_t mask, uint32_t table,
		   rhumb_rtnl_error *e);

/* Bridge port flags of a port (-1 keep, 0 off, 1 on). */
int rl_brport_set(rhumb_rtnl_req *r, int32_t ifindex, int learning, int flood, rhumb_rtnl_error *e);

#endif
