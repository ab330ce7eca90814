/*
 * NFLOG (nfnetlink_log) subscription: the firewall's logged rules send the packets they
 * match to one log group of the node's namespace; this socket binds that group, copies
 * only the first 128 bytes of each packet, and parses them here, so JavaScript receives
 * one small record per logged packet (a logged rule fires once per connection), never
 * the packet.
 *
 * class NflogSocket
 *   new NflogSocket(group, onRecords)   binds the group (EBUSY: another socket has it);
 *                              onRecords(records) per batch, each record
 *                              { prefix, family: 4|6, proto, src, dst, sport?, dport?, time }
 *                              (time: Unix ms), or onRecords({ kind: 'overflow' }) when
 *                              the kernel dropped records, { kind: 'error', message }
 *                              when the socket stopped
 *   close()
 */
#include "rhumb_nflog.h"
#include "rhumb_nflog_parse.h"
#include "rhumb_napi.h"
#include "rhumb_napi_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#define NFLOG_BUFSZ (256 * 1024)
#define NFLOG_COPY 128
#define NFLOG_BATCH 64 /* datagrams per wakeup, then yield to the loop */

typedef struct rh_nflog {
	uv_poll_t handle;
	napi_env env;
	int fd;
	uint8_t *buf;
	napi_ref on_records;
	napi_ref self;
	napi_async_context actx;
	bool has_actx;
	bool polling;
	bool closed;
	bool hook_registered;
	int refs; /* wrapper + open poll handle */
} rh_nflog;

/* ---------- netlink configuration ---------- */

struct cfg_msg {
	struct nlmsghdr nh;
	struct nfgenmsg nf;
	uint8_t attrs[64];
};

static void put_attr(struct cfg_msg *m, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)((uint8_t *)m + NLMSG_ALIGN(m->nh.nlmsg_len));
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	m->nh.nlmsg_len = NLMSG_ALIGN(m->nh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* One config request for the group, acknowledged; 0 or a positive errno. */
static int configure(int fd, uint16_t group, uint32_t seq, uint16_t type, const void *data, uint16_t len)
{
	struct cfg_msg m;
	uint8_t reply[4096];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	memset(&m, 0, sizeof(m));
	m.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
	m.nh.nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	m.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	m.nh.nlmsg_seq = seq;
	m.nf.nfgen_family = AF_UNSPEC;
	m.nf.version = NFNETLINK_V0;
	m.nf.res_id = htons(group);
	put_attr(&m, type, data, len);
	if (send(fd, &m, m.nh.nlmsg_len, 0) < 0)
		return errno;
	for (;;) {
		ssize_t n;
		struct nlmsghdr *nh;
		size_t left;

		if (poll(&pfd, 1, 2000) <= 0)
			return ETIMEDOUT;
		n = recv(fd, reply, sizeof(reply), 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno;
		}
		left = (size_t)n;
		for (nh = (struct nlmsghdr *)reply; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_seq != seq || nh->nlmsg_type != NLMSG_ERROR)
				continue;
			return -((struct nlmsgerr *)NLMSG_DATA(nh))->error;
		}
	}
}

/* The socket bound to the group, copying NFLOG_COPY bytes, flushing each packet at once. */
static int open_group(uint16_t group, int *out)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct nfulnl_msg_config_cmd bind_cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = { .copy_range = htonl(NFLOG_COPY), .copy_mode = NFULNL_COPY_PACKET };
	uint32_t qthresh = htonl(1);
	int rcvbuf = 1 << 20;
	int fd, err;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		close(fd);
		return err;
	}
	if ((err = configure(fd, group, 1, NFULA_CFG_CMD, &bind_cmd, sizeof(bind_cmd))) != 0 ||
	    (err = configure(fd, group, 2, NFULA_CFG_MODE, &mode, sizeof(mode))) != 0 ||
	    (err = configure(fd, group, 3, NFULA_CFG_QTHRESH, &qthresh, sizeof(qthresh))) != 0) {
		close(fd);
		return err;
	}
	/* Only now non-blocking: the configuration above waited for its acks. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		err = errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* ---------- lifetime ---------- */

