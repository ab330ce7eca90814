/*
 * The native SVP front end: plaintext SVP connections read and written in C on the Node
 * main thread's libuv loop (uv_poll), so that a lookup runs no JavaScript. Per read, the
 * whole PING/VL2_REQ/VL3_REQ frames are answered from the index (svp_answer.c) straight
 * into the connection's write queue, sent with one write at the end of the read. Every
 * other frame (LOG_REQ, LOG_RM, BULK, bad input) is handed, whole and in order, to the
 * JS Connection (src/svp/connection.ts) as a 'data' event; its replies come back through
 * svpWrite into the same queue, so replies keep the order of the requests that produced
 * them synchronously, exactly as on the JS path.
 *
 * Bounds kept here: the write backlog (over `bound` unsent bytes the connection stops
 * being answered and read until the queue empties), the input (at most one read chunk
 * beyond the frame being assembled, which maxFrameBytes bounds).
 *
 *   svpFrontCreate(index, onEvent(id, kind, arg), maxFrameBytes, backlogBound, highWaterMark, latencyBounds)
 *   svpAdopt(front, fd) -> id (the fd is dup'ed; the caller closes its own)
 *   svpWrite(front, id, buf) -> unsent bytes, or -1 when the connection is closed
 *   svpPending / svpNeedDrain / svpPause / svpResume / svpEnd / svpDestroy / svpIdleMs (front, id)
 *   svpStats(front) -> Float64Array (see js_stats)       svpFrontRelease(front)
 */
#include "rhumb_svp_front.h"
#include "rhumb_napi.h"
#include "rhumb_napi_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* What one read asks for (the input buffer grows beyond only for a frame that needs it). */
#define READ_CHUNK (16 * 1024)
/* Buffers above this are freed when they empty, not kept for the next read. */
#define KEEP_BYTES (64 * 1024)
#define MAX_BOUNDS 32
/* Connection ids: generation * SLOT_SPACE + slot. */
#define SLOT_SPACE (1u << 20)

enum event_kind { EV_DATA = 0, EV_END = 1, EV_DRAIN = 2, EV_CLOSE = 3, EV_ERROR = 4, EV_FIRST_BYTE = 5 };
enum op_series { SERIES_PING, SERIES_VL2, SERIES_VL3, SERIES_N };

struct svp_hist {
	double sum, count, counts[MAX_BOUNDS];
};

struct svp_front;

struct svp_conn {
	struct svp_front *f;
	uv_poll_t poll;
	uv_timer_t kick; /* runs service() on the next loop turn (never inside a JS call) */
	int fd;
	int open_handles;
	double id;
	uint32_t slot;
	int poll_events;
	int err; /* a failed read or send, reported by service() */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *wq; /* unsent replies: wq[wq_head, wq_len) */
	size_t wq_head, wq_len, wq_cap;
	uint64_t last_active;
	bool js_paused, blocked, eof, eof_told, want_end, shut, closing, in_turn, want_drain, got_byte;
	bool pause_counted; /* this stop of reading is counted (a read since starts a new one) */
};

struct svp_front {
	napi_env env;
	napi_ref on_event;
	napi_ref index_ref;
	napi_async_context actx;
	struct svp_index *index;
	uv_loop_t *loop;
	uint32_t max_frame, bound, hwm;
	struct svp_conn **slots;
	uint32_t nslots;
	double gen;
	uint32_t refs; /* JS's (until svpFrontRelease) + one per open connection */
	bool released;
	struct svp_tally tally;
	double backlog_pauses;
	uint32_t nbounds;
	double bounds[MAX_BOUNDS];
	struct svp_hist hist[SERIES_N];
};

/* ---------- lifetime ---------- */

static void front_unref(struct svp_front *f)
{
	if (--f->refs > 0)
		return;
	napi_delete_reference(f->env, f->on_event);
	napi_delete_reference(f->env, f->index_ref);
	napi_async_destroy(f->env, f->actx);
	free(f->slots);
	free(f);
}

static size_t pending(const struct svp_conn *c)
{
	return c->wq_len - c->wq_head;
}

