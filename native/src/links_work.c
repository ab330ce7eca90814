/*
 * The native plumbing's work (rhumb_links_job.h): on a libuv pool thread, the rtnetlink
 * requests of one call (in this namespace, or in an instance's through a socket a helper
 * thread opened there) or one nftables batch; then, on the JS thread, the Promise settled
 * with the result or an Error naming the step that failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhumb_links_job.h"
#include "rhumb_napi_util.h"
#include "rhumb_netns.h"
#include "rhumb_nft.h"

/* ---- the work, on a pool thread ------------------------------------------------------- */

static void record(struct job *j, int rc, const char *step)
{
	if (rc < 0 && j->rc == 0) {
		j->rc = rc;
		j->step = step;
		if (!j->e.err)
			j->e.err = -rc;
	}
}

static int link_row(const struct rl_link_info *l, void *ctx)
{
	struct job *j = ctx;
	if (!l) {
		j->nlinks = 0;
		return 0;
	}
	if (j->nlinks == j->caplinks) {
		size_t cap = j->caplinks ? j->caplinks * 2 : 64;
		struct rl_link_info *n = realloc(j->links, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		j->links = n;
		j->caplinks = cap;
	}
	j->links[j->nlinks++] = *l;
	return 0;
}

static int addr_row(const struct rl_addr_info *a, void *ctx)
{
	struct job *j = ctx;
	if (!a) {
		j->naddrs = 0;
		return 0;
	}
	if (j->naddrs == j->capaddrs) {
		size_t cap = j->capaddrs ? j->capaddrs * 2 : 32;
		struct rl_addr_info *n = realloc(j->addrs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		j->addrs = n;
		j->capaddrs = cap;
	}
	j->addrs[j->naddrs++] = *a;
	return 0;
}

static const char *netns_step(int rc)
{
	return rc == -ENOTSUP ? "open netns (not a network namespace)" : "open netns";
}

/* Resolves a name to an ifindex into *out (0 for ""). */
static int resolve(struct job *j, rhumb_rtnl_req *r, const char *name, uint32_t *out, const char *step)
{
	int rc;
	*out = 0;
	if (!*name)
		return 0;
	rc = rl_link_index(r, name, &j->e);
	if (rc < 0) {
		record(j, rc, step);
		return rc;
	}
	*out = (uint32_t)rc;
	return 0;
}

static void do_link_add(struct job *j, rhumb_rtnl_req *r)
{
	int nsfd = -1, rc;
	if (resolve(j, r, j->master, &j->link.master, "master") < 0 ||
	    (j->link.kind == RL_VXLAN && resolve(j, r, j->dev, &j->link.vxlan.link, "vxlan dev") < 0))
		return;
	j->link.peer.netns_fd = -1;
	if (j->link.kind == RL_VETH && *j->netns) {
		nsfd = rhumb_netns_open(j->netns);
		if (nsfd < 0) {
			record(j, nsfd, netns_step(nsfd));
			return;
		}
		j->link.peer.netns_fd = nsfd;
	}
	rc = rl_link_add(r, &j->link, &j->e);
	if (rc < 0) {
		record(j, rc, "RTM_NEWLINK");
	} else if (nsfd >= 0 && !rhumb_netns_same(nsfd, j->netns)) {
		/* The namespace went away (or was replaced) while we worked: leave nothing behind. */
		rhumb_rtnl_error ignored;
		rl_link_del(r, j->link.name, &ignored);
		record(j, -ENOENT, "netns vanished");
	} else {
		rc = rl_link_index(r, j->link.name, &j->e);
		if (rc < 0)
			record(j, rc, "RTM_GETLINK");
		else
			j->ifindex = rc;
	}
	if (nsfd >= 0)
		close(nsfd);
}

static void do_link_set(struct job *j, rhumb_rtnl_req *r)
{
	uint32_t idx;
	j->change.master = -1;
	if (j->master_none) {
		j->change.master = 0;
	} else if (j->master_given) {
		if (resolve(j, r, j->master, &idx, "master") < 0)
			return;
		j->change.master = idx;
	}
	record(j, rl_link_set(r, j->name, &j->change, &j->e), "RTM_NEWLINK");
}

static void do_ns_configure(struct job *j, rhumb_rtnl_req *r)
{
	struct rl_change up = { .up = 1, .master = -1 };
	struct ns_config *c = &j->cfg;
	int32_t ifindex;
	int rc;

	if (rl_link_set(r, "lo", &up, &j->e) < 0) {
		record(j, -j->e.err, "lo up");
		return;
	}
	rc = rl_link_index(r, c->ifname, &j->e);
	if (rc < 0) {
		record(j, rc, "find interface");
		return;
	}
	ifindex = rc;
	if (c->has_addr && (rc = rl_addr_add(r, ifindex, c->addr, c->prefix, &j->e)) < 0) {
		record(j, rc, "RTM_NEWADDR");
		return;
	}
	if ((rc = rl_link_set(r, c->ifname, &up, &j->e)) < 0) {
		record(j, rc, "interface up");
		return;
	}
	for (int i = 0; i < c->nroutes; i++) {
		const struct route_spec *s = &c->routes[i];
		if ((rc = rl_route_replace(r, s->dst, s->prefix, s->has_gw ? s->gw : NULL, ifindex, &j->e)) < 0) {
			record(j, rc, "RTM_NEWROUTE");
			return;
		}
	}
	if (c->has_gateway) {
		static const uint8_t any[4] = { 0 };
		if ((rc = rl_route_replace(r, any, 0, c->gateway, ifindex, &j->e)) < 0)
			record(j, rc, "default route");
	}
}

/* A deletion of something already gone, or an addition of a rule already there: the state wanted. */
static bool settled_already(const struct edge_op *o, int rc)
{
	if (o->add)
		return o->what == EO_RULE && rc == -EEXIST;
	return rc == -ENODEV || rc == -ESRCH || rc == -ENOENT || rc == -EADDRNOTAVAIL;
}

static void do_edge(struct job *j, rhumb_rtnl_req *r)
{
	static const char *steps[3][2] = { { "addr del", "addr add" }, { "route del", "route replace" }, { "rule del", "rule add" } };
	for (size_t i = 0; i < j->nops; i++) {
		const struct edge_op *o = &j->ops[i];
		int32_t ifindex = 0;
		int rc = 0;
		snprintf(j->name, sizeof(j->name), "%s", *o->dev ? o->dev : "rule");
		if (*o->dev && (o->what == EO_ADDR || o->add)) {
			rc = rl_link_index(r, o->dev, &j->e);
			if (rc < 0 && !(o->what == EO_ADDR && !o->add && rc == -ENODEV)) {
				record(j, rc, "find device");
				return;
			}
			ifindex = rc;
		}
		if (rc >= 0) {
			memset(&j->e, 0, sizeof(j->e));
			if (o->what == EO_ADDR)
				rc = rl_addr_change(r, o->add, &o->ip, o->prefix, ifindex, &j->e);
			else if (o->what == EO_ROUTE)
				rc = rl_table_route_change(r, o->add, &o->ip, o->prefix, o->table, ifindex, &o->src, o->mtu, &j->e);
			else
				rc = rl_rule_change(r, o->add, o->family, o->pref, o->mark, o->mask, o->table, &j->e);
		}
		if (rc < 0 && !settled_already(o, rc)) {
			record(j, rc, steps[o->what][o->add]);
			return;
		}
		memset(&j->e, 0, sizeof(j->e));
		j->done_ops = i + 1;
	}
}

static void run_rtnl(struct job *j)
{
	rhumb_rtnl_req r;
	int nsfd = -1, rc;
	bool in_ns = *j->netns && j->kind != J_LINK_ADD; /* linkAdd's netns is the veth peer's */

	if (in_ns) {
		nsfd = rhumb_netns_open(j->netns);
		if (nsfd < 0) {
			record(j, nsfd, netns_step(nsfd));
			return;
		}
		rc = rhumb_netns_rtnl_open(nsfd, &r, TIMEOUT_MS);
	} else {
		rc = rhumb_rtnl_req_open(&r, TIMEOUT_MS);
	}
	if (rc < 0) {
		record(j, rc, in_ns ? "netlink socket in netns" : "netlink socket");
		if (nsfd >= 0)
			close(nsfd);
		return;
	}
	switch (j->kind) {
	case J_LINK_ADD:
		do_link_add(j, &r);
		break;
	case J_LINK_SET:
		do_link_set(j, &r);
		break;
	case J_LINK_DEL:
		rc = rl_link_del(&r, j->name, &j->e);
		j->existed = rc != -ENODEV;
		if (rc != -ENODEV)
			record(j, rc, "RTM_DELLINK");
		break;
	case J_GROUP_DEL:
		rc = rl_group_del(&r, j->group, &j->e);
		j->existed = rc != -ENODEV;
		if (rc != -ENODEV)
			record(j, rc, "RTM_DELLINK");
		break;
	case J_LINK_LIST:
		record(j, rl_link_dump(&r, link_row, j, &j->e), "RTM_GETLINK");
		break;
	case J_ADDR_LIST:
		record(j, rl_addr_dump(&r, addr_row, j, &j->e), "RTM_GETADDR");
		break;
	case J_NS_CONFIGURE:
		do_ns_configure(j, &r);
		break;
	case J_EDGE:
		do_edge(j, &r);
		break;
	case J_BRPORT: {
		rc = rl_link_index(&r, j->name, &j->e);
		if (rc < 0)
			record(j, rc, "find port");
		else
			record(j, rl_brport_set(&r, rc, j->learning, j->flood, &j->e), "RTM_SETLINK");
		break;
	}
	default:
		break;
	}
	rhumb_rtnl_req_close(&r);
	if (nsfd >= 0)
		close(nsfd);
}

static void run_nft(struct job *j)
{
	int nsfd = -1, rc;
	if (*j->netns) {
		nsfd = rhumb_netns_open(j->netns);
		if (nsfd < 0) {
			record(j, nsfd, netns_step(nsfd));
			return;
		}
	}
	rc = j->kind == J_NFT_APPLY ? rhumb_nft_apply(nsfd, j->text, j->nfterr, sizeof(j->nfterr))
				    : rhumb_nft_list(nsfd, j->text, &j->out, j->nfterr, sizeof(j->nfterr));
	if (rc < -1)
		record(j, rc, "enter netns");
	else if (rc == -1)
		j->rc = -1, j->step = "nft";
	if (nsfd >= 0)
		close(nsfd);
}

static void execute(napi_env env, void *data)
{
	struct job *j = data;
	(void)env;
	if (j->kind == J_NFT_APPLY || j->kind == J_NFT_LIST) {
		run_nft(j);
	} else if (j->kind == J_LINK_UNLIST) {
		int rc = rl_link_del_unlisted(j->name, TIMEOUT_MS, &j->e);
		j->existed = rc != -ENODEV;
		if (rc != -ENODEV)
			record(j, rc, "RTM_DELLINK");
	} else {
		run_rtnl(j);
	}
}

/* ---- results, on the JS thread ---------------------------------------------------------- */

static napi_value link_object(napi_env env, const struct rl_link_info *l)
{
	napi_value o;
	char mac[18];
	if (napi_create_object(env, &o) != napi_ok)
		return NULL;
	rhumb_set_num(env, o, "ifindex", l->ifindex);
	rhumb_set_str(env, o, "name", l->name);
	rhumb_set_num(env, o, "mtu", l->mtu);
	if (l->master)
		rhumb_set_num(env, o, "master", l->master);
	rhumb_set_bool(env, o, "up", l->up);
	if (l->has_mac) {
		rhumb_format_mac(l->mac, mac);
		rhumb_set_str(env, o, "mac", mac);
	}
	if (*l->kind)
		rhumb_set_str(env, o, "kind", l->kind);
	if (l->has_vni)
		rhumb_set_num(env, o, "vni", l->vni);
	if (l->has_vxlan_local) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, l->vxlan_local, ip, sizeof(ip));
		rhumb_set_str(env, o, "vxlanLocal", ip);
	}
	return o;
}