static void maybe_free(rh_nflog *n)
{
	if (--n->refs > 0)
		return;
	free(n->buf);
	free(n);
}

static void on_closed(uv_handle_t *h)
{
	rh_nflog *n = (rh_nflog *)h;
	close(n->fd); /* only now: libuv must not be watching an fd we close */
	maybe_free(n);
}

static void close_native(rh_nflog *n)
{
	if (n->closed)
		return;
	n->closed = true;
	if (n->polling) {
		n->polling = false;
		uv_poll_stop(&n->handle);
		uv_close((uv_handle_t *)&n->handle, on_closed);
	}
}

static void release_js(rh_nflog *n)
{
	if (n->on_records) {
		napi_delete_reference(n->env, n->on_records);
		n->on_records = NULL;
	}
	if (n->has_actx) {
		napi_async_destroy(n->env, n->actx);
		n->has_actx = false;
	}
	if (n->self) {
		napi_delete_reference(n->env, n->self);
		n->self = NULL;
	}
}

static void env_cleanup(void *arg)
{
	rh_nflog *n = arg;
	n->hook_registered = false;
	close_native(n);
}

static void finalize(napi_env env, void *data, void *hint)
{
	rh_nflog *n = data;
	if (n->hook_registered) {
		napi_remove_env_cleanup_hook(env, env_cleanup, n);
		n->hook_registered = false;
	}
	close_native(n);
	maybe_free(n);
}

/* ---------- delivery ---------- */

static void deliver(rh_nflog *n, napi_value arg)
{
	napi_value cb, self, exc;
	if (!n->on_records || !n->self || napi_get_reference_value(n->env, n->on_records, &cb) != napi_ok ||
	    napi_get_reference_value(n->env, n->self, &self) != napi_ok || !cb || !self)
		return;
	if (napi_make_callback(n->env, n->actx, self, cb, 1, &arg, NULL) == napi_pending_exception &&
	    napi_get_and_clear_last_exception(n->env, &exc) == napi_ok)
		napi_fatal_exception(n->env, exc);
}

static void deliver_status(rh_nflog *n, const char *kind, int err)
{
	napi_handle_scope scope;
	napi_value ev;
	if (napi_open_handle_scope(n->env, &scope) != napi_ok)
		return;
	if (napi_create_object(n->env, &ev) == napi_ok) {
		rhumb_set_str(n->env, ev, "kind", kind);
		if (err)
			rhumb_set_str(n->env, ev, "message", strerror(err));
		deliver(n, ev);
	}
	napi_close_handle_scope(n->env, scope);
}

static napi_value record_value(napi_env env, const struct rh_nflog_record *r)
{
	napi_value o;
	if (napi_create_object(env, &o) != napi_ok)
		return NULL;
	rhumb_set_str(env, o, "prefix", r->prefix);
	rhumb_set_num(env, o, "family", r->family);
	rhumb_set_num(env, o, "proto", r->proto);
	rhumb_set_str(env, o, "src", r->src);
	rhumb_set_str(env, o, "dst", r->dst);
	if (r->sport >= 0) {
		rhumb_set_num(env, o, "sport", r->sport);
		rhumb_set_num(env, o, "dport", r->dport);
	}
	rhumb_set_num(env, o, "time", r->time_ms);
	return o;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	rh_nflog *n = (rh_nflog *)h;
	napi_handle_scope scope;
	napi_value list;
	uint32_t count = 0;

	if (n->closed)
		return;
	if (status < 0) {
		deliver_status(n, "error", -status);
		close_native(n);
		return;
	}
	if (napi_open_handle_scope(n->env, &scope) != napi_ok)
		return;
	if (napi_create_array(n->env, &list) != napi_ok) {
		napi_close_handle_scope(n->env, scope);
		return;
	}
	for (int i = 0; i < NFLOG_BATCH && !n->closed; i++) {
		ssize_t got = recv(n->fd, n->buf, NFLOG_BUFSZ, 0);
		struct nlmsghdr *nh;
		size_t left;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				deliver_status(n, "overflow", 0);
				continue;
			}
			deliver_status(n, "error", errno);
			close_native(n);
			break;
		}
		left = (size_t)got;
		for (nh = (struct nlmsghdr *)n->buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			struct rh_nflog_record r;
			napi_value v;
			if (rh_nflog_parse_packet(nh, &r) && (v = record_value(n->env, &r)) != NULL)
				napi_set_element(n->env, list, count++, v);
		}
	}
	if (count > 0 && !n->closed)
		deliver(n, list);
	napi_close_handle_scope(n->env, scope);
}

