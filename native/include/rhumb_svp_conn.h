#ifndef RHUMB_SVP_CONN_H
#define RHUMB_SVP_CONN_H
/*
 * The native SVP front end's connections (svp_conn.c: reading, answering, writing, their
 * lifetime on the libuv loop) and the front end they belong to; svp_front.c is their
 * Node-API face. Everything here runs on the Node main thread.
 */
#include <node_api.h>
#include <uv.h>
#include "rhumb_svp_front.h"

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

static inline size_t svp_pending(const struct svp_conn *c)
{
	return c->wq_len - c->wq_head;
}

/* Drops a reference to the front (JS's, or a connection's); the last one frees it. */
void svp_front_unref(struct svp_front *f);
/* Takes over a connected, non-blocking socket fd (owned from now on) in slot; starts reading. */
int svp_conn_open(struct svp_front *f, int fd, uint32_t slot, struct svp_conn **out);
void svp_conn_destroy(struct svp_conn *c);
void svp_conn_fail(struct svp_conn *c, int err);
bool svp_conn_reserve(struct svp_conn *c, size_t n);
void svp_conn_flush(struct svp_conn *c);
void svp_conn_update_poll(struct svp_conn *c);
void svp_conn_arm_kick(struct svp_conn *c);

#endif
