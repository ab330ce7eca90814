/*
 * Node-API binding of the native plumbing: links, addresses and routes over rtnetlink
 * (rhumb_link.h) and nftables batches (rhumb_nft.h), without spawning a process. Every
 * call returns a Promise; the work runs on the libuv thread pool, and whatever must happen
 * inside an instance namespace runs on a helper thread that entered it (rhumb_netns.h).
 * Arguments are checked here, before any work starts: a bad name, path or address is a
 * TypeError and nothing is touched.
 *
 *   linkAdd({ kind: 'vxlan'|'bridge'|'veth', name, mtu?, mac?, master?, up?, group?,
 *             vxlan?: { vni, port, local, dev?, learning?, proxy?, l2miss?, l3miss? },
 *             peer?: { name, mtu?, mac?, netns? } })              -> ifindex
 *   linkSet(name, { up?, master?: name | null, mtu?, mac? })
 *   linkDel(name)                                                    -> false when absent
 *   linkDelGroup(group)     every link of the group at once          -> false when none
 *   linkList(netns?)        -> [{ ifindex, name, mtu, master?, up, mac?, kind?, vni? }]
 *   addrList()              -> [{ ifindex, address, prefix }]        (IPv4)
 *   netnsConfigure(netns, { ifname, address?: { ip, prefix }, routes?: [{ dst, prefix, via? }], gateway? })
 *                           lo up, the address, the interface up, routes, default route
 *   bridgePort(name, { learning?, flood? })
 *   nftApply(netns | null, text)                                     one atomic batch
 *   nftList(netns | null, command)                                   -> nft's output
 *
 * Failures reject with an Error whose code is the errno name (ERR_NFT for a ruleset
 * nftables refused), with errno, syscall (the step that failed) and the kernel's message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhumb_links.h"
#include "rhumb_links_job.h"
#include "rhumb_napi_util.h"
#include "rhumb_netns.h"

/* ---- reading arguments ----------------------------------------------------------------- */

/* obj[key] when present and not undefined/null; NULL otherwise (or when it threw). */
static napi_value prop(napi_env env, napi_value obj, const char *key)
{
	bool has = false;
	napi_value v;
	if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has)
		return NULL;
	if (napi_get_named_property(env, obj, key, &v) != napi_ok || rhumb_is_nullish(env, v))
		return NULL;
	return v;
}

static bool get_string(napi_env env, const char *method, napi_value v, const char *what, char *buf, size_t cap)
{
	napi_valuetype t;
	size_t len = 0;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
		rhumb_throw_type(env, "%s: %s must be a string", method, what);
		return false;
	}
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len + 1 > cap) {
		rhumb_throw_type(env, "%s: %s is too long", method, what);
		return false;
	}
	napi_get_value_string_utf8(env, v, buf, cap, &len);
	if (strlen(buf) != len) { /* an embedded NUL */
		rhumb_throw_type(env, "%s: %s holds a NUL character", method, what);
		return false;
	}
	return true;
}

static bool get_uint(napi_env env, const char *method, napi_value v, const char *what, double min, double max, uint32_t *out)
{
	napi_valuetype t;
	double d;
	char msg[160];
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
	    d != (double)(int64_t)d) {
		rhumb_throw_type(env, "%s: %s must be an integer", method, what);
		return false;
	}
	if (d < min || d > max) {
		snprintf(msg, sizeof(msg), "%s must be in [%.0f, %.0f], got %.0f", what, min, max, d);
		rhumb_throw_range(env, method, msg);
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

static bool get_bool(napi_env env, const char *method, napi_value v, const char *what, bool *out)
{
	if (napi_get_value_bool(env, v, out) != napi_ok) {
		rhumb_throw_type(env, "%s: %s must be a boolean", method, what);
		return false;
	}
	return true;
}

static bool get_ifname(napi_env env, const char *method, napi_value v, const char *what, char out[16])
{
	char buf[64];
	if (!get_string(env, method, v, what, buf, sizeof(buf)))
		return false;
	if (!rhumb_ifname_ok(buf)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s: %s must be 1-15 letters, digits, '_', '.' or '-' (not '.', '..' or a leading '-')",
			 method, what);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return false;
	}
	memcpy(out, buf, strlen(buf) + 1);
	return true;
}