/* Calls onEvent(id, kind, arg) from the loop (no JavaScript on the stack). */
static void deliver(struct svp_conn *c, enum event_kind kind, const uint8_t *data, size_t len, int err)
{
	struct svp_front *f = c->f;
	napi_env env = f->env;
	napi_handle_scope scope;
	napi_value cb, argv[3], exc;
	napi_status s;

	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_get_reference_value(env, f->on_event, &cb) == napi_ok && cb &&
	    napi_create_double(env, c->id, &argv[0]) == napi_ok && napi_create_uint32(env, kind, &argv[1]) == napi_ok &&
	    (kind == EV_DATA ? napi_create_buffer_copy(env, len, data, NULL, &argv[2])
			     : napi_create_int32(env, err, &argv[2])) == napi_ok) {
		s = napi_make_callback(env, f->actx, cb, cb, 3, argv, NULL);
		if (s == napi_pending_exception && napi_get_and_clear_last_exception(env, &exc) == napi_ok)
			napi_fatal_exception(env, exc);
	}
	napi_close_handle_scope(env, scope);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct svp_conn *c = h->data;
	struct svp_front *f = c->f;

	if (--c->open_handles > 0)
		return;
	close(c->fd); /* only now: libuv must not be watching an fd we close */
	deliver(c, EV_CLOSE, NULL, 0, 0);
	free(c->in);
	free(c->wq);
	free(c);
	front_unref(f);
}

static void flush(struct svp_conn *c);

/*
 * Closes the connection now; JS hears 'close' on a later loop turn (as from a net.Socket).
 * What is queued gets one last non-blocking send first, as net.Socket writes go out at
 * once when the socket takes them (replies before a bad frame still reach the client).
 */
