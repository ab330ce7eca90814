/*
 * Node-API binding of the rtnetlink module (native/src/rtnl.c).
 *
 * class RtnlSocket
 *   new RtnlSocket(onEvent?)   request socket; with onEvent also a RTNLGRP_NEIGH socket
 *                              polled on the libuv loop, misses delivered as objects:
 *                              {kind:'l3', ifindex, ip, mac?, reason:'miss'|'resolving'}
 *                              {kind:'l2', ifindex, mac, reason:'miss'}
 *                              {kind:'overflow'}                 (ENOBUFS: misses lost)
 *                              {kind:'error', code, errno, message} (monitoring stopped)
 *   neighSet(ifindex, ip, mac, state?)        state 'permanent' (default) | 'reachable'
 *   neighDel(ifindex, ip)
 *   fdbSet(ifindex, mac, dst, {port?, vni?, state?}?)
 *                              unicast MAC: create or replace (the MAC moves to dst);
 *                              all-zeros/multicast MAC: adds dst to its flood list (the
 *                              kernel refuses replace there)
 *   fdbDel(ifindex, mac, dst?, {port?, vni?, master?}?)
 *                              master: the bridge's learned entry on that port (NTF_MASTER)
 *                              with dst only that remote, which the kernel matches on
 *                              dst+port+vni (defaults: the device's); a remote that does
 *                              not match is silently left alone (kernel returns success)
 *   neighList(ifindex?) / fdbList(ifindex?)   dumps
 *   setFilter(ifindexes | null)              deliver misses for these devices only
 *   close()
 * ifIndex(name)
 *
 * Requests are synchronous round trips (control plane only). Kernel errors are thrown as
 * Error with code ('ENODEV'), errno (negative, as Node does) and syscall ('RTM_NEWNEIGH').
 */
#include "rhumb_napi.h"
#include "rhumb_netlink.h"
#include "rhumb_napi_util.h"
#include "rhumb_rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#define REQUEST_TIMEOUT_MS 5000
#define MONITOR_BUFSZ (64 * 1024)
#define MONITOR_BATCH 256 /* datagrams per poll wakeup, then yield to the loop */

typedef struct rh_rtnl rh_rtnl;

typedef struct rh_poll {
	uv_poll_t handle;
	int fd;
	rh_rtnl *owner;
} rh_poll;

struct rh_rtnl {
	napi_env env;
	rhumb_rtnl_req req;
	rh_poll *poll;     /* NULL when not monitoring */
	uint8_t *mbuf;     /* monitor receive buffer */
	napi_ref on_event; /* the JS callback */
	napi_ref self;     /* keeps the wrapper alive while monitoring */
	napi_async_context actx;
	bool has_actx;
	int refs; /* wrapper + open poll handle */
	bool closed;
	bool hook_registered;
	bool filter_on;
	int32_t *filter;
	size_t nfilter;
};

/* ---------- small helpers ---------- */

/*
 * One call of a binding function: its arguments (up to four are read) and its name, which
 * every error message starts with. For RtnlSocket methods also the open socket.
 */
struct call {
	napi_env env;
	const char *method;
	rh_rtnl *r;
	size_t argc; /* given, at most 4 */
	napi_value argv[4];
};

/* Argument i, or NULL when it is absent, undefined or null. */
static napi_value optional(const struct call *c, size_t i)
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

static bool arg_ifindex(const struct call *c, napi_value v, int32_t *out)
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

/* ---------- lifetime ---------- */

static void maybe_free(rh_rtnl *r)
{
	if (--r->refs > 0)
		return;
	rhumb_rtnl_req_close(&r->req);
	free(r->mbuf);
	free(r->filter);
	free(r);
}

static void on_poll_closed(uv_handle_t *h)
{
	rh_poll *p = (rh_poll *)h;
	rh_rtnl *owner = p->owner;

	close(p->fd); /* only now: libuv must not be watching an fd we close */
	free(p);
	maybe_free(owner);
}

static void stop_monitor(rh_rtnl *r)
{
	rh_poll *p = r->poll;
	if (!p)
		return;
	r->poll = NULL;
	uv_poll_stop(&p->handle);
	uv_close((uv_handle_t *)&p->handle, on_poll_closed);
}

/* Native teardown, no JavaScript involved: safe from env cleanup and finalizers. */
static void close_native(rh_rtnl *r)
{
	if (r->closed)
		return;
	r->closed = true;
	stop_monitor(r);
	rhumb_rtnl_req_close(&r->req);
}