static bool get_netns(napi_env env, const char *method, napi_value v, char out[PATH_MAX_LEN])
{
	if (!get_string(env, method, v, "netns", out, PATH_MAX_LEN))
		return false;
	if (!rhumb_netns_path_ok(out)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s: netns must be /run/netns/NAME, /var/run/netns/NAME, /proc/PID/ns/net or a Docker sandbox key (.../netns/ID)", method);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return false;
	}
	return true;
}

static bool get_mac(napi_env env, const char *method, napi_value v, uint8_t mac[6])
{
	char buf[32];
	if (!get_string(env, method, v, "mac", buf, sizeof(buf)))
		return false;
	if (!rhumb_parse_mac(buf, mac) || (mac[0] & 1) || rhumb_is_zero_mac(mac)) {
		rhumb_throw_type(env, "%s: mac must be a unicast 'xx:xx:xx:xx:xx:xx'%s", method, "");
		return false;
	}
	return true;
}

static bool get_ipv4(napi_env env, const char *method, napi_value v, const char *what, uint8_t out[4])
{
	char buf[64];
	if (!get_string(env, method, v, what, buf, sizeof(buf)))
		return false;
	if (inet_pton(AF_INET, buf, out) != 1) {
		rhumb_throw_type(env, "%s: %s must be an IPv4 address", method, what);
		return false;
	}
	return true;
}

/* Optional property helpers: true when absent or read; false when it threw. */
#define OPT(env, obj, key, getter)                                  \
	({                                                          \
		napi_value _v = prop((env), (obj), (key));          \
		bool _ok = true;                                    \
		if (_v)                                             \
			_ok = (getter);                             \
		_ok;                                                \
	})

static bool is_object(napi_env env, napi_value v)
{
	napi_valuetype t;
	return v && napi_typeof(env, v, &t) == napi_ok && t == napi_object;
}

/* Reads up to n arguments; throws when fewer than `required` were given. */
static bool args(napi_env env, napi_callback_info info, const char *usage, size_t required, size_t n, napi_value *argv, size_t *argc)
{
	*argc = n;
	if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok)
		return false;
	if (*argc < required) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s needs %zu argument%s", usage, required, required == 1 ? "" : "s");
		napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
		return false;
	}
	return true;
}

/* ---- the functions ---------------------------------------------------------------------- */

static bool read_vxlan(napi_env env, const char *m, napi_value v, struct job *j)
{
	struct rl_vxlan *x = &j->link.vxlan;
	uint32_t u;
	napi_value f;
	if (!is_object(env, v)) {
		rhumb_throw_type(env, "%s: a vxlan link needs vxlan: { vni, port, local, ... }%s", m, "");
		return false;
	}
	x->learning = false;
	x->proxy = x->l2miss = x->l3miss = true;
	if (!(f = prop(env, v, "vni")) || !get_uint(env, m, f, "vxlan.vni", 0, 0xffffff, &x->vni))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "vxlan.vni"), false);
	if (!(f = prop(env, v, "local")) || !get_ipv4(env, m, f, "vxlan.local", x->local))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "vxlan.local"), false);
	x->port = 4789;
	if (!OPT(env, v, "port", get_uint(env, m, _v, "vxlan.port", 1, 65535, &u)))
		return false;
	if (prop(env, v, "port"))
		x->port = (uint16_t)u;
	return OPT(env, v, "dev", get_ifname(env, m, _v, "vxlan.dev", j->dev)) &&
	       OPT(env, v, "learning", get_bool(env, m, _v, "vxlan.learning", &x->learning)) &&
	       OPT(env, v, "proxy", get_bool(env, m, _v, "vxlan.proxy", &x->proxy)) &&
	       OPT(env, v, "l2miss", get_bool(env, m, _v, "vxlan.l2miss", &x->l2miss)) &&
	       OPT(env, v, "l3miss", get_bool(env, m, _v, "vxlan.l3miss", &x->l3miss));
}