static void destroy(struct svp_conn *c)
{
	if (c->closing)
		return;
	if (!c->err)
		flush(c);
	c->closing = true;
	c->f->slots[c->slot] = NULL;
	uv_poll_stop(&c->poll);
	uv_timer_stop(&c->kick);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

static void arm_kick(struct svp_conn *c);

/* Notes a failed read or send; service() reports it and closes. */
static void fail(struct svp_conn *c, int err)
{
	if (!c->err)
		c->err = err;
	arm_kick(c);
}

/* ---------- writing ---------- */

static bool reserve(struct svp_conn *c, size_t n)
{
	size_t want;
	uint8_t *grown;

	if (c->wq_cap - c->wq_len >= n)
		return true;
	if (c->wq_head > 0 && c->wq_cap - pending(c) >= n) {
		memmove(c->wq, c->wq + c->wq_head, pending(c));
		c->wq_len -= c->wq_head;
		c->wq_head = 0;
		return true;
	}
	want = c->wq_cap ? c->wq_cap : 4096;
	while (want - c->wq_len < n)
		want *= 2;
	grown = realloc(c->wq, want);
	if (!grown)
		return false;
	c->wq = grown;
	c->wq_cap = want;
	return true;
}

/* Sends what is queued, as far as the socket takes it. */
static void flush(struct svp_conn *c)
{
	while (pending(c) > 0 && !c->err) {
		ssize_t n = send(c->fd, c->wq + c->wq_head, pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->wq_head += (size_t)n;
			c->last_active = uv_now(c->f->loop);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			fail(c, n < 0 ? errno : EPIPE);
			break;
		}
	}
	if (pending(c) == 0) {
		c->wq_head = c->wq_len = 0;
		if (c->wq_cap > KEEP_BYTES) {
			free(c->wq);
			c->wq = NULL;
			c->wq_cap = 0;
		}
		if (c->want_end && !c->shut && !c->err) {
			shutdown(c->fd, SHUT_WR);
			c->shut = true;
		}
	}
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(struct svp_conn *c)
{
	int want = 0;

	if (c->closing)
		return;
	if (!c->js_paused && !c->blocked && !c->eof && !c->err)
		want |= UV_READABLE;
	if (pending(c) > 0 && !c->err)
		want |= UV_WRITABLE;
	if (want == c->poll_events)
		return;
	c->poll_events = want;
	if (want == 0)
		uv_poll_stop(&c->poll);
	else if (uv_poll_start(&c->poll, want, on_poll) != 0)
		fail(c, EBADF);
}

/* ---------- reading and answering ---------- */

/* Adds one read turn's native answers to the latency histograms (each gets the average). */
static void account(struct svp_front *f, const struct svp_tally *before, uint64_t t0)
{
	const struct svp_tally *t = &f->tally;
	double n[SERIES_N] = {
		(double)(t->ping - before->ping),
		(double)(t->vl2_ok + t->vl2_notfound - before->vl2_ok - before->vl2_notfound),
		(double)(t->vl3_ok + t->vl3_notfound + t->vl3_badtype - before->vl3_ok - before->vl3_notfound -
			 before->vl3_badtype),
	};
	double total = n[0] + n[1] + n[2], each;
	uint32_t b = 0;

	if (total == 0)
		return;
	each = (double)(uv_hrtime() - t0) / 1e9 / total;
	while (b < f->nbounds && each > f->bounds[b])
		b++;
	for (int s = 0; s < SERIES_N; s++) {
		if (n[s] == 0)
			continue;
		f->hist[s].sum += each * n[s];
		f->hist[s].count += n[s];
		if (b < f->nbounds)
			f->hist[s].counts[b] += n[s];
	}
}

static void drop_input(struct svp_conn *c, size_t off)
{
	if (off >= c->in_len) {
		c->in_len = 0;
		if (c->in_cap > KEEP_BYTES) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
	} else if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

/*
 * Answers or hands to JS the whole frames received, in order, while the unsent replies
 * stay under the bound (checked before each frame, as connection.ts does). Runs only from
 * the loop, never inside a call from JS.
 */
static void answer_input(struct svp_conn *c)
{
	struct svp_front *f = c->f;
	struct svp_tally before = f->tally;
	uint64_t t0 = uv_hrtime();
	size_t off = 0;

	c->in_turn = true;
	while (!c->closing && !c->js_paused && !c->blocked && !c->err) {
		size_t avail = c->in_len - off, flen = 0, n = 0;
		enum svp_step st = svp_classify(c->in + off, avail, f->max_frame, &flen);

		if (st == SVP_STEP_NEED_MORE)
			break;
		if (st == SVP_STEP_REST_TO_JS) {
			deliver(c, EV_DATA, c->in + off, avail, 0);
			off = c->in_len;
			break;
		}
		if (pending(c) > f->bound) {
			c->blocked = true;
			if (!c->pause_counted)
				f->backlog_pauses++;
			c->pause_counted = true;
			break;
		}
		if (st == SVP_STEP_NATIVE) {
			if (!reserve(c, SVP_MAX_NATIVE_REPLY)) {
				fail(c, ENOMEM);
				break;
			}
			if (f->index->cur)
				n = svp_answer(f->index->cur, c->in + off, c->wq + c->wq_len, &f->tally);
			c->wq_len += n;
		}
		/* Not ours, or a bad CRC (JS says so and closes): JS takes the frame. */
		if (n == 0)
			deliver(c, EV_DATA, c->in + off, flen, 0);
		off += flen;
	}
	drop_input(c, off);
	account(f, &before, t0);
	c->in_turn = false;
}

/*
 * Everything a connection does outside JS calls: report an error, send, answer what was
 * read (again once the backlog drained), pass the end of input on once all before it is
 * answered, and ask the poll for what it needs next.
 */
static void service(struct svp_conn *c)
{
	int round;

	for (round = 0; round < 64 && !c->closing; round++) {
		if (c->err) {
			deliver(c, EV_ERROR, NULL, 0, c->err);
			destroy(c);
			return;
		}
		if (!c->js_paused && !c->blocked)
			answer_input(c);
		if (c->closing)
			return;
		flush(c);
		if (c->err)
			continue;
		if (pending(c) == 0 && c->want_drain) {
			c->want_drain = false;
			deliver(c, EV_DRAIN, NULL, 0, 0);
			continue;
		}
		if (c->blocked && pending(c) == 0) {
			c->blocked = false;
			continue;
		}
		break;
	}
	if (c->closing)
		return;
	if (round == 64) {
		arm_kick(c); /* more to do: on the next loop turn */
		return;
	}
	if (c->eof && !c->eof_told && !c->blocked && !c->js_paused) {
		/* A partial frame left at the end goes to JS, which reports it truncated. */
		if (c->in_len > 0)
			deliver(c, EV_DATA, c->in, c->in_len, 0);
		drop_input(c, c->in_len);
		c->eof_told = true;
		if (!c->closing)
			deliver(c, EV_END, NULL, 0, 0);
	}
	if (c->closing)
		return;
	if (c->eof_told && c->shut && pending(c) == 0) {
		destroy(c); /* both directions done, as a net.Socket without allowHalfOpen work left */
		return;
	}
	update_poll(c);
}

static void read_some(struct svp_conn *c)
{
	ssize_t n;

	if (c->in_cap - c->in_len < READ_CHUNK) {
		size_t want = c->in_len + READ_CHUNK;
		uint8_t *grown = realloc(c->in, want);
		if (!grown) {
			fail(c, ENOMEM);
			return;
		}
		c->in = grown;
		c->in_cap = want;
	}
	n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n > 0) {
		c->in_len += (size_t)n;
		c->pause_counted = false;
		c->last_active = uv_now(c->f->loop);
		if (!c->got_byte) {
			c->got_byte = true;
			deliver(c, EV_FIRST_BYTE, NULL, 0, 0);
		}
	} else if (n == 0) {
		c->eof = true;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		fail(c, errno);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct svp_conn *c = h->data;

	if (c->closing)
		return;
	if (status < 0) {
		fail(c, -status);
	} else if (events & UV_READABLE) {
		read_some(c);
	}
	service(c);
}

static void on_kick(uv_timer_t *t)
{
	struct svp_conn *c = t->data;
	if (!c->closing)
		service(c);
}

static void arm_kick(struct svp_conn *c)
{
	if (!c->closing)
		uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---------- Node-API ---------- */

static bool get_front(napi_env env, napi_value v, struct svp_front **out)
{
	napi_valuetype t;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)out) != napi_ok ||
	    !*out) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an SVP front end (svpFrontCreate)");
		return false;
	}
	return true;
}

