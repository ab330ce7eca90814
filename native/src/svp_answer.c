/*
 * SVP lookups answered in C (rhumb_svp.h): frame classification, CRC, and the VL2/VL3/PING
 * answers read from the mapping index's hash tables. Pure: no I/O, no Node-API.
 * Byte for byte what src/svp/connection.ts's fast path and frame-put.ts write.
 */
#include "rhumb_svp.h"

#include <string.h>

static uint32_t crc_t[4][256];
static bool crc_ready;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_t[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++) {
		crc_t[1][n] = (crc_t[0][n] >> 8) ^ crc_t[0][crc_t[0][n] & 0xff];
		crc_t[2][n] = (crc_t[1][n] >> 8) ^ crc_t[0][crc_t[1][n] & 0xff];
		crc_t[3][n] = (crc_t[2][n] >> 8) ^ crc_t[0][crc_t[2][n] & 0xff];
	}
	crc_ready = true;
}

uint32_t svp_crc32(const uint8_t *buf, size_t len, uint32_t crc)
{
	uint32_t c = ~crc;
	size_t i = 0;

	if (!crc_ready)
		crc_init();
	for (; i + 4 <= len; i += 4) {
		c ^= (uint32_t)buf[i] | (uint32_t)buf[i + 1] << 8 | (uint32_t)buf[i + 2] << 16 |
		     (uint32_t)buf[i + 3] << 24;
		c = crc_t[3][c & 0xff] ^ crc_t[2][(c >> 8) & 0xff] ^ crc_t[1][(c >> 16) & 0xff] ^
		    crc_t[0][c >> 24];
	}
	for (; i < len; i++)
		c = crc_t[0][(c ^ buf[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

uint32_t svp_frame_crc(const uint8_t *frame, uint32_t size)
{
	static const uint8_t zero4[4];
	uint32_t c = svp_crc32(frame, 12, 0);

	c = svp_crc32(zero4, 4, c);
	return size ? svp_crc32(frame + SVP_HEADER_BYTES, size, c) : c;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static bool is_request_op(uint32_t op)
{
	return op == SVP_PING || op == SVP_VL2_REQ || op == SVP_VL3_REQ || op == SVP_BULK_REQ ||
	       op == SVP_LOG_REQ || op == SVP_LOG_RM || op == SVP_SHOOTDOWN;
}

enum svp_step svp_classify(const uint8_t *p, size_t avail, uint32_t max_frame, size_t *frame_len)
{
	uint32_t op, size;

	if (avail < SVP_HEADER_BYTES)
		return SVP_STEP_NEED_MORE;
	op = (uint32_t)p[2] << 8 | p[3];
	size = be32(p + 4);
	/* Bad version, unknown or response op, oversize: JS closes on the header alone. */
	if (p[0] != 0 || p[1] != SVP_VERSION || !is_request_op(op) || size > max_frame)
		return SVP_STEP_REST_TO_JS;
	if (avail - SVP_HEADER_BYTES < size)
		return SVP_STEP_NEED_MORE;
	*frame_len = SVP_HEADER_BYTES + (size_t)size;
	if ((op == SVP_VL3_REQ && size == SVP_VL3_REQ_BYTES) || (op == SVP_VL2_REQ && size == SVP_VL2_REQ_BYTES) ||
	    (op == SVP_PING && size == 0))
		return SVP_STEP_NATIVE;
	return SVP_STEP_FRAME_TO_JS;
}

/* table.ts's hashOf, bit for bit (Math.imul is the low 32 bits of the product). */
uint32_t svp_table_hash(const uint32_t *key, uint32_t kw)
{
	uint32_t h = 0x811c9dc5u ^ kw;
	for (uint32_t i = 0; i < kw; i++) {
		h = (h ^ key[i]) * 0x9e3779b1u;
		h ^= h >> 16;
	}
	h = (h ^ (h >> 13)) * 0x85ebca6bu;
	h ^= h >> 16;
	return h;
}

int64_t svp_table_find(const struct svp_u32table *t, const uint32_t *key)
{
	uint32_t slot;

	if (!t->keys)
		return -1;
	slot = svp_table_hash(key, t->kw) & t->mask;
	/* The table is never full (grown at 3/4 load), so the probe ends at an empty slot. */
	while (t->used[slot]) {
		if (memcmp(t->keys + (size_t)slot * t->kw, key, t->kw * sizeof(uint32_t)) == 0)
			return slot;
		slot = (slot + 1) & t->mask;
	}
	return -1;
}

static const struct svp_underlay *node_underlay(const struct svp_tables *t, uint32_t node)
{
	return node < t->nnodes && t->nodes[node].valid ? &t->nodes[node] : NULL;
}

/* Header of a reply at out: version, op, size, the request's id; crc sealed later. */
static void put_header(uint8_t *out, uint32_t op, uint32_t size, const uint8_t *req)
{
	put16(out, SVP_VERSION);
	put16(out + 2, op);
	put32(out + 4, size);
	memcpy(out + 8, req + 8, 4);
	memset(out + 12, 0, 4);
}

static size_t seal(uint8_t *out, uint32_t size)
{
	put32(out + 12, svp_frame_crc(out, size));
	return SVP_HEADER_BYTES + size;
}

static bool is_v4_mapped(const uint8_t *ip)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(ip, prefix, 12) == 0;
}

static size_t answer_vl3(const struct svp_tables *t, const uint8_t *req, uint8_t *out, struct svp_tally *tally)
{
	const uint8_t *p = req + SVP_HEADER_BYTES;
	uint8_t *a = out + SVP_HEADER_BYTES;
	uint32_t type = be32(p + 16), key[5];
	bool v4 = is_v4_mapped(p);
	const struct svp_u32table *table;
	const struct svp_underlay *ul = NULL;
	int64_t slot = -1;

	put_header(out, SVP_VL3_ACK, SVP_VL3_ACK_BYTES, req);
	memset(a, 0, SVP_VL3_ACK_BYTES);
	if ((type != 1 && type != 2) || (type == 1 && !v4)) {
		put32(a, SVP_BADL3TYPE);
		tally->vl3_badtype++;
		return seal(out, SVP_VL3_ACK_BYTES);
	}
	key[0] = be32(p + 20);
	if (v4) {
		key[1] = be32(p + 12);
		table = &t->ip4;
	} else {
		for (int w = 0; w < 4; w++)
			key[1 + w] = be32(p + 4 * w);
		table = &t->ip6;
	}
	slot = svp_table_find(table, key);
	if (slot >= 0)
		ul = node_underlay(t, table->vals[(size_t)slot * table->vw + 2]);
	if (!ul) {
		put32(a, SVP_NOTFOUND);
		tally->vl3_notfound++;
		return seal(out, SVP_VL3_ACK_BYTES);
	}
	put32(a, SVP_OK);
	put16(a + 4, table->vals[(size_t)slot * table->vw]);
	put32(a + 6, table->vals[(size_t)slot * table->vw + 1]);
	put16(a + 10, ul->port);
	memcpy(a + 12, ul->ip, 16);
	tally->vl3_ok++;
	return seal(out, SVP_VL3_ACK_BYTES);
}

static size_t answer_vl2(const struct svp_tables *t, const uint8_t *req, uint8_t *out, struct svp_tally *tally)
{
	const uint8_t *p = req + SVP_HEADER_BYTES;
	uint8_t *a = out + SVP_HEADER_BYTES;
	uint32_t key[3] = { be32(p + 8), (uint32_t)p[0] << 8 | p[1], be32(p + 2) };
	const struct svp_underlay *ul = NULL;
	int64_t slot = svp_table_find(&t->macs, key);

	put_header(out, SVP_VL2_ACK, SVP_VL2_ACK_BYTES, req);
	memset(a, 0, SVP_VL2_ACK_BYTES);
	if (slot >= 0)
		ul = node_underlay(t, t->macs.vals[(size_t)slot * t->macs.vw]);
	if (!ul) {
		put16(a, SVP_NOTFOUND);
		tally->vl2_notfound++;
		return seal(out, SVP_VL2_ACK_BYTES);
	}
	put16(a, SVP_OK);
	put16(a + 2, ul->port);
	memcpy(a + 4, ul->ip, 16);
	tally->vl2_ok++;
	return seal(out, SVP_VL2_ACK_BYTES);
}

size_t svp_answer(const struct svp_tables *t, const uint8_t *frame, uint8_t *out, struct svp_tally *tally)
{
	uint32_t op = (uint32_t)frame[2] << 8 | frame[3];
	uint32_t size = be32(frame + 4);

	if (be32(frame + 12) != svp_frame_crc(frame, size))
		return 0;
	if (op == SVP_VL3_REQ)
		return answer_vl3(t, frame, out, tally);
	if (op == SVP_VL2_REQ)
		return answer_vl2(t, frame, out, tally);
	put_header(out, SVP_PONG, 0, frame);
	tally->ping++;
	return seal(out, 0);
}