static napi_value result(napi_env env, struct job *j)
{
	napi_value v, arr;
	switch (j->kind) {
	case J_LINK_ADD:
		napi_create_int32(env, j->ifindex, &v);
		return v;
	case J_LINK_DEL:
	case J_LINK_UNLIST:
	case J_GROUP_DEL:
		napi_get_boolean(env, j->existed, &v);
		return v;
	case J_LINK_LIST:
		napi_create_array_with_length(env, j->nlinks, &arr);
		for (size_t i = 0; i < j->nlinks; i++)
			napi_set_element(env, arr, (uint32_t)i, link_object(env, &j->links[i]));
		return arr;
	case J_ADDR_LIST:
		napi_create_array_with_length(env, j->naddrs, &arr);
		for (size_t i = 0; i < j->naddrs; i++) {
			char ip[INET_ADDRSTRLEN];
			napi_value o;
			inet_ntop(AF_INET, j->addrs[i].addr, ip, sizeof(ip));
			napi_create_object(env, &o);
			rhumb_set_num(env, o, "ifindex", j->addrs[i].ifindex);
			rhumb_set_str(env, o, "address", ip);
			rhumb_set_num(env, o, "prefix", j->addrs[i].prefix);
			napi_set_element(env, arr, (uint32_t)i, o);
		}
		return arr;
	case J_NFT_LIST:
		napi_create_string_utf8(env, j->out ? j->out : "", NAPI_AUTO_LENGTH, &v);
		return v;
	default:
		napi_get_undefined(env, &v);
		return v;
	}
}

