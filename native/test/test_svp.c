/*
 * The native SVP front end's pure part (native/src/svp_answer.c): which frames C answers
 * (svp_classify), the CRC, the answers read from tables laid out as src/mapping/table.ts
 * lays them out (same hash: vectors computed by table.ts), and a fixed-seed fuzz loop of
 * hostile byte streams, each in a heap buffer of exactly its length.
 */
#include "rhumb_svp.h"
#include "testlib.h"

#define CAP 64

/* A table as U32Table stores it, filled by its insertion rule (linear probing). */
struct ttable {
	uint32_t keys[CAP * 5], vals[CAP * 3];
	uint8_t used[CAP];
	struct svp_u32table view;
};

static void ttable_init(struct ttable *t, uint32_t kw, uint32_t vw)
{
	memset(t, 0, sizeof(*t));
	t->view = (struct svp_u32table){ t->keys, t->vals, t->used, CAP - 1, kw, vw };
}

static void ttable_set(struct ttable *t, const uint32_t *key, const uint32_t *val)
{
	uint32_t slot = svp_table_hash(key, t->view.kw) & (CAP - 1);
	while (t->used[slot])
		slot = (slot + 1) & (CAP - 1);
	t->used[slot] = 1;
	memcpy(t->keys + slot * t->view.kw, key, t->view.kw * 4);
	memcpy(t->vals + slot * t->view.vw, val, t->view.vw * 4);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A request frame: header with a correct CRC and the payload. Returns its length. */
static size_t frame(uint8_t *f, uint32_t op, uint32_t id, const uint8_t *payload, uint32_t size)
{
	f[0] = 0;
	f[1] = SVP_VERSION;
	f[2] = (uint8_t)(op >> 8);
	f[3] = (uint8_t)op;
	put32(f + 4, size);
	put32(f + 8, id);
	if (size)
		memcpy(f + SVP_HEADER_BYTES, payload, size);
	put32(f + 12, svp_frame_crc(f, size));
	return SVP_HEADER_BYTES + size;
}

static size_t vl3_req(uint8_t *f, uint32_t id, const uint8_t ip[16], uint32_t type, uint32_t vnet)
{
	uint8_t p[24];
	memcpy(p, ip, 16);
	put32(p + 16, type);
	put32(p + 20, vnet);
	return frame(f, SVP_VL3_REQ, id, p, 24);
}

static size_t vl2_req(uint8_t *f, uint32_t id, const uint8_t mac[6], uint32_t vnet)
{
	uint8_t p[12] = { 0 };
	memcpy(p, mac, 6);
	put32(p + 8, vnet);
	return frame(f, SVP_VL2_REQ, id, p, 12);
}

static void test_crc_and_hash(void)
{
	const uint8_t check[] = "123456789";
	uint32_t k3[3] = { 7, 0x0200, 0x5e000001 }, k5[5] = { 0xffffffff, 0xfd000000, 0, 0, 1 };

	CHECK(svp_crc32(check, 9, 0) == 0xcbf43926u, "CRC-32 check value");
	CHECK(svp_crc32(check + 4, 5, svp_crc32(check, 4, 0)) == 0xcbf43926u, "CRC continues over pieces");
	CHECK(svp_table_hash(k3, 3) == 0x20a73bf5u, "hash of a 3-word key as table.ts computes it");
	CHECK(svp_table_hash(k5, 5) == 0x1858b40eu, "hash of a 5-word key as table.ts computes it");
}

static void test_classify(void)
{
	uint8_t f[256], ip[16] = { 0 };
	size_t len, flen = 0;

	ip[10] = ip[11] = 0xff;
	len = vl3_req(f, 1, ip, 1, 7);
	for (size_t n = 0; n < len; n++)
		CHECK(svp_classify(f, n, 65536, &flen) == SVP_STEP_NEED_MORE, "VL3_REQ cut at %zu waits", n);
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_NATIVE && flen == len, "a whole VL3_REQ is answered in C");
	CHECK(svp_classify(f, len + 3, 65536, &flen) == SVP_STEP_NATIVE && flen == len, "frame length ignores what follows");

	len = frame(f, SVP_PING, 2, NULL, 0);
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_NATIVE && flen == 16, "PING answered in C");
	len = frame(f, SVP_PING, 2, ip, 4);
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_FRAME_TO_JS, "PING with a payload goes to JS (bad_size)");
	len = frame(f, SVP_VL2_REQ, 3, ip, 11);
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_FRAME_TO_JS && flen == len, "short VL2_REQ goes to JS whole");
	memset(f + 100, 0x5a, 20);
	len = frame(f, SVP_LOG_REQ, 4, f + 100, 20);
	CHECK(svp_classify(f, len - 1, 65536, &flen) == SVP_STEP_NEED_MORE, "a LOG_REQ is collected whole first");
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_FRAME_TO_JS && flen == len, "LOG_REQ goes to JS");
	len = frame(f, SVP_SHOOTDOWN, 4, f + 100, 12);
	CHECK(svp_classify(f, len, 65536, &flen) == SVP_STEP_FRAME_TO_JS, "SHOOTDOWN goes to JS (which closes)");

	len = frame(f, SVP_VL3_ACK, 5, f + 100, 28);
	CHECK(svp_classify(f, 16, 65536, &flen) == SVP_STEP_REST_TO_JS, "a response op goes to JS on its header");
	len = frame(f, 0x42, 5, NULL, 0);
	CHECK(svp_classify(f, 16, 65536, &flen) == SVP_STEP_REST_TO_JS, "an unknown op goes to JS");
	len = frame(f, SVP_PING, 5, NULL, 0);
	f[1] = 2;
	CHECK(svp_classify(f, 16, 65536, &flen) == SVP_STEP_REST_TO_JS, "a bad version goes to JS");
	len = frame(f, SVP_LOG_RM, 5, NULL, 0);
	put32(f + 4, 65537);
	CHECK(svp_classify(f, 16, 65536, &flen) == SVP_STEP_REST_TO_JS, "an oversize size field goes to JS on its header");
	put32(f + 4, 0xffffffffu);
	CHECK(svp_classify(f, 16, 0xffffffffu, &flen) == SVP_STEP_NEED_MORE, "a 4 GiB size does not overflow the length check");
}