/* (front, id, ...): the open connection, or NULL (closed: the call does nothing). */
static struct svp_conn *conn_args(napi_env env, napi_callback_info info, napi_value *argv, size_t want,
				  struct svp_front **fout)
{
	size_t argc = want;
	struct svp_front *f;
	double id;
	uint32_t slot;
	struct svp_conn *c;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, NULL, "svp: missing arguments");
		return NULL;
	}
	if (!get_front(env, argv[0], &f))
		return NULL;
	if (fout)
		*fout = f;
	if (napi_get_value_double(env, argv[1], &id) != napi_ok || id < 0) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svp: bad connection id");
		return NULL;
	}
	slot = (uint32_t)((uint64_t)id % SLOT_SPACE);
	c = slot < f->nslots ? f->slots[slot] : NULL;
	return c && c->id == id && !c->closing ? c : NULL;
}

static void front_finalize(napi_env env, void *data, void *hint)
{
	/* Nothing: svpFrontRelease and the last connection's close free the front. */
}

static napi_value js_front_create(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6], out, name;
	napi_valuetype t;
	struct svp_front *f;
	struct svp_index *ix;
	uint32_t nb = 0;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 6 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
		napi_throw_type_error(env, NULL, "svpFrontCreate(index, onEvent, maxFrameBytes, backlogBound, highWaterMark, bounds)");
		return NULL;
	}
	if (!svp_get_index(env, argv[0], &ix))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		napi_throw_error(env, "ENOMEM", "svpFrontCreate: out of memory");
		return NULL;
	}
	f->env = env;
	f->index = ix;
	f->refs = 1;
	f->gen = 1;
	if (napi_get_value_uint32(env, argv[2], &f->max_frame) != napi_ok || napi_get_value_uint32(env, argv[3], &f->bound) != napi_ok ||
	    napi_get_value_uint32(env, argv[4], &f->hwm) != napi_ok || napi_get_array_length(env, argv[5], &nb) != napi_ok ||
	    nb > MAX_BOUNDS) {
		free(f);
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svpFrontCreate: bad limits or latency bounds");
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++) {
		napi_value v;
		if (napi_get_element(env, argv[5], i, &v) != napi_ok || napi_get_value_double(env, v, &f->bounds[i]) != napi_ok) {
			free(f);
			rhumb_throw_pending_or(env, "svpFrontCreate: bad latency bounds");
			return NULL;
		}
	}
	f->nbounds = nb;
	if (napi_get_uv_event_loop(env, &f->loop) != napi_ok || napi_create_reference(env, argv[1], 1, &f->on_event) != napi_ok) {
		free(f);
		rhumb_throw_pending_or(env, "svpFrontCreate: setup failed");
		return NULL;
	}
	if (napi_create_reference(env, argv[0], 1, &f->index_ref) != napi_ok ||
	    napi_create_string_utf8(env, "rhumb:svp", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, argv[1], name, &f->actx) != napi_ok) {
		napi_delete_reference(env, f->on_event);
		if (f->index_ref)
			napi_delete_reference(env, f->index_ref);
		free(f);
		rhumb_throw_pending_or(env, "svpFrontCreate: setup failed");
		return NULL;
	}
	if (napi_create_external(env, f, front_finalize, NULL, &out) != napi_ok) {
		front_unref(f);
		rhumb_throw_pending_or(env, "svpFrontCreate: napi_create_external failed");
		return NULL;
	}
	return out;
}