static void release_js(rh_rtnl *r)
{
	if (r->on_event) {
		napi_delete_reference(r->env, r->on_event);
		r->on_event = NULL;
	}
	if (r->has_actx) {
		napi_async_destroy(r->env, r->actx);
		r->has_actx = false;
	}
	if (r->self) {
		napi_delete_reference(r->env, r->self);
		r->self = NULL;
	}
}

static void env_cleanup(void *arg)
{
	rh_rtnl *r = arg;
	r->hook_registered = false;
	close_native(r);
}

static void finalize(napi_env env, void *data, void *hint)
{
	rh_rtnl *r = data;
	if (r->hook_registered) {
		napi_remove_env_cleanup_hook(env, env_cleanup, r);
		r->hook_registered = false;
	}
	close_native(r);
	maybe_free(r);
}

/* ---------- notifications ---------- */

static void deliver(rh_rtnl *r, napi_value ev)
{
	napi_env env = r->env;
	napi_value cb, self, exc;
	napi_status s;

	if (!r->on_event || !r->self || napi_get_reference_value(env, r->on_event, &cb) != napi_ok ||
	    napi_get_reference_value(env, r->self, &self) != napi_ok || !cb || !self)
		return;
	s = napi_make_callback(env, r->actx, self, cb, 1, &ev, NULL);
	if (s == napi_pending_exception && napi_get_and_clear_last_exception(env, &exc) == napi_ok)
		napi_fatal_exception(env, exc); /* like any throwing async callback: uncaughtException */
}

static bool wanted(const rh_rtnl *r, int32_t ifindex)
{
	if (!r->filter_on)
		return true;
	for (size_t i = 0; i < r->nfilter; i++)
		if (r->filter[i] == ifindex)
			return true;
	return false;
}

static void deliver_neigh(rh_rtnl *r, const rhumb_rtnl_neigh *n, enum rhumb_rtnl_miss kind)
{
	napi_env env = r->env;
	napi_handle_scope scope;
	napi_value ev;
	char ip[INET6_ADDRSTRLEN], mac[18];

	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_create_object(env, &ev) == napi_ok) {
		rhumb_set_str(env, ev, "kind", kind == RHUMB_MISS_L2 ? "l2" : "l3");
		rhumb_set_num(env, ev, "ifindex", n->ifindex);
		if (kind != RHUMB_MISS_L2 && n->has_dst) {
			rhumb_format_ip(&n->dst, ip);
			rhumb_set_str(env, ev, "ip", ip);
		}
		if (n->has_lladdr) {
			rhumb_format_mac(n->lladdr, mac);
			rhumb_set_str(env, ev, "mac", mac);
		}
		rhumb_set_str(env, ev, "reason", kind == RHUMB_MISS_L3_RESOLVING ? "resolving" : "miss");
		deliver(r, ev);
	}
	napi_close_handle_scope(env, scope);
}

static void deliver_status(rh_rtnl *r, const char *kind, int err)
{
	napi_env env = r->env;
	napi_handle_scope scope;
	napi_value ev;

	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_create_object(env, &ev) == napi_ok) {
		rhumb_set_str(env, ev, "kind", kind);
		if (err) {
			char msg[160];
			snprintf(msg, sizeof(msg), "rtnetlink monitor: %s (%s)", strerror(err), rhumb_errno_code(err));
			rhumb_set_str(env, ev, "code", rhumb_errno_code(err));
			rhumb_set_num(env, ev, "errno", -err);
			rhumb_set_str(env, ev, "message", msg);
		}
		deliver(r, ev);
	}
	napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	rh_poll *p = (rh_poll *)h;
	rh_rtnl *r = p->owner; /* alive: the open poll handle holds a reference */

	if (r->closed || r->poll != p)
		return;
	if (status < 0) {
		deliver_status(r, "error", -status);
		stop_monitor(r);
		return;
	}
	for (int i = 0; i < MONITOR_BATCH && !r->closed && r->poll == p; i++) {
		struct sockaddr_nl from;
		socklen_t fromlen = sizeof(from);
		struct nlmsghdr *nh;
		ssize_t n;
		size_t left;

		n = recvfrom(p->fd, r->mbuf, MONITOR_BUFSZ, 0, (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) { /* the kernel dropped notifications */
				deliver_status(r, "overflow", 0);
				continue;
			}
			deliver_status(r, "error", errno);
			stop_monitor(r);
			break;
		}
		if (from.nl_pid != 0)
			continue; /* only the kernel's notifications count */
		left = (size_t)n;
		for (nh = (struct nlmsghdr *)r->mbuf; NLMSG_OK(nh, left) && !r->closed; nh = NLMSG_NEXT(nh, left)) {
			rhumb_rtnl_neigh neigh;
			enum rhumb_rtnl_miss kind;

			if (nh->nlmsg_type != RTM_GETNEIGH && nh->nlmsg_type != RTM_NEWNEIGH)
				continue;
			if (rhumb_rtnl_parse_neigh(nh, &neigh) != 0)
				continue;
			kind = rhumb_rtnl_classify(&neigh);
			if (kind != RHUMB_MISS_NONE && wanted(r, neigh.ifindex))
				deliver_neigh(r, &neigh, kind);
		}
	}
}