static void test_answers(void)
{
	static struct ttable macs, ip4, ip6;
	struct svp_underlay nodes[3] = { 0 };
	struct svp_tables t = { 0 };
	struct svp_tally tally = { 0 };
	uint8_t f[128], out[SVP_MAX_NATIVE_REPLY], ip[16] = { 0 }, mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	uint32_t k[5], v[3];
	size_t n;

	ttable_init(&macs, 3, 1);
	ttable_init(&ip4, 2, 3);
	ttable_init(&ip6, 5, 3);
	t.macs = macs.view;
	t.ip4 = ip4.view;
	t.ip6 = ip6.view;
	t.nodes = nodes;
	t.nnodes = 3;
	nodes[1].valid = true;
	nodes[1].port = 4789;
	memset(nodes[1].ip + 10, 0xff, 2);
	nodes[1].ip[12] = 198;
	nodes[1].ip[13] = 18;
	nodes[1].ip[15] = 9;

	k[0] = 7, k[1] = 0x0200, k[2] = 0x5e000001, v[0] = 1;
	ttable_set(&macs, k, v);
	k[0] = 7, k[1] = 0x0a000005, v[0] = 0x0200, v[1] = 0x5e000001, v[2] = 1;
	ttable_set(&ip4, k, v);
	k[0] = 7, k[1] = 0x0a000006, v[2] = 2; /* node 2 has no underlay */
	ttable_set(&ip4, k, v);
	k[0] = 8, k[1] = 0xfd000000, k[2] = 0, k[3] = 0, k[4] = 1, v[2] = 1;
	ttable_set(&ip6, k, v);

	ip[10] = ip[11] = 0xff;
	ip[12] = 10, ip[15] = 5;
	vl3_req(f, 0x01020304, ip, 1, 7);
	n = svp_answer(&t, f, out, &tally);
	CHECK(n == 44 && out[3] == SVP_VL3_ACK && be32(out + 4) == 28 && be32(out + 8) == 0x01020304, "VL3_ACK header, id copied");
	CHECK(be32(out + 12) == svp_frame_crc(out, 28), "VL3_ACK sealed with its CRC");
	CHECK(be32(out + 16) == SVP_OK && memcmp(out + 20, mac, 6) == 0, "VL3 hit: OK and the MAC");
	CHECK(out[26] == 4789 >> 8 && out[27] == (4789 & 0xff) && memcmp(out + 28, nodes[1].ip, 16) == 0, "VL3 hit: the underlay");
	CHECK(tally.vl3_ok == 1, "counted OK");

	vl3_req(f, 9, ip, 1, 8);
	n = svp_answer(&t, f, out, &tally);
	CHECK(n == 44 && be32(out + 16) == SVP_NOTFOUND && tally.vl3_notfound == 1, "VL3 on another vnet: NOTFOUND");
	ip[15] = 6;
	vl3_req(f, 9, ip, 1, 7);
	svp_answer(&t, f, out, &tally);
	CHECK(be32(out + 16) == SVP_NOTFOUND, "VL3 whose node has no underlay: NOTFOUND");
	{
		uint8_t zero[24] = { 0 };
		CHECK(memcmp(out + 20, zero, 24) == 0, "NOTFOUND carries zeros");
	}
	vl3_req(f, 9, ip, 3, 7);
	svp_answer(&t, f, out, &tally);
	CHECK(be32(out + 16) == SVP_BADL3TYPE && tally.vl3_badtype == 1, "unknown L3 type: BADL3TYPE");
	memset(ip, 0, 16);
	ip[0] = 0xfd, ip[15] = 1;
	vl3_req(f, 9, ip, 1, 8);
	svp_answer(&t, f, out, &tally);
	CHECK(be32(out + 16) == SVP_BADL3TYPE, "IPv4 type with an IPv6 address: BADL3TYPE");
	vl3_req(f, 9, ip, 2, 8);
	svp_answer(&t, f, out, &tally);
	CHECK(be32(out + 16) == SVP_OK && memcmp(out + 20, mac, 6) == 0, "VL3 IPv6 hit");

	vl2_req(f, 11, mac, 7);
	n = svp_answer(&t, f, out, &tally);
	CHECK(n == 36 && out[3] == SVP_VL2_ACK && out[16] == 0 && out[17] == SVP_OK, "VL2 hit: OK");
	CHECK(out[18] == 4789 >> 8 && memcmp(out + 20, nodes[1].ip, 16) == 0 && be32(out + 12) == svp_frame_crc(out, 20), "VL2 hit: underlay, CRC");
	vl2_req(f, 11, mac, 6);
	svp_answer(&t, f, out, &tally);
	CHECK(out[17] == SVP_NOTFOUND && tally.vl2_notfound == 1 && tally.vl2_ok == 1, "VL2 miss: NOTFOUND");

	n = frame(f, SVP_PING, 77, NULL, 0);
	CHECK(svp_answer(&t, f, out, &tally) == 16 && out[3] == SVP_PONG && be32(out + 8) == 77 && tally.ping == 1, "PONG");
	f[12] ^= 1;
	CHECK(svp_answer(&t, f, out, &tally) == 0 && tally.ping == 1, "a bad CRC is not answered (JS reports it)");

	/* An empty state (no tables registered yet) answers NOTFOUND. */
	{
		struct svp_tables empty = { 0 };
		vl3_req(f, 1, ip, 2, 8);
		svp_answer(&empty, f, out, &tally);
		CHECK(be32(out + 16) == SVP_NOTFOUND, "no tables: NOTFOUND");
	}
}

