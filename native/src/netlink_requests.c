/*
 * The RtnlSocket methods that talk to the kernel (neighSet, neighDel, fdbSet, fdbDel,
 * neighList, fdbList) and ifIndex(name), with the reading of their arguments: the binding's
 * interface is described in native/src/netlink.c, which registers them.
 */
#include "rhumb_napi.h"
#include "rhumb_netlink_call.h"
#include "rhumb_napi_util.h"
#include "rhumb_rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

/* ---------- arguments ---------- */

/* Argument i, or NULL when it is absent, undefined or null. */
napi_value rhumb_nl_optional(const struct call *c, size_t i)
{
	return i < c->argc && !rhumb_is_nullish(c->env, c->argv[i]) ? c->argv[i] : NULL;
}

/* Reads a string argument into buf; throws a TypeError naming the argument. */
static bool arg_string(const struct call *c, napi_value v, const char *name, char *buf, size_t cap)
{
	napi_valuetype t;
	size_t len = 0;

	if (napi_typeof(c->env, v, &t) != napi_ok || t != napi_string) {
		rhumb_throw_type(c->env, "%s: %s must be a string", c->method, name);
		return false;
	}
	if (napi_get_value_string_utf8(c->env, v, NULL, 0, &len) != napi_ok || len + 1 > cap) {
		rhumb_throw_type(c->env, "%s: %s is too long", c->method, name);
		return false;
	}
	napi_get_value_string_utf8(c->env, v, buf, cap, &len);
	return true;
}