/* ---------- class RtnlSocket ---------- */

/*
 * Starts an RtnlSocket method call: `this` must be an open socket and at least `required`
 * arguments given (else a TypeError quoting `usage`). False when it threw.
 */
static bool begin(napi_env env, napi_callback_info info, const char *method, size_t required, const char *usage,
		  struct call *c)
{
	napi_value self;

	*c = (struct call){ .env = env, .method = method, .argc = 4 };
	if (napi_get_cb_info(env, info, &c->argc, c->argv, &self, NULL) != napi_ok)
		return false;
	if (napi_unwrap(env, self, (void **)&c->r) != napi_ok || !c->r) {
		rhumb_throw_type(env, "%s: called on an object that is not an RtnlSocket%s", method, "");
		return false;
	}
	if (c->r->closed) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s: the rtnetlink socket is closed", method);
		napi_throw_error(env, "ERR_SOCKET_CLOSED", msg);
		return false;
	}
	if (c->argc < required) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s needs %zu arguments", usage, required);
		napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
		return false;
	}
	if (c->argc > 4)
		c->argc = 4;
	return true;
}

static napi_value js_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], self, target;
	napi_valuetype t = napi_undefined;
	rh_rtnl *r;
	uv_loop_t *loop;
	int rc;

	RHUMB_CHECK(env, napi_get_new_target(env, info, &target));
	if (!target) {
		napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "RtnlSocket: use new");
		return NULL;
	}
	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc >= 1)
		RHUMB_CHECK(env, napi_typeof(env, argv[0], &t));
	if (argc >= 1 && t != napi_function && t != napi_undefined && t != napi_null) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "RtnlSocket: onEvent must be a function");
		return NULL;
	}

	r = calloc(1, sizeof(*r));
	if (!r) {
		napi_throw_error(env, "ENOMEM", "RtnlSocket: out of memory");
		return NULL;
	}
	r->env = env;
	r->refs = 1;
	rc = rhumb_rtnl_req_open(&r->req, REQUEST_TIMEOUT_MS);
	if (rc < 0) {
		free(r);
		rhumb_throw_sys(env, "RtnlSocket: opening the request socket", "socket", -rc, NULL);
		return NULL;
	}

	if (t == napi_function) {
		rh_poll *p = calloc(1, sizeof(*p));
		int fd = rhumb_rtnl_monitor_open(RTNLGRP_NEIGH);

		r->mbuf = malloc(MONITOR_BUFSZ);
		if (fd < 0 || !p || !r->mbuf || napi_get_uv_event_loop(env, &loop) != napi_ok ||
		    uv_poll_init(loop, &p->handle, fd) != 0) {
			int err = fd < 0 ? -fd : ENOMEM;
			if (fd >= 0)
				close(fd);
			free(p);
			rhumb_rtnl_req_close(&r->req);
			free(r->mbuf);
			free(r);
			rhumb_throw_sys(env, "RtnlSocket: joining RTNLGRP_NEIGH", "socket", err, NULL);
			return NULL;
		}
		p->fd = fd;
		p->owner = r;
		r->poll = p;
		r->refs++; /* dropped in on_poll_closed */
	}

	if (napi_wrap(env, self, r, finalize, NULL, NULL) != napi_ok) {
		close_native(r);
		maybe_free(r); /* the poll close callback drops the other reference */
		rhumb_throw_pending_or(env, "RtnlSocket: napi_wrap failed");
		return NULL;
	}
	if (napi_add_env_cleanup_hook(env, env_cleanup, r) == napi_ok)
		r->hook_registered = true;

	if (r->poll) {
		napi_value name;
		if (napi_create_reference(env, argv[0], 1, &r->on_event) != napi_ok ||
		    napi_create_reference(env, self, 1, &r->self) != napi_ok ||
		    napi_create_string_utf8(env, "rhumb:rtnetlink", NAPI_AUTO_LENGTH, &name) != napi_ok ||
		    napi_async_init(env, self, name, &r->actx) != napi_ok) {
			close_native(r);
			release_js(r);
			rhumb_throw_pending_or(env, "RtnlSocket: setting up the notification callback failed");
			return NULL;
		}
		r->has_actx = true;
		rc = uv_poll_start(&r->poll->handle, UV_READABLE, on_poll);
		if (rc != 0) {
			close_native(r);
			release_js(r);
			rhumb_throw_sys(env, "RtnlSocket: polling the notification socket", "uv_poll_start", -rc, NULL);
			return NULL;
		}
	}
	return self;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value self;
	rh_rtnl *r = NULL;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
	if (napi_unwrap(env, self, (void **)&r) != napi_ok || !r) {
		napi_throw_type_error(env, "ERR_INVALID_THIS", "close: called on an object that is not an RtnlSocket");
		return NULL;
	}
	if (!r->closed) {
		close_native(r);
		release_js(r);
		if (r->hook_registered) {
			napi_remove_env_cleanup_hook(env, env_cleanup, r);
			r->hook_registered = false;
		}
	}
	return NULL;
}

