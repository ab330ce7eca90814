#ifndef RHUMB_LINKS_JOB_H
#define RHUMB_LINKS_JOB_H
/*
 * One call of the native plumbing (native/src/links.c reads its arguments into a job,
 * native/src/links_work.c does the work on the libuv thread pool and settles the Promise).
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "rhumb_link.h"

#define TIMEOUT_MS 5000
#define PATH_MAX_LEN 160
#define MAX_ROUTES 64
#define NFT_MAX_TEXT (4 << 20)

enum job_kind { J_LINK_ADD, J_LINK_SET, J_LINK_DEL, J_LINK_UNLIST, J_GROUP_DEL, J_LINK_LIST, J_ADDR_LIST, J_NS_CONFIGURE, J_BRPORT, J_NFT_APPLY, J_NFT_LIST, J_EDGE };

struct route_spec {
	uint8_t dst[4], prefix, gw[4];
	bool has_gw;
};

/* One change of the gateway's kernel state (edgeApply). */
#define MAX_EDGE_OPS 4096
struct edge_op {
	enum { EO_ADDR, EO_ROUTE, EO_RULE } what;
	bool add;
	char dev[16];       /* addr, route add */
	struct rl_ip ip;    /* addr: the address; route: dst */
	uint8_t prefix;
	uint32_t table;     /* route, rule */
	struct rl_ip src;   /* route add: preferred source (family 0: none) */
	uint32_t mtu;       /* route add: 0 none */
	uint8_t family;     /* rule */
	uint32_t pref, mark, mask;
};

struct ns_config {
	char ifname[16];
	bool has_addr;
	uint8_t addr[4], prefix;
	struct route_spec routes[MAX_ROUTES];
	int nroutes;
	bool has_gateway;
	uint8_t gateway[4];
};

struct job {
	napi_async_work work;
	napi_deferred deferred;
	enum job_kind kind;
	const char *method;
	char netns[PATH_MAX_LEN];   /* "" : this namespace */
	char name[16];
	char master[16];            /* linkAdd / linkSet: by name; "" none */
	bool master_given, master_none;
	char dev[16];               /* vxlan underlay device; "" none */
	struct rl_link link;
	struct rl_change change;
	struct ns_config cfg;
	int learning, flood;
	uint32_t group;             /* groupDel */
	char *text;
	struct edge_op *ops;        /* edgeApply */
	size_t nops, done_ops;
	/* results */
	int rc;
	const char *step;
	rhumb_rtnl_error e;
	int32_t ifindex;
	bool existed;
	struct rl_link_info *links;
	size_t nlinks, caplinks;
	struct rl_addr_info *addrs;
	size_t naddrs, capaddrs;
	char *out;
	char nfterr[2048];
};

/* A zeroed job of this kind; NULL when it threw (out of memory). */
struct job *rhumb_links_new_job(napi_env env, enum job_kind kind, const char *method);
/* Queues the job and returns its Promise; NULL when it threw (the job is freed either way on failure). */
napi_value rhumb_links_start(napi_env env, struct job *j);

#endif
