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
 *
 * This file is the RtnlSocket object (its lifetime, the miss notifications, setFilter,
 * close); the requests, dumps and ifIndex, with their arguments, are in netlink_requests.c.
 */
#include "rhumb_napi.h"
#include "rhumb_netlink.h"
#include "rhumb_netlink_call.h"
#include "rhumb_napi_util.h"
#include "rhumb_rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
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

/* Starts an RtnlSocket method call (rhumb_netlink_call.h). */
bool rhumb_nl_begin(napi_env env, napi_callback_info info, const char *method, size_t required, const char *usage,
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

rhumb_rtnl_req *rhumb_nl_req(rh_rtnl *r)
{
	return &r->req;
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

static napi_value js_set_filter(napi_env env, napi_callback_info info)
{
	struct call c;
	bool is_array = false;
	uint32_t len = 0;
	int32_t *list = NULL;
	napi_value arr;
	rh_rtnl *r;

	if (!rhumb_nl_begin(env, info, "setFilter", 0, NULL, &c))
		return NULL;
	r = c.r;
	arr = rhumb_nl_optional(&c, 0);
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
		if (napi_get_element(env, arr, i, &v) != napi_ok || !rhumb_nl_arg_ifindex(&c, v, &list[i])) {
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

napi_status rhumb_netlink_register(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "neighSet", NULL, rhumb_nl_neigh_set, NULL, NULL, NULL, napi_default_method, NULL },
		{ "neighDel", NULL, rhumb_nl_neigh_del, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbSet", NULL, rhumb_nl_fdb_set, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbDel", NULL, rhumb_nl_fdb_del, NULL, NULL, NULL, napi_default_method, NULL },
		{ "neighList", NULL, rhumb_nl_neigh_list, NULL, NULL, NULL, napi_default_method, NULL },
		{ "fdbList", NULL, rhumb_nl_fdb_list, NULL, NULL, NULL, napi_default_method, NULL },
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
	s = napi_create_function(env, "ifIndex", NAPI_AUTO_LENGTH, rhumb_nl_if_index, NULL, &fn);
	if (s != napi_ok)
		return s;
	return napi_set_named_property(env, exports, "ifIndex", fn);
}