/* Sends m, expects an ACK; throws on error. Returns false when it threw. */
static bool transact(napi_env env, rh_rtnl *r, rhumb_rtnl_msg *m, const char *what, const char *syscall)
{
	rhumb_rtnl_error e;
	if (rhumb_rtnl_ack(&r->req, m, &e) == 0)
		return true;
	rhumb_throw_sys(env, what, syscall, e.err, e.msg);
	return false;
}

static napi_value js_neigh_set(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr ip;
	char iptext[INET6_ADDRSTRLEN + 1], what[160];
	uint8_t mac[6];
	uint16_t state;
	rhumb_rtnl_msg m;

	if (!begin(env, info, "neighSet", 3, "neighSet(ifindex, ip, mac, state?)", &c) || !arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_ip(&c, c.argv[1], "ip", &ip, iptext) || !arg_mac(&c, c.argv[2], mac) || !arg_state(&c, optional(&c, 3), &state))
		return NULL;
	rhumb_rtnl_msg_init(&m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ip.family, ifindex, state, 0);
	rhumb_rtnl_msg_put(&m, NDA_DST, ip.bytes, ip.len);
	rhumb_rtnl_msg_put(&m, NDA_LLADDR, mac, 6);
	snprintf(what, sizeof(what), "neighSet(ifindex %d, %s)", ifindex, iptext);
	transact(env, c.r, &m, what, "RTM_NEWNEIGH");
	return NULL;
}

static napi_value js_neigh_del(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr ip;
	char iptext[INET6_ADDRSTRLEN + 1], what[160];
	rhumb_rtnl_msg m;

	if (!begin(env, info, "neighDel", 2, "neighDel(ifindex, ip)", &c) || !arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_ip(&c, c.argv[1], "ip", &ip, iptext))
		return NULL;
	rhumb_rtnl_msg_init(&m, RTM_DELNEIGH, 0, ip.family, ifindex, 0, 0);
	rhumb_rtnl_msg_put(&m, NDA_DST, ip.bytes, ip.len);
	snprintf(what, sizeof(what), "neighDel(ifindex %d, %s)", ifindex, iptext);
	transact(env, c.r, &m, what, "RTM_DELNEIGH");
	return NULL;
}