static bool read_peer(napi_env env, const char *m, napi_value v, struct job *j)
{
	struct rl_peer *p = &j->link.peer;
	napi_value f;
	if (!is_object(env, v)) {
		rhumb_throw_type(env, "%s: a veth link needs peer: { name, ... }%s", m, "");
		return false;
	}
	if (!(f = prop(env, v, "name")))
		return rhumb_throw_type(env, "%s: %s is required", m, "peer.name"), false;
	if (!get_ifname(env, m, f, "peer.name", p->name))
		return false;
	p->has_mac = prop(env, v, "mac") != NULL;
	return OPT(env, v, "mtu", get_uint(env, m, _v, "peer.mtu", 68, 65535, &p->mtu)) &&
	       OPT(env, v, "mac", get_mac(env, m, _v, p->mac)) && OPT(env, v, "netns", get_netns(env, m, _v, j->netns));
}

static napi_value js_link_add(napi_env env, napi_callback_info info)
{
	const char *m = "linkAdd";
	napi_value argv[1], f;
	size_t argc;
	char kind[16];
	struct job *j;

	if (!args(env, info, "linkAdd(spec)", 1, 1, argv, &argc))
		return NULL;
	if (!is_object(env, argv[0])) {
		rhumb_throw_type(env, "%s: spec must be an object%s", m, "");
		return NULL;
	}
	if (!(j = rhumb_links_new_job(env, J_LINK_ADD, m)))
		return NULL;
	if (!(f = prop(env, argv[0], "kind")) || !get_string(env, m, f, "kind", kind, sizeof(kind)))
		goto bad_kind;
	if (strcmp(kind, "vxlan") == 0)
		j->link.kind = RL_VXLAN;
	else if (strcmp(kind, "bridge") == 0)
		j->link.kind = RL_BRIDGE;
	else if (strcmp(kind, "veth") == 0)
		j->link.kind = RL_VETH;
	else
		goto bad_kind;
	if (!(f = prop(env, argv[0], "name"))) {
		rhumb_throw_type(env, "%s: %s is required", m, "name");
		goto fail;
	}
	j->link.has_mac = prop(env, argv[0], "mac") != NULL;
	if (!get_ifname(env, m, f, "name", j->link.name) ||
	    !OPT(env, argv[0], "mtu", get_uint(env, m, _v, "mtu", 68, 65535, &j->link.mtu)) ||
	    !OPT(env, argv[0], "mac", get_mac(env, m, _v, j->link.mac)) ||
	    !OPT(env, argv[0], "master", get_ifname(env, m, _v, "master", j->master)) ||
	    !OPT(env, argv[0], "up", get_bool(env, m, _v, "up", &j->link.up)) ||
	    !OPT(env, argv[0], "group", get_uint(env, m, _v, "group", 1, 4294967295.0, &j->link.group)))
		goto fail;
	if (j->link.kind == RL_VXLAN && !read_vxlan(env, m, prop(env, argv[0], "vxlan"), j))
		goto fail;
	if (j->link.kind == RL_VETH && !read_peer(env, m, prop(env, argv[0], "peer"), j))
		goto fail;
	return rhumb_links_start(env, j);
bad_kind:
	{
		bool pending = false;
		napi_is_exception_pending(env, &pending);
		if (!pending)
			rhumb_throw_type(env, "%s: kind must be 'vxlan', 'bridge' or 'veth'%s", m, "");
	}
fail:
	free(j);
	return NULL;
}

