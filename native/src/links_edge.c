/*
 * edgeApply(changes): the distributed gateway's addresses, table routes and fwmark rules
 * (src/dataplane/links.ts EdgeOp), read and checked here, sent in order on the thread pool
 * (native/src/links_work.c, rtnl_edge.c).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "rhumb_links_args.h"
#include "rhumb_links_job.h"
#include "rhumb_napi_util.h"

/* An IPv4 or IPv6 address. */
static bool la_get_ip(napi_env env, const char *m, napi_value v, const char *what, struct rl_ip *out)
{
	char buf[64];
	if (!la_get_string(env, m, v, what, buf, sizeof(buf)))
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

/* { op: 'addr' | 'route' | 'rule', add, … } (src/dataplane/links.ts EdgeOp). */
static bool read_edge_op(napi_env env, const char *m, napi_value v, struct edge_op *o)
{
	char kind[8];
	uint32_t u = 0;
	if (!la_is_object(env, v)) {
		rhumb_throw_type(env, "%s: each change must be an object%s", m, "");
		return false;
	}
	if (!REQ(env, v, "op", m, la_get_string(env, m, _v, "op", kind, sizeof(kind))) || !REQ(env, v, "add", m, la_get_bool(env, m, _v, "add", &o->add)))
		return false;
	if (strcmp(kind, "rule") == 0) {
		o->what = EO_RULE;
		if (!REQ(env, v, "family", m, la_get_uint(env, m, _v, "family", 4, 6, &u)) || (u != 4 && u != 6)) {
			if (u == 5)
				rhumb_throw_type(env, "%s: family must be 4 or 6%s", m, "");
			return false;
		}
		o->family = u == 6 ? AF_INET6 : AF_INET;
		return REQ(env, v, "pref", m, la_get_uint(env, m, _v, "pref", 0, 4294967295.0, &o->pref)) &&
		       REQ(env, v, "mark", m, la_get_uint(env, m, _v, "mark", 0, 4294967295.0, &o->mark)) &&
		       REQ(env, v, "mask", m, la_get_uint(env, m, _v, "mask", 0, 4294967295.0, &o->mask)) &&
		       REQ(env, v, "table", m, la_get_uint(env, m, _v, "table", 1, 4294967295.0, &o->table));
	}
	if (strcmp(kind, "addr") == 0) {
		o->what = EO_ADDR;
		if (!REQ(env, v, "dev", m, la_get_ifname(env, m, _v, "dev", o->dev)) || !REQ(env, v, "address", m, la_get_ip(env, m, _v, "address", &o->ip)))
			return false;
	} else if (strcmp(kind, "route") == 0) {
		o->what = EO_ROUTE;
		if (!REQ(env, v, "dst", m, la_get_ip(env, m, _v, "dst", &o->ip)) ||
		    !REQ(env, v, "table", m, la_get_uint(env, m, _v, "table", 1, 4294967295.0, &o->table)) ||
		    (o->add && !REQ(env, v, "dev", m, la_get_ifname(env, m, _v, "dev", o->dev))) ||
		    !OPT(env, v, "src", la_get_ip(env, m, _v, "src", &o->src)) ||
		    !OPT(env, v, "mtu", la_get_uint(env, m, _v, "mtu", 68, 65535, &o->mtu)))
			return false;
		if (o->src.family && o->src.family != o->ip.family) {
			rhumb_throw_type(env, "%s: a route's src must be of its dst's family%s", m, "");
			return false;
		}
	} else {
		rhumb_throw_type(env, "%s: op must be addr, route or rule%s", m, "");
		return false;
	}
	if (!REQ(env, v, "prefix", m, la_get_uint(env, m, _v, "prefix", 0, o->ip.family == AF_INET6 ? 128 : 32, &u)))
		return false;
	o->prefix = (uint8_t)u;
	return true;
}

/* edgeApply(changes): the gateway's addresses, table routes and rules, in order, one request each. */
napi_value rhumb_links_edge_apply(napi_env env, napi_callback_info info)
{
	const char *m = "edgeApply";
	napi_value argv[1];
	size_t argc;
	uint32_t n = 0;
	bool is_arr = false;
	struct job *j;
	if (!la_args(env, info, "edgeApply(changes)", 1, 1, argv, &argc))
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

