/*
 * rh_nflog_parse_packet (nflog_parse.c) on nfnetlink_log messages. The payload is the
 * start of a packet an instance sent: well-formed IPv4 TCP and IPv6 UDP decode to the
 * flow log's fields, a non-first fragment has no ports, and truncated or mutated messages
 * in exact-size buffers are refused or decoded without reading outside them or undefined
 * behaviour (AddressSanitizer, UBSan).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include "testlib.h"
#include "rhumb_nflog_parse.h"

static uint8_t msg[512];

static void nla(size_t *off, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(msg + *off);
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	*off += NLA_ALIGN(a->nla_len);
}

/* A logged packet with this payload; returns the message length. */
static size_t build(const uint8_t *payload, size_t plen)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)msg;
	size_t off = NLMSG_LENGTH(sizeof(struct nfgenmsg));
	static const char prefix[] = "rfw 20000000-0000-4000-8000-000000000001 block in 10000000-0000-4000-8000-000000000001";
	memset(msg, 0, sizeof(msg));
	nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nla(&off, NFULA_PREFIX, prefix, sizeof(prefix));
	nla(&off, NFULA_PAYLOAD, payload, plen);
	nh->nlmsg_len = (uint32_t)off;
	return off;
}

static bool parse_exact(const uint8_t *src, size_t len, struct rh_nflog_record *r)
{
	uint8_t *copy = malloc(len);
	bool ok;
	memcpy(copy, src, len);
	((struct nlmsghdr *)copy)->nlmsg_len = (uint32_t)len;
	ok = rh_nflog_parse_packet((const struct nlmsghdr *)copy, r);
	free(copy);
	return ok;
}

static void mutate_all(size_t len, unsigned seed)
{
	struct rh_nflog_record r;
	uint8_t m[sizeof(msg)];
	for (size_t cut = sizeof(struct nlmsghdr); cut < len; cut++)
		(void)parse_exact(msg, cut, &r);
	srand(seed);
	for (int i = 0; i < 100000; i++) {
		size_t body = NLMSG_LENGTH(sizeof(struct nfgenmsg)), cut = len - (size_t)(rand() % 12);
		memcpy(m, msg, len);
		for (int k = rand() % 4; k >= 0; k--)
			m[body + (size_t)rand() % (len - body)] = (uint8_t)rand();
		if (parse_exact(m, cut < body ? len : cut, &r))
			CHECK(memchr(r.prefix, '\0', sizeof(r.prefix)) && (r.family == 4 || r.family == 6), "a decoded record is terminated and IP");
	}
}

int main(void)
{
	struct rh_nflog_record r;
	uint8_t v4[40] = { 0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x50 };
	uint8_t v6[48] = { 0x60, 0, 0, 0, 0, 8, 17, 64 };
	size_t len;

	t_init();
	len = build(v4, sizeof(v4));
	CHECK(parse_exact(msg, len, &r), "an IPv4 TCP packet decodes");
	CHECK(r.family == 4 && r.proto == 6 && strcmp(r.src, "10.0.0.1") == 0 && strcmp(r.dst, "10.0.0.2") == 0, "family, protocol, addresses");
	CHECK(r.sport == 12345 && r.dport == 80, "ports %d %d", r.sport, r.dport);
	CHECK(strncmp(r.prefix, "rfw 20000000-", 13) == 0, "the prefix");
	mutate_all(len, 1);

	v4[6] = 0x20, v4[7] = 0x10; /* a later fragment: no ports in it */
	len = build(v4, sizeof(v4));
	CHECK(parse_exact(msg, len, &r) && r.sport == -1 && r.dport == -1, "a non-first fragment has no ports");

	v6[8 + 15] = 1, v6[24 + 15] = 2;
	v6[40] = 0x00, v6[41] = 0x35, v6[42] = 0x13, v6[43] = 0x88;
	len = build(v6, sizeof(v6));
	CHECK(parse_exact(msg, len, &r), "an IPv6 UDP packet decodes");
	CHECK(r.family == 6 && r.proto == 17 && strcmp(r.src, "::1") == 0 && strcmp(r.dst, "::2") == 0, "IPv6 family, protocol, addresses");
	CHECK(r.sport == 53 && r.dport == 5000, "IPv6 ports %d %d", r.sport, r.dport);
	mutate_all(len, 2);

	CHECK(!parse_exact(msg, NLMSG_LENGTH(sizeof(struct nfgenmsg)) - 1, &r), "a message shorter than its header is refused");
	return t_report();
}