static napi_value js_fdb_set(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr dst;
	char dsttext[INET6_ADDRSTRLEN + 1], mactext[18], what[200];
	uint8_t mac[6];
	struct fdb_opts o;
	rhumb_rtnl_msg m;

	if (!begin(env, info, "fdbSet", 3, "fdbSet(ifindex, mac, dst, opts?)", &c) || !arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_mac(&c, c.argv[1], mac) || !arg_ip(&c, c.argv[2], "dst", &dst, dsttext) ||
	    !arg_fdb_opts(&c, optional(&c, 3), true, &o))
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

static napi_value js_fdb_del(napi_env env, napi_callback_info info)
{
	struct call c;
	int32_t ifindex;
	rhumb_rtnl_addr dst;
	char dsttext[INET6_ADDRSTRLEN + 1] = "", mactext[18], what[200];
	uint8_t mac[6];
	napi_value dstv;
	struct fdb_opts o;
	rhumb_rtnl_msg m;

	if (!begin(env, info, "fdbDel", 2, "fdbDel(ifindex, mac, dst?, opts?)", &c) || !arg_ifindex(&c, c.argv[0], &ifindex) ||
	    !arg_mac(&c, c.argv[1], mac))
		return NULL;
	dstv = optional(&c, 2);
	if ((dstv && !arg_ip(&c, dstv, "dst", &dst, dsttext)) || !arg_fdb_opts(&c, optional(&c, 3), false, &o))
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

	if (!begin(env, info, fdb ? "fdbList" : "neighList", 0, NULL, &c))
		return NULL;
	ifv = optional(&c, 0);
	if (ifv && !arg_ifindex(&c, ifv, &d.ifindex))
		return NULL;
	RHUMB_CHECK(env, napi_create_array(env, &d.arr));
	rc = rhumb_rtnl_dump(&c.r->req, fdb ? AF_BRIDGE : AF_UNSPEC, dump_row, &d, &e);
	if (rc < 0) {
		bool pending = false;
		if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
			return NULL;
		rhumb_throw_sys(env, c.method, "RTM_GETNEIGH", e.err ? e.err : -rc, e.msg);
		return NULL;
	}
	return d.arr;
}

static napi_value js_neigh_list(napi_env env, napi_callback_info info) { return dump(env, info, false); }
static napi_value js_fdb_list(napi_env env, napi_callback_info info) { return dump(env, info, true); }

static napi_value js_set_filter(napi_env env, napi_callback_info info)
{
	struct call c;
	bool is_array = false;
	uint32_t len = 0;
	int32_t *list = NULL;
	napi_value arr;
	rh_rtnl *r;

	if (!begin(env, info, "setFilter", 0, NULL, &c))
		return NULL;
	r = c.r;
	arr = optional(&c, 0);
	if (!arr) {
		free(r->filter);
		r->filter = NULL;
		r->nfilter = 0;
		r->filter_on = false;
		return NULL;
	}
	if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setFilter: expects an array of ifindexes or null");
		return NULL;
	}
	RHUMB_CHECK(env, napi_get_array_length(env, arr, &len));
	if (len) {
		list = calloc(len, sizeof(*list));
		if (!list) {
			napi_throw_error(env, "ENOMEM", "setFilter: out of memory");
			return NULL;
		}
	}
	for (uint32_t i = 0; i < len; i++) {
		napi_value v;
		if (napi_get_element(env, arr, i, &v) != napi_ok || !arg_ifindex(&c, v, &list[i])) {
			free(list);
			return NULL;
		}
	}
	free(r->filter);
	r->filter = list;
	r->nfilter = len;
	r->filter_on = true;
	return NULL;
}

static napi_value js_if_index(napi_env env, napi_callback_info info)
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

napi_status rhumb_netlink_register(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "neighSet", NULL, js_neigh_set, NULL, NULL, NULL, napi_default_method, NULL },
		{ "neighDel", NULL, js_neigh_del, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbSet", NULL, js_fdb_set, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbDel", NULL, js_fdb_del, NULL, NULL, NULL, napi_default_method, NULL },
		{ "neighList", NULL, js_neigh_list, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbList", NULL, js_fdb_list, NULL, NULL, NULL, napi_default_method, NULL },
		{ "setFilter", NULL, js_set_filter, NULL, NULL, NULL, napi_default_method, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default_method, NULL },
	};
	napi_value cls, fn;
	napi_status s;

	s = napi_define_class(env, "RtnlSocket", NAPI_AUTO_LENGTH, js_ctor, NULL,
			      sizeof(methods) / sizeof(methods[0]), methods, &cls);
	if (s != napi_ok)
		return s;
	s = napi_set_named_property(env, exports, "RtnlSocket", cls);
	if (s != napi_ok)
		return s;
	s = napi_create_function(env, "ifIndex", NAPI_AUTO_LENGTH, js_if_index, NULL, &fn);
	if (s != napi_ok)
		return s;
	return napi_set_named_property(env, exports, "ifIndex", fn);
}
