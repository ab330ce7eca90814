/*
 * The native SVP front end's connections (rhumb_svp_conn.h): each polled on the Node main
 * thread's libuv loop; per read, whole PING/VL2_REQ/VL3_REQ frames answered from the index
 * (svp_answer.c) into the write queue and sent with one write at the end of the read;
 * every other frame handed whole, in order, to the JS connection as a 'data' event, its
 * replies coming back into the same queue (svp_front.c's svpWrite).
 *
 * Bounds: the write backlog (over `bound` unsent bytes a connection stops being answered
 * and read until the queue empties), the input (one read chunk beyond the frame being
 * assembled, which maxFrameBytes bounds).
 */
#include "rhumb_svp_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------- lifetime ---------- */

void svp_front_unref(struct svp_front *f)
{
	if (--f->refs > 0)
		return;
	napi_delete_reference(f->env, f->on_event);
	napi_delete_reference(f->env, f->index_ref);
	napi_async_destroy(f->env, f->actx);
	free(f->slots);
	free(f);
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
	svp_front_unref(f);
}


/*
 * Closes the connection now; JS hears 'close' on a later loop turn (as from a net.Socket).
 * What is queued gets one last non-blocking send first, as net.Socket writes go out at
 * once when the socket takes them (replies before a bad frame still reach the client).
 */
void svp_conn_destroy(struct svp_conn *c)
{
	if (c->closing)
		return;
	if (!c->err)
		svp_conn_flush(c);
	c->closing = true;
	c->f->slots[c->slot] = NULL;
	uv_poll_stop(&c->poll);
	uv_timer_stop(&c->kick);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}


/* Notes a failed read or send; service() reports it and closes. */
void svp_conn_fail(struct svp_conn *c, int err)
{
	if (!c->err)
		c->err = err;
	svp_conn_arm_kick(c);
}

/* ---------- writing ---------- */

bool svp_conn_reserve(struct svp_conn *c, size_t n)
{
	size_t want;
	uint8_t *grown;

	if (c->wq_cap - c->wq_len >= n)
		return true;
	if (c->wq_head > 0 && c->wq_cap - svp_pending(c) >= n) {
		memmove(c->wq, c->wq + c->wq_head, svp_pending(c));
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
void svp_conn_flush(struct svp_conn *c)
{
	while (svp_pending(c) > 0 && !c->err) {
		ssize_t n = send(c->fd, c->wq + c->wq_head, svp_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->wq_head += (size_t)n;
			c->last_active = uv_now(c->f->loop);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			svp_conn_fail(c, n < 0 ? errno : EPIPE);
			break;
		}
	}
	if (svp_pending(c) == 0) {
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

void svp_conn_update_poll(struct svp_conn *c)
{
	int want = 0;

	if (c->closing)
		return;
	if (!c->js_paused && !c->blocked && !c->eof && !c->err)
		want |= UV_READABLE;
	if (svp_pending(c) > 0 && !c->err)
		want |= UV_WRITABLE;
	if (want == c->poll_events)
		return;
	c->poll_events = want;
	if (want == 0)
		uv_poll_stop(&c->poll);
	else if (uv_poll_start(&c->poll, want, on_poll) != 0)
		svp_conn_fail(c, EBADF);
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
		if (svp_pending(c) > f->bound) {
			c->blocked = true;
			if (!c->pause_counted)
				f->backlog_pauses++;
			c->pause_counted = true;
			break;
		}
		if (st == SVP_STEP_NATIVE) {
			if (!svp_conn_reserve(c, SVP_MAX_NATIVE_REPLY)) {
				svp_conn_fail(c, ENOMEM);
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
			svp_conn_destroy(c);
			return;
		}
		if (!c->js_paused && !c->blocked)
			answer_input(c);
		if (c->closing)
			return;
		svp_conn_flush(c);
		if (c->err)
			continue;
		if (svp_pending(c) == 0 && c->want_drain) {
			c->want_drain = false;
			deliver(c, EV_DRAIN, NULL, 0, 0);
			continue;
		}
		if (c->blocked && svp_pending(c) == 0) {
			c->blocked = false;
			continue;
		}
		break;
	}
	if (c->closing)
		return;
	if (round == 64) {
		svp_conn_arm_kick(c); /* more to do: on the next loop turn */
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
	if (c->eof_told && c->shut && svp_pending(c) == 0) {
		svp_conn_destroy(c); /* both directions done, as a net.Socket without allowHalfOpen work left */
		return;
	}
	svp_conn_update_poll(c);
}

static void read_some(struct svp_conn *c)
{
	ssize_t n;

	if (c->in_cap - c->in_len < READ_CHUNK) {
		size_t want = c->in_len + READ_CHUNK;
		uint8_t *grown = realloc(c->in, want);
		if (!grown) {
			svp_conn_fail(c, ENOMEM);
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
		svp_conn_fail(c, errno);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct svp_conn *c = h->data;

	if (c->closing)
		return;
	if (status < 0) {
		svp_conn_fail(c, -status);
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

void svp_conn_arm_kick(struct svp_conn *c)
{
	if (!c->closing)
		uv_timer_start(&c->kick, on_kick, 0, 0);
}

int svp_conn_open(struct svp_front *f, int fd, uint32_t slot, struct svp_conn **out)
{
	struct svp_conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		close(fd);
		return -ENOMEM;
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
		return rc;
	}
	uv_timer_init(f->loop, &c->kick);
	c->poll.data = c;
	c->kick.data = c;
	c->open_handles = 2;
	f->slots[slot] = c;
	f->refs++;
	svp_conn_update_poll(c);
	*out = c;
	return 0;
}