/* Drops JS's hold on the front; it is freed once its last connection has closed. */
static napi_value js_front_release(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct svp_front *f;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || !get_front(env, argv[0], &f))
		return NULL;
	if (!f->released) {
		f->released = true;
		for (uint32_t s = 0; s < f->nslots; s++)
			if (f->slots[s])
				destroy(f->slots[s]);
		front_unref(f);
	}
	return NULL;
}

static int take_slot(struct svp_front *f, uint32_t *out)
{
	for (uint32_t s = 0; s < f->nslots; s++)
		if (!f->slots[s]) {
			*out = s;
			return 0;
		}
	if (f->nslots >= SLOT_SPACE)
		return EMFILE;
	{
		uint32_t n = f->nslots ? f->nslots * 2 : 64;
		struct svp_conn **grown = realloc(f->slots, (size_t)n * sizeof(*grown));
		if (!grown)
			return ENOMEM;
		memset(grown + f->nslots, 0, (size_t)(n - f->nslots) * sizeof(*grown));
		*out = f->nslots;
		f->slots = grown;
		f->nslots = n;
	}
	return 0;
}

static napi_value js_adopt(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out;
	struct svp_front *f;
	int32_t fd0;
	int fd, rc;
	uint32_t slot;
	struct svp_conn *c;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2 || !get_front(env, argv[0], &f))
		return argc < 2 ? (napi_throw_type_error(env, NULL, "svpAdopt(front, fd)"), NULL) : NULL;
	if (napi_get_value_int32(env, argv[1], &fd0) != napi_ok || fd0 < 0) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svpAdopt: fd must be a file descriptor");
		return NULL;
	}
	rc = take_slot(f, &slot);
	if (rc) {
		rhumb_throw_sys(env, "svpAdopt", "svpAdopt", rc, NULL);
		return NULL;
	}
	fd = fcntl(fd0, F_DUPFD_CLOEXEC, 0);
	c = fd >= 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		rc = fd < 0 ? errno : ENOMEM;
		if (fd >= 0)
			close(fd);
		rhumb_throw_sys(env, "svpAdopt", "dup", rc, NULL);
		return NULL;
	}
	/* The socket was non-blocking already (a libuv stream); the flag is the file's, shared. */
	c->f = f;
	c->fd = fd;
	c->slot = slot;
	c->id = f->gen++ * SLOT_SPACE + slot;
	c->last_active = uv_now(f->loop);
	rc = uv_poll_init(f->loop, &c->poll, fd);
	if (rc != 0) {
		close(fd);
		free(c);
		rhumb_throw_sys(env, "svpAdopt", "uv_poll_init", -rc, NULL);
		return NULL;
	}
	uv_timer_init(f->loop, &c->kick);
	c->poll.data = c;
	c->kick.data = c;
	c->open_handles = 2;
	f->slots[slot] = c;
	f->refs++;
	update_poll(c);
	RHUMB_CHECK(env, napi_create_double(env, c->id, &out));
	return out;
}

static napi_value num(napi_env env, double v)
{
	napi_value out = NULL;
	napi_create_double(env, v, &out);
	return out;
}

static napi_value js_write(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct svp_conn *c = conn_args(env, info, argv, 3, NULL);
	void *data;
	size_t len;
	bool is_buf = false;

	if (!c)
		return num(env, -1);
	if (napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf || napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svpWrite: expected a Buffer");
		return NULL;
	}
	if (c->want_end || c->err)
		return num(env, -1);
	if (!reserve(c, len)) {
		fail(c, ENOMEM);
		return num(env, -1);
	}
	memcpy(c->wq + c->wq_len, data, len);
	c->wq_len += len;
	/* Inside a read turn the turn's single write sends it; otherwise send now. */
	if (!c->in_turn) {
		flush(c);
		update_poll(c);
	}
	return num(env, (double)pending(c));
}

