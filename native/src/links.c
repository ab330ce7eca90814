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
 *   linkDelUnlisted(name)   resolved once unlisted (link_unlist.c)   -> false when absent
 *   edgeApply([{ op: addr|route|rule, add, … }])   the gateway's kernel state (links_edge.c)
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
#include "rhumb_links_args.h"
#include "rhumb_links_job.h"
#include "rhumb_napi_util.h"
#include "rhumb_netns.h"

/* ---- the functions ---------------------------------------------------------------------- */

static bool read_vxlan(napi_env env, const char *m, napi_value v, struct job *j)
{
	struct rl_vxlan *x = &j->link.vxlan;
	uint32_t u;
	napi_value f;
	if (!la_is_object(env, v)) {
		rhumb_throw_type(env, "%s: a vxlan link needs vxlan: { vni, port, local, ... }%s", m, "");
		return false;
	}
	x->learning = false;
	x->proxy = x->l2miss = x->l3miss = true;
	if (!(f = la_prop(env, v, "vni")) || !la_get_uint(env, m, f, "vxlan.vni", 0, 0xffffff, &x->vni))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "vxlan.vni"), false);
	if (!(f = la_prop(env, v, "local")) || !la_get_ipv4(env, m, f, "vxlan.local", x->local))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "vxlan.local"), false);
	x->port = 4789;
	if (!OPT(env, v, "port", la_get_uint(env, m, _v, "vxlan.port", 1, 65535, &u)))
		return false;
	if (la_prop(env, v, "port"))
		x->port = (uint16_t)u;
	return OPT(env, v, "dev", la_get_ifname(env, m, _v, "vxlan.dev", j->dev)) &&
	       OPT(env, v, "learning", la_get_bool(env, m, _v, "vxlan.learning", &x->learning)) &&
	       OPT(env, v, "proxy", la_get_bool(env, m, _v, "vxlan.proxy", &x->proxy)) &&
	       OPT(env, v, "l2miss", la_get_bool(env, m, _v, "vxlan.l2miss", &x->l2miss)) &&
	       OPT(env, v, "l3miss", la_get_bool(env, m, _v, "vxlan.l3miss", &x->l3miss));
}

static bool read_peer(napi_env env, const char *m, napi_value v, struct job *j)
{
	struct rl_peer *p = &j->link.peer;
	napi_value f;
	if (!la_is_object(env, v)) {
		rhumb_throw_type(env, "%s: a veth link needs peer: { name, ... }%s", m, "");
		return false;
	}
	if (!(f = la_prop(env, v, "name")))
		return rhumb_throw_type(env, "%s: %s is required", m, "peer.name"), false;
	if (!la_get_ifname(env, m, f, "peer.name", p->name))
		return false;
	p->has_mac = la_prop(env, v, "mac") != NULL;
	return OPT(env, v, "mtu", la_get_uint(env, m, _v, "peer.mtu", 68, 65535, &p->mtu)) &&
	       OPT(env, v, "mac", la_get_mac(env, m, _v, p->mac)) && OPT(env, v, "netns", la_get_netns(env, m, _v, j->netns));
}