/* Integer in [min, max]: TypeError when not an integer number, RangeError when outside. */
static bool arg_uint(const struct call *c, napi_value v, const char *name, double min, double max, uint32_t *out)
{
	napi_valuetype t;
	double d;
	char what[128];

	if (napi_typeof(c->env, v, &t) != napi_ok || t != napi_number ||
	    napi_get_value_double(c->env, v, &d) != napi_ok || d != (double)(int64_t)d) {
		rhumb_throw_type(c->env, "%s: %s must be an integer", c->method, name);
		return false;
	}
	if (d < min || d > max) {
		snprintf(what, sizeof(what), "%s must be in [%.0f, %.0f], got %.0f", name, min, max, d);
		rhumb_throw_range(c->env, c->method, what);
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

bool rhumb_nl_arg_ifindex(const struct call *c, napi_value v, int32_t *out)
{
	uint32_t u;
	if (!arg_uint(c, v, "ifindex", 1, INT32_MAX, &u))
		return false;
	*out = (int32_t)u;
	return true;
}

static bool arg_ip(const struct call *c, napi_value v, const char *name, rhumb_rtnl_addr *a, char *text)
{
	if (!arg_string(c, v, name, text, INET6_ADDRSTRLEN + 1))
		return false;
	if (!rhumb_parse_ip(text, a)) {
		char what[96];
		snprintf(what, sizeof(what), "%s (an IPv4 or IPv6 address)", name);
		rhumb_throw_type(c->env, "%s: invalid %s", c->method, what);
		return false;
	}
	return true;
}

static bool arg_mac(const struct call *c, napi_value v, uint8_t mac[6])
{
	char text[32];
	if (!arg_string(c, v, "mac", text, sizeof(text)))
		return false;
	if (!rhumb_parse_mac(text, mac)) {
		rhumb_throw_type(c->env, "%s: mac must look like 'xx:xx:xx:xx:xx:xx'%s", c->method, "");
		return false;
	}
	return true;
}

/* 'permanent' | 'reachable' | undefined (permanent) */
static bool arg_state(const struct call *c, napi_value v, uint16_t *state)
{
	char text[16];
	*state = NUD_PERMANENT;
	if (!v || rhumb_is_nullish(c->env, v))
		return true;
	if (!arg_string(c, v, "state", text, sizeof(text)))
		return false;
	if (strcmp(text, "permanent") == 0)
		*state = NUD_PERMANENT;
	else if (strcmp(text, "reachable") == 0)
		*state = NUD_REACHABLE;
	else {
		rhumb_throw_type(c->env, "%s: state must be 'permanent' or 'reachable'%s", c->method, "");
		return false;
	}
	return true;
}

/* Optional numeric property of an options object; absent/undefined leaves *present false. */
static bool opt_uint(const struct call *c, napi_value obj, const char *key, double max, bool *present, uint32_t *out)
{
	napi_value v;
	bool has = false;

	*present = false;
	if (napi_has_named_property(c->env, obj, key, &has) != napi_ok || !has)
		return true;
	if (napi_get_named_property(c->env, obj, key, &v) != napi_ok)
		return false;
	if (rhumb_is_nullish(c->env, v))
		return true;
	if (!arg_uint(c, v, key, 0, max, out))
		return false;
	*present = true;
	return true;
}

/* The options of fdbSet / fdbDel: { port?, vni?, state? (fdbSet only), master? (fdbDel only) }. */
struct fdb_opts {
	bool has_port, has_vni, master;
	uint32_t port, vni;
	uint16_t state;
};

static bool arg_fdb_opts(const struct call *c, napi_value v, bool with_state, struct fdb_opts *o)
{
	napi_valuetype t;
	napi_value sv;
	bool has = false;
	char msg[96];

	*o = (struct fdb_opts){ .state = NUD_PERMANENT };
	if (!v)
		return true;
	if (napi_typeof(c->env, v, &t) != napi_ok || t != napi_object) {
		snprintf(msg, sizeof(msg), "%s: opts must be an object", c->method);
		napi_throw_type_error(c->env, "ERR_INVALID_ARG_TYPE", msg);
		return false;
	}
	if (!opt_uint(c, v, "port", 65535, &o->has_port, &o->port) ||
	    !opt_uint(c, v, "vni", (1 << 24) - 1, &o->has_vni, &o->vni))
		return false;
	if (with_state && napi_has_named_property(c->env, v, "state", &has) == napi_ok && has &&
	    (napi_get_named_property(c->env, v, "state", &sv) != napi_ok || !arg_state(c, sv, &o->state)))
		return false;
	has = false;
	if (!with_state && napi_has_named_property(c->env, v, "master", &has) == napi_ok && has &&
	    (napi_get_named_property(c->env, v, "master", &sv) != napi_ok || napi_get_value_bool(c->env, sv, &o->master) != napi_ok)) {
		snprintf(msg, sizeof(msg), "%s: opts.master must be a boolean", c->method);
		napi_throw_type_error(c->env, "ERR_INVALID_ARG_TYPE", msg);
		return false;
	}
	return true;
}

/* NDA_PORT and NDA_VNI when the options name them. */
static void put_port_vni(rhumb_rtnl_msg *m, const struct fdb_opts *o)
{
	if (o->has_port) {
		uint16_t be = htons((uint16_t)o->port);
		rhumb_rtnl_msg_put(m, NDA_PORT, &be, sizeof(be));
	}
	if (o->has_vni)
		rhumb_rtnl_msg_put(m, NDA_VNI, &o->vni, sizeof(o->vni));
}

/* ---------- requests ---------- */

/* Sends m, expects an ACK; throws on error. Returns false when it threw. */
static bool transact(napi_env env, rh_rtnl *r, rhumb_rtnl_msg *m, const char *what, const char *syscall)
{
	rhumb_rtnl_error e;
	if (rhumb_rtnl_ack(rhumb_nl_req(r), m, &e) == 0)
		return true;
	rhumb_throw_sys(env, what, syscall, e.err, e.msg);
	return false;
}

napi_value rhumb_nl_neigh_set(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr ip;
	char iptext[INET6_ADDRSTRLEN + 1], what[160];
	uint8_t mac[6];
	uint16_t state;
	rhumb_rtnl_msg m;

	if (!rhumb_nl_begin(env, info, "neighSet", 3, "neighSet(ifindex, ip, mac, state?)", &c) || !rhumb_nl_arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_ip(&c, c.argv[1], "ip", &ip, iptext) || !arg_mac(&c, c.argv[2], mac) || !arg_state(&c, rhumb_nl_optional(&c, 3), &state))
		return NULL;
	rhumb_rtnl_msg_init(&m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ip.family, ifindex, state, 0);
	rhumb_rtnl_msg_put(&m, NDA_DST, ip.bytes, ip.len);
	rhumb_rtnl_msg_put(&m, NDA_LLADDR, mac, 6);
	snprintf(what, sizeof(what), "neighSet(ifindex %d, %s)", ifindex, iptext);
	transact(env, c.r, &m, what, "RTM_NEWNEIGH");
	return NULL;
}

napi_value rhumb_nl_neigh_del(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr ip;
	char iptext[INET6_ADDRSTRLEN + 1], what[160];
	rhumb_rtnl_msg m;

	if (!rhumb_nl_begin(env, info, "neighDel", 2, "neighDel(ifindex, ip)", &c) || !rhumb_nl_arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_ip(&c, c.argv[1], "ip", &ip, iptext))
		return NULL;
	rhumb_rtnl_msg_init(&m, RTM_DELNEIGH, 0, ip.family, ifindex, 0, 0);
	rhumb_rtnl_msg_put(&m, NDA_DST, ip.bytes, ip.len);
	snprintf(what, sizeof(what), "neighDel(ifindex %d, %s)", ifindex, iptext);
	transact(env, c.r, &m, what, "RTM_DELNEIGH");
	return NULL;
}

napi_value rhumb_nl_fdb_set(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr dst;
	char dsttext[INET6_ADDRSTRLEN + 1], mactext[18], what[200];
	uint8_t mac[6];
	struct fdb_opts o;
	rhumb_rtnl_msg m;

	if (!rhumb_nl_begin(env, info, "fdbSet", 3, "fdbSet(ifindex, mac, dst, opts?)", &c) || !rhumb_nl_arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_mac(&c, c.argv[1], mac) || !arg_ip(&c, c.argv[2], "dst", &dst, dsttext) ||
	    !arg_fdb_opts(&c, rhumb_nl_optional(&c, 3), true, &o))
		return NULL;
	/* unicast: replace moves the MAC; zero/multicast entries are remote lists, the kernel
	 * refuses NLM_F_REPLACE for them (EOPNOTSUPP) and appends instead */
	rhumb_rtnl_msg_init(&m, RTM_NEWNEIGH,
			    NLM_F_CREATE | ((mac[0] & 1) || rhumb_is_zero_mac(mac) ? NLM_F_APPEND : NLM_F_REPLACE),
			    AF_BRIDGE, ifindex, o.state, NTF_SELF);
	rhumb_rtnl_msg_put(&m, NDA_LLADDR, mac, 6);
	rhumb_rtnl_msg_put(&m, NDA_DST, dst.bytes, dst.len);
	put_port_vni(&m, &o);
	rhumb_format_mac(mac, mactext);
	snprintf(what, sizeof(what), "fdbSet(ifindex %d, %s, dst %s)", ifindex, mactext, dsttext);
	transact(env, c.r, &m, what, "RTM_NEWNEIGH");
	return NULL;
}

napi_value rhumb_nl_fdb_del(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr dst;
	char dsttext[INET6_ADDRSTRLEN + 1] = "", mactext[18], what[200];
	uint8_t mac[6];
	napi_value dstv;
	struct fdb_opts o;
	rhumb_rtnl_msg m;

	if (!rhumb_nl_begin(env, info, "fdbDel", 2, "fdbDel(ifindex, mac, dst?, opts?)", &c) || !rhumb_nl_arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_mac(&c, c.argv[1], mac))
		return NULL;
	dstv = rhumb_nl_optional(&c, 2);
	if ((dstv && !arg_ip(&c, dstv, "dst", &dst, dsttext)) || !arg_fdb_opts(&c, rhumb_nl_optional(&c, 3), false, &o))
		return NULL;
	/* master: the entry the bridge learned on this port, not the device's own (NTF_SELF). */
	rhumb_rtnl_msg_init(&m, RTM_DELNEIGH, 0, AF_BRIDGE, ifindex, 0, o.master ? NTF_MASTER : NTF_SELF);
	rhumb_rtnl_msg_put(&m, NDA_LLADDR, mac, 6);
	if (dstv)
		rhumb_rtnl_msg_put(&m, NDA_DST, dst.bytes, dst.len);
	put_port_vni(&m, &o);
	rhumb_format_mac(mac, mactext);
	snprintf(what, sizeof(what), "fdbDel(ifindex %d, %s%s%s)", ifindex, mactext, dstv ? ", dst " : "", dsttext);
	transact(env, c.r, &m, what, "RTM_DELNEIGH");
	return NULL;
}

typedef struct dump_ctx {
	napi_env env;
	napi_value arr;
	uint32_t count;
	int32_t ifindex; /* 0 = all */
	bool fdb;
} dump_ctx;

static int dump_row(const rhumb_rtnl_neigh *n, void *arg)
{
	dump_ctx *c = arg;
	napi_env env = c->env;
	napi_value o;
	char ip[INET6_ADDRSTRLEN], mac[18];

	if (!n) { /* interrupted dump, starting again */
		c->count = 0;
		return napi_create_array(env, &c->arr) == napi_ok ? 0 : -ENOMEM;
	}
	if (c->ifindex && n->ifindex != c->ifindex)
		return 0;
	if (c->fdb ? (n->family != AF_BRIDGE || !n->has_lladdr)
		   : ((n->family != AF_INET && n->family != AF_INET6) || !n->has_dst))
		return 0;
	if (napi_create_object(env, &o) != napi_ok)
		return -ENOMEM;
	rhumb_set_num(env, o, "ifindex", n->ifindex);
	if (c->fdb) {
		rhumb_format_mac(n->lladdr, mac);
		rhumb_set_str(env, o, "mac", mac);
		if (n->has_dst) {
			rhumb_format_ip(&n->dst, ip);
			rhumb_set_str(env, o, "dst", ip);
		}
		if (n->has_port)
			rhumb_set_num(env, o, "port", n->port);
		if (n->has_vni)
			rhumb_set_num(env, o, "vni", n->vni);
		rhumb_set_str(env, o, "state", rhumb_rtnl_state_name(n->state));
		rhumb_set_bool(env, o, "self", (n->flags & NTF_SELF) != 0);
		if (n->has_master)
			rhumb_set_num(env, o, "masterIfindex", n->master);
	} else {
		rhumb_format_ip(&n->dst, ip);
		rhumb_set_str(env, o, "ip", ip);
		if (n->has_lladdr) {
			rhumb_format_mac(n->lladdr, mac);
			rhumb_set_str(env, o, "mac", mac);
		}
		rhumb_set_str(env, o, "state", rhumb_rtnl_state_name(n->state));
		rhumb_set_bool(env, o, "router", (n->flags & NTF_ROUTER) != 0);
	}
	return napi_set_element(env, c->arr, c->count++, o) == napi_ok ? 0 : -ENOMEM;
}

static napi_value dump(napi_env env, napi_callback_info info, bool fdb)
{
	struct call c;
	dump_ctx d = { .env = env, .fdb = fdb };
	rhumb_rtnl_error e;
	napi_value ifv;
	int rc;

	if (!rhumb_nl_begin(env, info, fdb ? "fdbList" : "neighList", 0, NULL, &c))
		return NULL;
	ifv = rhumb_nl_optional(&c, 0);
	if (ifv && !rhumb_nl_arg_ifindex(&c, ifv, &d.ifindex))
		return NULL;
	RHUMB_CHECK(env, napi_create_array(env, &d.arr));
	rc = rhumb_rtnl_dump(rhumb_nl_req(c.r), fdb ? AF_BRIDGE : AF_UNSPEC, dump_row, &d, &e);
	if (rc < 0) {
		bool pending = false;
		if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
			return NULL;
		rhumb_throw_sys(env, c.method, "RTM_GETNEIGH", e.err ? e.err : -rc, e.msg);
		return NULL;
	}
	return d.arr;
}

napi_value rhumb_nl_neigh_list(napi_env env, napi_callback_info info) { return dump(env, info, false); }
napi_value rhumb_nl_fdb_list(napi_env env, napi_callback_info info) { return dump(env, info, true); }

napi_value rhumb_nl_if_index(napi_env env, napi_callback_info info)
{
	struct call c = { .env = env, .method = "ifIndex", .argc = 1 };
	napi_value out;
	char name[IF_NAMESIZE + 8], what[64];
	unsigned idx;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &c.argc, c.argv, NULL, NULL));
	if (!arg_string(&c, c.argv[0], "name", name, sizeof(name)))
		return NULL;
	if (name[0] == '\0' || strlen(name) >= IF_NAMESIZE) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "ifIndex: name must be 1 to 15 characters");
		return NULL;
	}
	errno = 0;
	idx = if_nametoindex(name);
	if (idx == 0) {
		snprintf(what, sizeof(what), "ifIndex('%s')", name);
		rhumb_throw_sys(env, what, "if_nametoindex", errno ? errno : ENODEV, NULL);
		return NULL;
	}
	RHUMB_CHECK(env, napi_create_uint32(env, idx, &out));
	return out;
}