static napi_value js_pending(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	return num(env, c ? (double)pending(c) : 0);
}

/* Whether the unsent replies are past the high-water mark; if so 'drain' follows when they are sent. */
static napi_value js_need_drain(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	bool need = c && pending(c) >= c->f->hwm;

	if (need)
		c->want_drain = true;
	napi_get_boolean(env, need, &out);
	return out;
}

static napi_value js_pause(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c) {
		c->js_paused = true;
		update_poll(c);
	}
	return NULL;
}

static napi_value js_resume(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c && c->js_paused) {
		c->js_paused = false;
		arm_kick(c); /* frames held meanwhile are answered on the next loop turn */
	}
	return NULL;
}

static napi_value js_end(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c && !c->want_end) {
		c->want_end = true;
		arm_kick(c); /* sends what is queued, then shuts down the sending side */
	}
	return NULL;
}

static napi_value js_destroy(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c)
		destroy(c);
	return NULL;
}

static napi_value js_idle_ms(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_front *f = NULL;
	struct svp_conn *c = conn_args(env, info, argv, 2, &f);
	if (!c)
		return num(env, 0);
	uv_update_time(f->loop);
	return num(env, (double)(uv_now(f->loop) - c->last_active));
}

/*
 * [ping, vl2 ok, vl2 notfound, vl3 ok, vl3 notfound, vl3 badl3type, backlog pauses, then
 * per series (ping, vl2, vl3): sum, count, one count per bound]; counted since the last
 * call (the counters restart at zero).
 */
static napi_value js_stats(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], ab, out;
	struct svp_front *f;
	double *d;
	size_t n, k = 0;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || !get_front(env, argv[0], &f))
		return NULL;
	n = 7 + SERIES_N * (2 + f->nbounds);
	RHUMB_CHECK(env, napi_create_arraybuffer(env, n * sizeof(double), (void **)&d, &ab));
	d[k++] = (double)f->tally.ping;
	d[k++] = (double)f->tally.vl2_ok;
	d[k++] = (double)f->tally.vl2_notfound;
	d[k++] = (double)f->tally.vl3_ok;
	d[k++] = (double)f->tally.vl3_notfound;
	d[k++] = (double)f->tally.vl3_badtype;
	d[k++] = f->backlog_pauses;
	for (int s = 0; s < SERIES_N; s++) {
		d[k++] = f->hist[s].sum;
		d[k++] = f->hist[s].count;
		for (uint32_t b = 0; b < f->nbounds; b++)
			d[k++] = f->hist[s].counts[b];
	}
	memset(&f->tally, 0, sizeof(f->tally));
	memset(f->hist, 0, sizeof(f->hist));
	f->backlog_pauses = 0;
	RHUMB_CHECK(env, napi_create_typedarray(env, napi_float64_array, n, ab, 0, &out));
	return out;
}

napi_status rhumb_svp_front_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "svpFrontCreate", NULL, js_front_create, NULL, NULL, NULL, napi_default, NULL },
		{ "svpFrontRelease", NULL, js_front_release, NULL, NULL, NULL, napi_default, NULL },
		{ "svpAdopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL },
		{ "svpWrite", NULL, js_write, NULL, NULL, NULL, napi_default, NULL },
		{ "svpPending", NULL, js_pending, NULL, NULL, NULL, napi_default, NULL },
		{ "svpNeedDrain", NULL, js_need_drain, NULL, NULL, NULL, napi_default, NULL },
		{ "svpPause", NULL, js_pause, NULL, NULL, NULL, napi_default, NULL },
		{ "svpResume", NULL, js_resume, NULL, NULL, NULL, napi_default, NULL },
		{ "svpEnd", NULL, js_end, NULL, NULL, NULL, napi_default, NULL },
		{ "svpDestroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL },
		{ "svpIdleMs", NULL, js_idle_ms, NULL, NULL, NULL, napi_default, NULL },
		{ "svpStats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
	};
	return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