static napi_value failure(napi_env env, struct job *j)
{
	char what[256];
	const char *subject = j->kind == J_LINK_ADD ? j->link.name : j->kind == J_NS_CONFIGURE ? j->netns : j->name;
	napi_value err, code, msg;
	if (j->kind == J_NFT_APPLY || j->kind == J_NFT_LIST) {
		if (j->rc == -1) {
			snprintf(what, sizeof(what), "%s%s%s: nftables refused it: ", j->method, *j->netns ? " in " : "", j->netns);
			char full[2400];
			snprintf(full, sizeof(full), "%s%s", what, j->nfterr);
			napi_create_string_utf8(env, "ERR_NFT", NAPI_AUTO_LENGTH, &code);
			napi_create_string_utf8(env, full, NAPI_AUTO_LENGTH, &msg);
			napi_create_error(env, code, msg, &err);
			return err;
		}
		subject = j->netns;
	}
	snprintf(what, sizeof(what), "%s(%s): %s", j->method, subject, j->step ? j->step : "?");
	err = rhumb_make_sys_error(env, what, j->step, j->e.err ? j->e.err : -j->rc, j->e.msg);
	if (!err) {
		napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &msg);
		napi_create_error(env, NULL, msg, &err);
	}
	return err;
}

static void complete(napi_env env, napi_status status, void *data)
{
	struct job *j = data;
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	if (status != napi_ok) {
		napi_value msg, err;
		napi_create_string_utf8(env, "native plumbing: the work was cancelled", NAPI_AUTO_LENGTH, &msg);
		napi_create_error(env, NULL, msg, &err);
		napi_reject_deferred(env, j->deferred, err);
	} else if (j->rc < 0) {
		napi_reject_deferred(env, j->deferred, failure(env, j));
	} else {
		napi_resolve_deferred(env, j->deferred, result(env, j));
	}
	napi_close_handle_scope(env, scope);
	napi_delete_async_work(env, j->work);
	free(j->links);
	free(j->addrs);
	free(j->text);
	free(j->out);
	free(j->ops);
	free(j);
}

/* Queues the job; returns its Promise (or NULL when it threw, the job freed). */
napi_value rhumb_links_start(napi_env env, struct job *j)
{
	napi_value promise, name;
	if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
	    napi_create_string_utf8(env, j->method, NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok ||
	    napi_queue_async_work(env, j->work) != napi_ok) {
		free(j->text);
		free(j->ops);
		free(j);
		rhumb_throw_pending_or(env, "native plumbing: cannot queue the work");
		return NULL;
	}
	return promise;
}

struct job *rhumb_links_new_job(napi_env env, enum job_kind kind, const char *method)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		napi_throw_error(env, "ENOMEM", "native plumbing: out of memory");
		return NULL;
	}
	j->kind = kind;
	j->method = method;
	j->learning = j->flood = -1;
	return j;
}
