/*
 * The native SVP front end's Node-API face: the front end of one server (its limits, its
 * connections' slots, its counters) and the calls through which the JS side
 * (src/svp/native-front.ts) adopts sockets and acts for the JS connection logic on them.
 * The connections themselves are svp_conn.c.
 *
 *   svpFrontCreate(index, onEvent(id, kind, arg), maxFrameBytes, backlogBound, highWaterMark, latencyBounds)
 *   svpAdopt(front, fd) -> id (the fd is dup'ed; the caller closes its own)
 *   svpWrite(front, id, buf) -> unsent bytes, or -1 when the connection is closed
 *   svpPending / svpNeedDrain / svpPause / svpResume / svpEnd / svpDestroy / svpIdleMs (front, id)
 *   svpStats(front) -> Float64Array (see js_stats)       svpFrontRelease(front)
 */
#include "rhumb_svp_conn.h"
#include "rhumb_napi.h"
#include "rhumb_napi_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		svp_front_unref(f);
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
				svp_conn_destroy(f->slots[s]);
		svp_front_unref(f);
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
	if (fd < 0) {
		rhumb_throw_sys(env, "svpAdopt", "dup", errno, NULL);
		return NULL;
	}
	rc = svp_conn_open(f, fd, slot, &c);
	if (rc < 0) {
		rhumb_throw_sys(env, "svpAdopt", "uv_poll_init", -rc, NULL);
		return NULL;
	}
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
	if (!svp_conn_reserve(c, len)) {
		svp_conn_fail(c, ENOMEM);
		return num(env, -1);
	}
	memcpy(c->wq + c->wq_len, data, len);
	c->wq_len += len;
	/* Inside a read turn the turn's single write sends it; otherwise send now. */
	if (!c->in_turn) {
		svp_conn_flush(c);
		svp_conn_update_poll(c);
	}
	return num(env, (double)svp_pending(c));
}

static napi_value js_pending(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	return num(env, c ? (double)svp_pending(c) : 0);
}

/* Whether the unsent replies are past the high-water mark; if so 'drain' follows when they are sent. */
static napi_value js_need_drain(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	bool need = c && svp_pending(c) >= c->f->hwm;

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
		svp_conn_update_poll(c);
	}
	return NULL;
}

static napi_value js_resume(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c && c->js_paused) {
		c->js_paused = false;
		svp_conn_arm_kick(c); /* frames held meanwhile are answered on the next loop turn */
	}
	return NULL;
}

static napi_value js_end(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c && !c->want_end) {
		c->want_end = true;
		svp_conn_arm_kick(c); /* sends what is queued, then shuts down the sending side */
	}
	return NULL;
}

static napi_value js_destroy(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct svp_conn *c = conn_args(env, info, argv, 2, NULL);
	if (c)
		svp_conn_destroy(c);
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