static napi_value js_link_set(napi_env env, napi_callback_info info)
{
	const char *m = "linkSet";
	napi_value argv[2], mv;
	size_t argc;
	bool has_master = false, up = false;
	struct job *j;

	if (!args(env, info, "linkSet(name, changes)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_LINK_SET, m)))
		return NULL;
	j->change.up = -1;
	if (!get_ifname(env, m, argv[0], "name", j->name) || !is_object(env, argv[1]))
		goto fail;
	j->change.has_mac = prop(env, argv[1], "mac") != NULL;
	if (!OPT(env, argv[1], "mtu", get_uint(env, m, _v, "mtu", 68, 65535, &j->change.mtu)) ||
	    !OPT(env, argv[1], "mac", get_mac(env, m, _v, j->change.mac)) ||
	    !OPT(env, argv[1], "up", get_bool(env, m, _v, "up", &up)))
		goto fail;
	if (prop(env, argv[1], "up"))
		j->change.up = up ? 1 : 0;
	/* master: a name, or null to leave the bridge; absent: unchanged. */
	if (napi_has_named_property(env, argv[1], "master", &has_master) == napi_ok && has_master &&
	    napi_get_named_property(env, argv[1], "master", &mv) == napi_ok) {
		napi_valuetype t;
		napi_typeof(env, mv, &t);
		if (t == napi_null) {
			j->master_none = true;
		} else if (t != napi_undefined) {
			if (!get_ifname(env, m, mv, "master", j->master))
				goto fail;
			j->master_given = true;
		}
	}
	return rhumb_links_start(env, j);
fail:
	{
		bool pending = false;
		napi_is_exception_pending(env, &pending);
		if (!pending)
			rhumb_throw_type(env, "%s: changes must be an object%s", m, "");
	}
	free(j);
	return NULL;
}

static napi_value js_link_del(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!args(env, info, "linkDel(name)", 1, 1, argv, &argc) || !(j = rhumb_links_new_job(env, J_LINK_DEL, "linkDel")))
		return NULL;
	if (!get_ifname(env, "linkDel", argv[0], "name", j->name)) {
		free(j);
		return NULL;
	}
	return rhumb_links_start(env, j);
}

static napi_value js_link_del_unlisted(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!args(env, info, "linkDelUnlisted(name)", 1, 1, argv, &argc) ||
	    !(j = rhumb_links_new_job(env, J_LINK_UNLIST, "linkDelUnlisted")))
		return NULL;
	if (!get_ifname(env, "linkDelUnlisted", argv[0], "name", j->name)) {
		free(j);
		return NULL;
	}
	return rhumb_links_start(env, j);
}

static napi_value js_link_del_group(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!args(env, info, "linkDelGroup(group)", 1, 1, argv, &argc) || !(j = rhumb_links_new_job(env, J_GROUP_DEL, "linkDelGroup")))
		return NULL;
	/* Group 0 is every device's default: never deleted wholesale. */
	if (!get_uint(env, "linkDelGroup", argv[0], "group", 1, 4294967295.0, &j->group)) {
		free(j);
		return NULL;
	}
	snprintf(j->name, sizeof(j->name), "group %u", j->group);
	return rhumb_links_start(env, j);
}

static napi_value js_link_list(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!args(env, info, "linkList(netns?)", 0, 1, argv, &argc) || !(j = rhumb_links_new_job(env, J_LINK_LIST, "linkList")))
		return NULL;
	if (argc >= 1 && !rhumb_is_nullish(env, argv[0]) && !get_netns(env, "linkList", argv[0], j->netns)) {
		free(j);
		return NULL;
	}
	return rhumb_links_start(env, j);
}

static napi_value js_addr_list(napi_env env, napi_callback_info info)
{
	struct job *j = rhumb_links_new_job(env, J_ADDR_LIST, "addrList");
	(void)info;
	return j ? rhumb_links_start(env, j) : NULL;
}