static uint32_t rnd(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}
#define RND() rnd(&seed)

/* Byte streams made of good, truncated and mutated frames, each in a buffer of exactly its length. */
static void fuzz(unsigned iters)
{
	static struct ttable macs, ip4, ip6;
	struct svp_tables t = { 0 };
	struct svp_tally tally = { 0 };
	uint32_t seed = 0x5eed5;
	uint8_t stream[1024], junk[64], out[SVP_MAX_NATIVE_REPLY], ip[16] = { 0 }, mac[6] = { 2, 0, 0x5e, 0, 0, 1 };
	unsigned bad = 0;

	ttable_init(&macs, 3, 1);
	ttable_init(&ip4, 2, 3);
	ttable_init(&ip6, 5, 3);
	t.macs = macs.view;
	t.ip4 = ip4.view;
	t.ip6 = ip6.view;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37);
	for (unsigned it = 0; it < iters; it++) {
		size_t len = 0, off = 0;
		uint8_t *buf;
		while (len < sizeof(stream) - 64) {
			unsigned kind = RND() % 5;
			uint32_t id = RND(), a = RND(), b = RND();
			if (kind == 0)
				len += vl3_req(stream + len, id, ip, a % 3, b % 4);
			else if (kind == 1)
				len += vl2_req(stream + len, id, mac, a % 4);
			else if (kind == 2)
				len += frame(stream + len, SVP_PING, id, NULL, 0);
			else if (kind == 3)
				len += frame(stream + len, a % 16, id, junk, b % 40);
			else
				break;
		}
		for (unsigned m = RND() % 4; m > 0 && len > 0; m--) {
			uint32_t at = RND() % len, bit = RND() % 8;
			stream[at] ^= (uint8_t)(1u << bit);
		}
		len = len ? RND() % (len + 1) : 0;
		buf = malloc(len ? len : 1);
		memcpy(buf, stream, len);
		while (off < len) {
			size_t flen = 0, avail = len - off;
			enum svp_step st = svp_classify(buf + off, avail, 1024, &flen);
			if (st == SVP_STEP_NEED_MORE || st == SVP_STEP_REST_TO_JS)
				break;
			if (flen > avail || flen < SVP_HEADER_BYTES)
				bad++;
			if (st == SVP_STEP_NATIVE) {
				size_t n = svp_answer(&t, buf + off, out, &tally);
				if (n != 0 && n != 16 && n != 36 && n != 44)
					bad++;
			}
			off += flen;
		}
		free(buf);
	}
	CHECK(bad == 0, "fuzz: frame lengths within the input, replies of a known size (%u bad)", bad);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	test_crc_and_hash();
	test_classify();
	test_answers();
	fuzz(20000);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
