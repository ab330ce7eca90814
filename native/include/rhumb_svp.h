#ifndef RHUMB_SVP_H
#define RHUMB_SVP_H
/*
 * SVP lookups in C (svp_answer.c, pure): which request frames the native front end answers
 * itself, and the answers, read from the mapping index's own hash tables.
 *
 * The tables are src/mapping/table.ts's U32Table storage (typed arrays owned by the JS
 * index, registered here whenever they are created or grown): same layout, same hash, so
 * C reads exactly what JS wrote, with nothing copied. Everything runs on the Node main
 * thread, so no locking.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SVP_HEADER_BYTES 16
#define SVP_VERSION 1

enum svp_op {
	SVP_PING = 0x01,
	SVP_PONG = 0x02,
	SVP_VL2_REQ = 0x03,
	SVP_VL2_ACK = 0x04,
	SVP_VL3_REQ = 0x05,
	SVP_VL3_ACK = 0x06,
	SVP_BULK_REQ = 0x07,
	SVP_LOG_REQ = 0x09,
	SVP_LOG_RM = 0x0b,
	SVP_SHOOTDOWN = 0x0d,
};

enum svp_status { SVP_OK = 0, SVP_FATAL = 1, SVP_NOTFOUND = 2, SVP_BADL3TYPE = 3 };

#define SVP_VL2_REQ_BYTES 12
#define SVP_VL3_REQ_BYTES 24
#define SVP_VL2_ACK_BYTES 20
#define SVP_VL3_ACK_BYTES 28
/* The largest reply the C path writes for one request (a VL3_ACK frame). */
#define SVP_MAX_NATIVE_REPLY (SVP_HEADER_BYTES + SVP_VL3_ACK_BYTES)

/* One U32Table's storage (see table.ts): keys[cap*kw], vals[cap*vw], used[cap]. */
struct svp_u32table {
	const uint32_t *keys;
	const uint32_t *vals;
	const uint8_t *used;
	uint32_t mask; /* capacity - 1; 0 with keys NULL: no table yet */
	uint32_t kw, vw;
};

struct svp_underlay {
	uint8_t ip[16];
	uint16_t port;
	bool valid;
};

/* One index state (a load swaps in a new one): the three tables and the nodes' underlays. */
struct svp_tables {
	struct svp_u32table macs; /* [vnet, macHi16, macLo32] -> [node] */
	struct svp_u32table ip4;  /* [vnet, ipv4] -> [macHi16, macLo32, node] */
	struct svp_u32table ip6;  /* [vnet, ip words 0..3] -> [macHi16, macLo32, node] */
	struct svp_underlay *nodes;
	uint32_t nnodes;
};

enum svp_table_id { SVP_TABLE_MACS = 0, SVP_TABLE_IP4 = 1, SVP_TABLE_IP6 = 2 };

/* Lookups answered natively, by outcome (the server's request counters). */
struct svp_tally {
	uint64_t ping, vl2_ok, vl2_notfound, vl3_ok, vl3_notfound, vl3_badtype;
};

/* What to do with the bytes at the front of a connection's input. */
enum svp_step {
	SVP_STEP_NEED_MORE,   /* not a whole frame yet */
	SVP_STEP_NATIVE,      /* a whole PING/VL2_REQ/VL3_REQ of the right size: answer in C */
	SVP_STEP_FRAME_TO_JS, /* a whole well-formed request of another kind: hand it to JS */
	SVP_STEP_REST_TO_JS,  /* a header JS will refuse: hand everything from here to JS */
};

/*
 * The one place that decides which frames C answers. `*frame_len` is set for NATIVE and
 * FRAME_TO_JS (header + payload). max_frame bounds the size field, as in JS.
 */
enum svp_step svp_classify(const uint8_t *p, size_t avail, uint32_t max_frame, size_t *frame_len);

/* zlib's CRC-32 over buf[0,len), continuing from crc (0 to start). */
uint32_t svp_crc32(const uint8_t *buf, size_t len, uint32_t crc);
/* The SVP CRC of a whole frame: its header with the crc field as zero, then the payload. */
uint32_t svp_frame_crc(const uint8_t *frame, uint32_t size);

/*
 * Answers the NATIVE frame at `frame` into out (room for SVP_MAX_NATIVE_REPLY bytes);
 * returns the reply's length, or 0 when the frame's CRC is wrong (JS reports that).
 */
size_t svp_answer(const struct svp_tables *t, const uint8_t *frame, uint8_t *out, struct svp_tally *tally);

/* table.ts's hash of a kw-word key. */
uint32_t svp_table_hash(const uint32_t *key, uint32_t kw);
/* The slot holding key in a table, or -1. */
int64_t svp_table_find(const struct svp_u32table *t, const uint32_t *key);

#endif