/* "a.b.c.d" and a prefix into dst (host bits must be zero, as for a route). */
static bool read_route(napi_env env, const char *m, napi_value v, struct route_spec *r)
{
	napi_value f;
	uint32_t prefix;
	if (!is_object(env, v)) {
		rhumb_throw_type(env, "%s: a route must be { dst, prefix, via? }%s", m, "");
		return false;
	}
	if (!(f = prop(env, v, "dst")) || !get_ipv4(env, m, f, "route dst", r->dst))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "route dst"), false);
	if (!(f = prop(env, v, "prefix")) || !get_uint(env, m, f, "route prefix", 0, 32, &prefix))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "route prefix"), false);
	r->prefix = (uint8_t)prefix;
	r->has_gw = prop(env, v, "via") != NULL;
	return OPT(env, v, "via", get_ipv4(env, m, _v, "route via", r->gw));
}

static napi_value js_netns_configure(napi_env env, napi_callback_info info)
{
	const char *m = "netnsConfigure";
	napi_value argv[2], f, routes;
	size_t argc;
	uint32_t n = 0, prefix;
	bool is_arr = false;
	struct job *j;

	if (!args(env, info, "netnsConfigure(netns, config)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_NS_CONFIGURE, m)))
		return NULL;
	if (!get_netns(env, m, argv[0], j->netns))
		goto fail;
	if (!is_object(env, argv[1])) {
		rhumb_throw_type(env, "%s: config must be an object%s", m, "");
		goto fail;
	}
	if (!(f = prop(env, argv[1], "ifname"))) {
		rhumb_throw_type(env, "%s: %s is required", m, "ifname");
		goto fail;
	}
	if (!get_ifname(env, m, f, "ifname", j->cfg.ifname))
		goto fail;
	if ((f = prop(env, argv[1], "address"))) {
		napi_value ip, pf;
		if (!is_object(env, f) || !(ip = prop(env, f, "ip")) || !(pf = prop(env, f, "prefix"))) {
			rhumb_throw_type(env, "%s: address must be { ip, prefix }%s", m, "");
			goto fail;
		}
		if (!get_ipv4(env, m, ip, "address.ip", j->cfg.addr) || !get_uint(env, m, pf, "address.prefix", 0, 32, &prefix))
			goto fail;
		j->cfg.prefix = (uint8_t)prefix;
		j->cfg.has_addr = true;
	}
	if ((routes = prop(env, argv[1], "routes"))) {
		if (napi_is_array(env, routes, &is_arr) != napi_ok || !is_arr || napi_get_array_length(env, routes, &n) != napi_ok ||
		    n > MAX_ROUTES) {
			rhumb_throw_type(env, "%s: routes must be an array of at most 64 routes%s", m, "");
			goto fail;
		}
		for (uint32_t i = 0; i < n; i++) {
			napi_value r;
			if (napi_get_element(env, routes, i, &r) != napi_ok || !read_route(env, m, r, &j->cfg.routes[i]))
				goto fail;
		}
		j->cfg.nroutes = (int)n;
	}
	j->cfg.has_gateway = prop(env, argv[1], "gateway") != NULL;
	if (!OPT(env, argv[1], "gateway", get_ipv4(env, m, _v, "gateway", j->cfg.gateway)))
		goto fail;
	return rhumb_links_start(env, j);
fail:
	free(j);
	return NULL;
}

static napi_value js_bridge_port(napi_env env, napi_callback_info info)
{
	const char *m = "bridgePort";
	napi_value argv[2];
	size_t argc;
	bool learning = false, flood = false;
	struct job *j;
	if (!args(env, info, "bridgePort(name, flags)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_BRPORT, m)))
		return NULL;
	if (!get_ifname(env, m, argv[0], "name", j->name) || !is_object(env, argv[1]) ||
	    !OPT(env, argv[1], "learning", get_bool(env, m, _v, "learning", &learning)) ||
	    !OPT(env, argv[1], "flood", get_bool(env, m, _v, "flood", &flood))) {
		bool pending = false;
		napi_is_exception_pending(env, &pending);
		if (!pending)
			rhumb_throw_type(env, "%s: flags must be an object%s", m, "");
		free(j);
		return NULL;
	}
	j->learning = prop(env, argv[1], "learning") ? learning : -1;
	j->flood = prop(env, argv[1], "flood") ? flood : -1;
	return rhumb_links_start(env, j);
}

/* An IPv4 or IPv6 address. */
static bool get_ip(napi_env env, const char *m, napi_value v, const char *what, struct rl_ip *out)
{
	char buf[64];
	if (!get_string(env, m, v, what, buf, sizeof(buf)))
		return false;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
		out->family = AF_INET6;
	else {
		rhumb_throw_type(env, "%s: %s must be an IP address", m, what);
		return false;
	}
	return true;
}

/* A required property read by getter (`_v` in it); throws when absent. */
#define REQ(env, obj, key, m, getter)                                                    \
	({                                                                               \
		napi_value _v = prop((env), (obj), (key));                               \
		bool _ok = _v != NULL;                                                   \
		if (!_ok)                                                                \
			rhumb_throw_type((env), "%s: %s is required", (m), (key));       \
		else                                                                     \
			_ok = (getter);                                                  \
		_ok;                                                                     \
	})

/* { op: 'addr' | 'route' | 'rule', add, … } (src/dataplane/links.ts EdgeOp). */
static bool read_edge_op(napi_env env, const char *m, napi_value v, struct edge_op *o)
{
	char kind[8];
	uint32_t u = 0;
	if (!is_object(env, v)) {
		rhumb_throw_type(env, "%s: each change must be an object%s", m, "");
		return false;
	}
	if (!REQ(env, v, "op", m, get_string(env, m, _v, "op", kind, sizeof(kind))) || !REQ(env, v, "add", m, get_bool(env, m, _v, "add", &o->add)))
		return false;
	if (strcmp(kind, "rule") == 0) {
		o->what = EO_RULE;
		if (!REQ(env, v, "family", m, get_uint(env, m, _v, "family", 4, 6, &u)) || (u != 4 && u != 6)) {
			if (u == 5)
				rhumb_throw_type(env, "%s: family must be 4 or 6%s", m, "");
			return false;
		}
		o->family = u == 6 ? AF_INET6 : AF_INET;
		return REQ(env, v, "pref", m, get_uint(env, m, _v, "pref", 0, 4294967295.0, &o->pref)) &&
		       REQ(env, v, "mark", m, get_uint(env, m, _v, "mark", 0, 4294967295.0, &o->mark)) &&
		       REQ(env, v, "mask", m, get_uint(env, m, _v, "mask", 0, 4294967295.0, &o->mask)) &&
		       REQ(env, v, "table", m, get_uint(env, m, _v, "table", 1, 4294967295.0, &o->table));
	}
	if (strcmp(kind, "addr") == 0) {
		o->what = EO_ADDR;
		if (!REQ(env, v, "dev", m, get_ifname(env, m, _v, "dev", o->dev)) || !REQ(env, v, "address", m, get_ip(env, m, _v, "address", &o->ip)))
			return false;
	} else if (strcmp(kind, "route") == 0) {
		o->what = EO_ROUTE;
		if (!REQ(env, v, "dst", m, get_ip(env, m, _v, "dst", &o->ip)) ||
		    !REQ(env, v, "table", m, get_uint(env, m, _v, "table", 1, 4294967295.0, &o->table)) ||
		    (o->add && !REQ(env, v, "dev", m, get_ifname(env, m, _v, "dev", o->dev))) ||
		    !OPT(env, v, "src", get_ip(env, m, _v, "src", &o->src)) ||
		    !OPT(env, v, "mtu", get_uint(env, m, _v, "mtu", 68, 65535, &o->mtu)))
			return false;
		if (o->src.family && o->src.family != o->ip.family) {
			rhumb_throw_type(env, "%s: a route's src must be of its dst's family%s", m, "");
			return false;
		}
	} else {
		rhumb_throw_type(env, "%s: op must be addr, route or rule%s", m, "");
		return false;
	}
	if (!REQ(env, v, "prefix", m, get_uint(env, m, _v, "prefix", 0, o->ip.family == AF_INET6 ? 128 : 32, &u)))
		return false;
	o->prefix = (uint8_t)u;
	return true;
}

/* edgeApply(changes): the gateway's addresses, table routes and rules, in order, one request each. */
static napi_value js_edge_apply(napi_env env, napi_callback_info info)
{
	const char *m = "edgeApply";
	napi_value argv[1];
	size_t argc;
	uint32_t n = 0;
	bool is_arr = false;
	struct job *j;
	if (!args(env, info, "edgeApply(changes)", 1, 1, argv, &argc))
		return NULL;
	if (napi_is_array(env, argv[0], &is_arr) != napi_ok || !is_arr || napi_get_array_length(env, argv[0], &n) != napi_ok || n > MAX_EDGE_OPS) {
		rhumb_throw_type(env, "%s: changes must be an array of at most 4096 changes%s", m, "");
		return NULL;
	}
	if (!(j = rhumb_links_new_job(env, J_EDGE, m)))
		return NULL;
	j->ops = calloc(n ? n : 1, sizeof(*j->ops));
	if (!j->ops) {
		free(j);
		napi_throw_error(env, "ENOMEM", "native plumbing: out of memory");
		return NULL;
	}
	j->nops = n;
	for (uint32_t i = 0; i < n; i++) {
		napi_value o;
		if (napi_get_element(env, argv[0], i, &o) != napi_ok || !read_edge_op(env, m, o, &j->ops[i])) {
			free(j->ops);
			free(j);
			return NULL;
		}
	}
	return rhumb_links_start(env, j);
}

static napi_value nft_call(napi_env env, napi_callback_info info, enum job_kind kind, const char *m)
{
	napi_value argv[2];
	size_t argc, len = 0;
	napi_valuetype t;
	struct job *j;

	if (!args(env, info, kind == J_NFT_APPLY ? "nftApply(netns, text)" : "nftList(netns, command)", 2, 2, argv, &argc) ||
	    !(j = rhumb_links_new_job(env, kind, m)))
		return NULL;
	if (!rhumb_is_nullish(env, argv[0]) && !get_netns(env, m, argv[0], j->netns))
		goto fail;
	if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_string ||
	    napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok || len > NFT_MAX_TEXT) {
		rhumb_throw_type(env, "%s: the text must be a string of at most 4 MiB%s", m, "");
		goto fail;
	}
	j->text = malloc(len + 1);
	if (!j->text) {
		napi_throw_error(env, "ENOMEM", "nft: out of memory");
		goto fail;
	}
	napi_get_value_string_utf8(env, argv[1], j->text, len + 1, &len);
	if (strlen(j->text) != len) {
		rhumb_throw_type(env, "%s: the text holds a NUL character%s", m, "");
		goto fail;
	}
	return rhumb_links_start(env, j);
fail:
	free(j->text);
	free(j);
	return NULL;
}

static napi_value js_nft_apply(napi_env env, napi_callback_info info) { return nft_call(env, info, J_NFT_APPLY, "nftApply"); }
static napi_value js_nft_list(napi_env env, napi_callback_info info) { return nft_call(env, info, J_NFT_LIST, "nftList"); }

napi_status rhumb_links_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "linkAdd", NULL, js_link_add, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "linkSet", NULL, js_link_set, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "linkDel", NULL, js_link_del, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "linkDelUnlisted", NULL, js_link_del_unlisted, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "linkDelGroup", NULL, js_link_del_group, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "linkList", NULL, js_link_list, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "addrList", NULL, js_addr_list, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "netnsConfigure", NULL, js_netns_configure, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "bridgePort", NULL, js_bridge_port, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "edgeApply", NULL, js_edge_apply, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "nftApply", NULL, js_nft_apply, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "nftList", NULL, js_nft_list, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