/* ---------- class NflogSocket ---------- */

static napi_value js_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self, target, name;
	napi_valuetype t = napi_undefined;
	uint32_t group = 0;
	uv_loop_t *loop;
	rh_nflog *n;
	int fd = -1, err, rc;

	RHUMB_CHECK(env, napi_get_new_target(env, info, &target));
	if (!target) {
		napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "NflogSocket: use new");
		return NULL;
	}
	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc < 2 || napi_get_value_uint32(env, argv[0], &group) != napi_ok || group > 65535) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "NflogSocket(group, onRecords): group must be 0..65535");
		return NULL;
	}
	RHUMB_CHECK(env, napi_typeof(env, argv[1], &t));
	if (t != napi_function) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "NflogSocket(group, onRecords): onRecords must be a function");
		return NULL;
	}
	err = open_group((uint16_t)group, &fd);
	if (err) {
		char what[96];
		snprintf(what, sizeof(what), "NflogSocket: binding NFLOG group %u", group);
		rhumb_throw_sys(env, what, "NFULNL_CFG_CMD_BIND", err, NULL);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n)
		n->buf = malloc(NFLOG_BUFSZ);
	if (!n || !n->buf || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &n->handle, fd) != 0) {
		close(fd);
		if (n)
			free(n->buf);
		free(n);
		napi_throw_error(env, "ENOMEM", "NflogSocket: setting up failed");
		return NULL;
	}
	n->env = env;
	n->fd = fd;
	n->polling = true;
	n->refs = 2; /* the wrapper, the open poll handle */
	if (napi_wrap(env, self, n, finalize, NULL, NULL) != napi_ok) {
		close_native(n);
		maybe_free(n);
		rhumb_throw_pending_or(env, "NflogSocket: napi_wrap failed");
		return NULL;
	}
	if (napi_add_env_cleanup_hook(env, env_cleanup, n) == napi_ok)
		n->hook_registered = true;
	if (napi_create_reference(env, argv[1], 1, &n->on_records) != napi_ok || napi_create_reference(env, self, 1, &n->self) != napi_ok ||
	    napi_create_string_utf8(env, "rhumb:nflog", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, self, name, &n->actx) != napi_ok) {
		close_native(n);
		release_js(n);
		rhumb_throw_pending_or(env, "NflogSocket: setting up the callback failed");
		return NULL;
	}
	n->has_actx = true;
	rc = uv_poll_start(&n->handle, UV_READABLE, on_poll);
	if (rc != 0) {
		close_native(n);
		release_js(n);
		rhumb_throw_sys(env, "NflogSocket: polling", "uv_poll_start", -rc, NULL);
		return NULL;
	}
	return self;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value self;
	rh_nflog *n = NULL;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
	if (napi_unwrap(env, self, (void **)&n) != napi_ok || !n) {
		napi_throw_type_error(env, "ERR_INVALID_THIS", "close: called on an object that is not an NflogSocket");
		return NULL;
	}
	if (!n->closed) {
		close_native(n);
		release_js(n);
		if (n->hook_registered) {
			napi_remove_env_cleanup_hook(env, env_cleanup, n);
			n->hook_registered = false;
		}
	}
	return NULL;
}

napi_status rhumb_nflog_register(napi_env env, napi_value exports)
{
	napi_value cls;
	napi_property_descriptor methods[] = {
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default_method, NULL },
	};
	napi_status s = napi_define_class(env, "NflogSocket", NAPI_AUTO_LENGTH, js_ctor, NULL, 1, methods, &cls);
	if (s != napi_ok)
		return s;
	return napi_set_named_property(env, exports, "NflogSocket", cls);
}