static napi_value js_link_add(napi_env env, napi_callback_info info)
{
	const char *m = "linkAdd";
	napi_value argv[1], f;
	size_t argc;
	char kind[16];
	struct job *j;

	if (!la_args(env, info, "linkAdd(spec)", 1, 1, argv, &argc))
		return NULL;
	if (!la_is_object(env, argv[0])) {
		rhumb_throw_type(env, "%s: spec must be an object%s", m, "");
		return NULL;
	}
	if (!(j = rhumb_links_new_job(env, J_LINK_ADD, m)))
		return NULL;
	if (!(f = la_prop(env, argv[0], "kind")) || !la_get_string(env, m, f, "kind", kind, sizeof(kind)))
		goto bad_kind;
	if (strcmp(kind, "vxlan") == 0)
		j->link.kind = RL_VXLAN;
	else if (strcmp(kind, "bridge") == 0)
		j->link.kind = RL_BRIDGE;
	else if (strcmp(kind, "veth") == 0)
		j->link.kind = RL_VETH;
	else
		goto bad_kind;
	if (!(f = la_prop(env, argv[0], "name"))) {
		rhumb_throw_type(env, "%s: %s is required", m, "name");
		goto fail;
	}
	j->link.has_mac = la_prop(env, argv[0], "mac") != NULL;
	if (!la_get_ifname(env, m, f, "name", j->link.name) ||
	    !OPT(env, argv[0], "mtu", la_get_uint(env, m, _v, "mtu", 68, 65535, &j->link.mtu)) ||
	    !OPT(env, argv[0], "mac", la_get_mac(env, m, _v, j->link.mac)) ||
	    !OPT(env, argv[0], "master", la_get_ifname(env, m, _v, "master", j->master)) ||
	    !OPT(env, argv[0], "up", la_get_bool(env, m, _v, "up", &j->link.up)) ||
	    !OPT(env, argv[0], "group", la_get_uint(env, m, _v, "group", 1, 4294967295.0, &j->link.group)))
		goto fail;
	if (j->link.kind == RL_VXLAN && !read_vxlan(env, m, la_prop(env, argv[0], "vxlan"), j))
		goto fail;
	if (j->link.kind == RL_VETH && !read_peer(env, m, la_prop(env, argv[0], "peer"), j))
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

	if (!la_args(env, info, "linkSet(name, changes)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_LINK_SET, m)))
		return NULL;
	j->change.up = -1;
	if (!la_get_ifname(env, m, argv[0], "name", j->name) || !la_is_object(env, argv[1]))
		goto fail;
	j->change.has_mac = la_prop(env, argv[1], "mac") != NULL;
	if (!OPT(env, argv[1], "mtu", la_get_uint(env, m, _v, "mtu", 68, 65535, &j->change.mtu)) ||
	    !OPT(env, argv[1], "mac", la_get_mac(env, m, _v, j->change.mac)) ||
	    !OPT(env, argv[1], "up", la_get_bool(env, m, _v, "up", &up)))
		goto fail;
	if (la_prop(env, argv[1], "up"))
		j->change.up = up ? 1 : 0;
	/* master: a name, or null to leave the bridge; absent: unchanged. */
	if (napi_has_named_property(env, argv[1], "master", &has_master) == napi_ok && has_master &&
	    napi_get_named_property(env, argv[1], "master", &mv) == napi_ok) {
		napi_valuetype t;
		napi_typeof(env, mv, &t);
		if (t == napi_null) {
			j->master_none = true;
		} else if (t != napi_undefined) {
			if (!la_get_ifname(env, m, mv, "master", j->master))
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

/* A job on one link named by its only argument (linkDel, linkDelUnlisted). */
static napi_value start_named_link_job(napi_env env, napi_callback_info info, enum job_kind kind, const char *method,
				       const char *signature)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!la_args(env, info, signature, 1, 1, argv, &argc) || !(j = rhumb_links_new_job(env, kind, method)))
		return NULL;
	if (!la_get_ifname(env, method, argv[0], "name", j->name)) {
		free(j);
		return NULL;
	}
	return rhumb_links_start(env, j);
}

static napi_value js_link_del(napi_env env, napi_callback_info info)
{
	return start_named_link_job(env, info, J_LINK_DEL, "linkDel", "linkDel(name)");
}

static napi_value js_link_del_unlisted(napi_env env, napi_callback_info info)
{
	return start_named_link_job(env, info, J_LINK_UNLIST, "linkDelUnlisted", "linkDelUnlisted(name)");
}

static napi_value js_link_del_group(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	size_t argc;
	struct job *j;
	if (!la_args(env, info, "linkDelGroup(group)", 1, 1, argv, &argc) || !(j = rhumb_links_new_job(env, J_GROUP_DEL, "linkDelGroup")))
		return NULL;
	/* Group 0 is every device's default: never deleted wholesale. */
	if (!la_get_uint(env, "linkDelGroup", argv[0], "group", 1, 4294967295.0, &j->group)) {
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
	if (!la_args(env, info, "linkList(netns?)", 0, 1, argv, &argc) || !(j = rhumb_links_new_job(env, J_LINK_LIST, "linkList")))
		return NULL;
	if (argc >= 1 && !rhumb_is_nullish(env, argv[0]) && !la_get_netns(env, "linkList", argv[0], j->netns)) {
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
	if (!la_is_object(env, v)) {
		rhumb_throw_type(env, "%s: a route must be { dst, prefix, via? }%s", m, "");
		return false;
	}
	if (!(f = la_prop(env, v, "dst")) || !la_get_ipv4(env, m, f, "route dst", r->dst))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "route dst"), false);
	if (!(f = la_prop(env, v, "prefix")) || !la_get_uint(env, m, f, "route prefix", 0, 32, &prefix))
		return f ? false : (rhumb_throw_type(env, "%s: %s is required", m, "route prefix"), false);
	r->prefix = (uint8_t)prefix;
	r->has_gw = la_prop(env, v, "via") != NULL;
	return OPT(env, v, "via", la_get_ipv4(env, m, _v, "route via", r->gw));
}

static napi_value js_netns_configure(napi_env env, napi_callback_info info)
{
	const char *m = "netnsConfigure";
	napi_value argv[2], f, routes;
	size_t argc;
	uint32_t n = 0, prefix;
	bool is_arr = false;
	struct job *j;

	if (!la_args(env, info, "netnsConfigure(netns, config)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_NS_CONFIGURE, m)))
		return NULL;
	if (!la_get_netns(env, m, argv[0], j->netns))
		goto fail;
	if (!la_is_object(env, argv[1])) {
		rhumb_throw_type(env, "%s: config must be an object%s", m, "");
		goto fail;
	}
	if (!(f = la_prop(env, argv[1], "ifname"))) {
		rhumb_throw_type(env, "%s: %s is required", m, "ifname");
		goto fail;
	}
	if (!la_get_ifname(env, m, f, "ifname", j->cfg.ifname))
		goto fail;
	if ((f = la_prop(env, argv[1], "address"))) {
		napi_value ip, pf;
		if (!la_is_object(env, f) || !(ip = la_prop(env, f, "ip")) || !(pf = la_prop(env, f, "prefix"))) {
			rhumb_throw_type(env, "%s: address must be { ip, prefix }%s", m, "");
			goto fail;
		}
		if (!la_get_ipv4(env, m, ip, "address.ip", j->cfg.addr) || !la_get_uint(env, m, pf, "address.prefix", 0, 32, &prefix))
			goto fail;
		j->cfg.prefix = (uint8_t)prefix;
		j->cfg.has_addr = true;
	}
	if ((routes = la_prop(env, argv[1], "routes"))) {
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
	j->cfg.has_gateway = la_prop(env, argv[1], "gateway") != NULL;
	if (!OPT(env, argv[1], "gateway", la_get_ipv4(env, m, _v, "gateway", j->cfg.gateway)))
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
	if (!la_args(env, info, "bridgePort(name, flags)", 2, 2, argv, &argc) || !(j = rhumb_links_new_job(env, J_BRPORT, m)))
		return NULL;
	if (!la_get_ifname(env, m, argv[0], "name", j->name) || !la_is_object(env, argv[1]) ||
	    !OPT(env, argv[1], "learning", la_get_bool(env, m, _v, "learning", &learning)) ||
	    !OPT(env, argv[1], "flood", la_get_bool(env, m, _v, "flood", &flood))) {
		bool pending = false;
		napi_is_exception_pending(env, &pending);
		if (!pending)
			rhumb_throw_type(env, "%s: flags must be an object%s", m, "");
		free(j);
		return NULL;
	}
	j->learning = la_prop(env, argv[1], "learning") ? learning : -1;
	j->flood = la_prop(env, argv[1], "flood") ? flood : -1;
	return rhumb_links_start(env, j);
}

static napi_value nft_call(napi_env env, napi_callback_info info, enum job_kind kind, const char *m)
{
	napi_value argv[2];
	size_t argc, len = 0;
	napi_valuetype t;
	struct job *j;

	if (!la_args(env, info, kind == J_NFT_APPLY ? "nftApply(netns, text)" : "nftList(netns, command)", 2, 2, argv, &argc) ||
	    !(j = rhumb_links_new_job(env, kind, m)))
		return NULL;
	if (!rhumb_is_nullish(env, argv[0]) && !la_get_netns(env, m, argv[0], j->netns))
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
		{ "edgeApply", NULL, rhumb_links_edge_apply, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "nftApply", NULL, js_nft_apply, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "nftList", NULL, js_nft_list, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
