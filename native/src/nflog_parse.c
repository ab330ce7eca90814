/* Decoding of nfnetlink_log packet messages (see rhumb_nflog_parse.h). */
#include "rhumb_nflog_parse.h"

#include <endian.h>
#include <string.h>
#include <time.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>


static void parse_l4(struct rh_nflog_record *r, const uint8_t *l4, size_t len)
{
	if ((r->proto == IPPROTO_TCP || r->proto == IPPROTO_UDP || r->proto == IPPROTO_SCTP) && len >= 4) {
		r->sport = (l4[0] << 8) | l4[1];
		r->dport = (l4[2] << 8) | l4[3];
	}
}

/* The network header onward (what NFLOG copies for IP in every family). */
static void parse_payload(struct rh_nflog_record *r, const uint8_t *p, size_t len)
{
	if (len >= 20 && (p[0] >> 4) == 4) {
		size_t ihl = (size_t)(p[0] & 0xf) * 4;
		r->family = 4;
		r->proto = p[9];
		inet_ntop(AF_INET, p + 12, r->src, sizeof(r->src));
		inet_ntop(AF_INET, p + 16, r->dst, sizeof(r->dst));
		/* Only the first fragment carries ports. */
		if (ihl >= 20 && len > ihl && (((p[6] & 0x1f) << 8) | p[7]) == 0)
			parse_l4(r, p + ihl, len - ihl);
	} else if (len >= 40 && (p[0] >> 4) == 6) {
		r->family = 6;
		r->proto = p[6];
		inet_ntop(AF_INET6, p + 8, r->src, sizeof(r->src));
		inet_ntop(AF_INET6, p + 24, r->dst, sizeof(r->dst));
		parse_l4(r, p + 40, len - 40);
	}
}

bool rh_nflog_parse_packet(const struct nlmsghdr *nh, struct rh_nflog_record *r)
{
	const struct nlattr *a;
	size_t left;
	struct timespec now;

	if (nh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg)))
		return false;
	memset(r, 0, sizeof(*r));
	r->sport = r->dport = -1;
	clock_gettime(CLOCK_REALTIME, &now);
	r->time_ms = (double)now.tv_sec * 1000 + (double)(now.tv_nsec / 1000000);
	left = nh->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
	a = (const struct nlattr *)((const uint8_t *)NLMSG_DATA(nh) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
	while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left) {
		const uint8_t *d = (const uint8_t *)a + NLA_HDRLEN;
		size_t dl = a->nla_len - NLA_HDRLEN;
		switch (a->nla_type & NLA_TYPE_MASK) {
		case NFULA_PREFIX: {
			size_t n = strnlen((const char *)d, dl);
			if (n >= sizeof(r->prefix))
				n = sizeof(r->prefix) - 1;
			memcpy(r->prefix, d, n);
			r->prefix[n] = 0;
			break;
		}
		case NFULA_TIMESTAMP:
			if (dl >= sizeof(struct nfulnl_msg_packet_timestamp)) {
				const struct nfulnl_msg_packet_timestamp *t = (const void *)d;
				r->time_ms = (double)be64toh(t->sec) * 1000 + (double)(be64toh(t->usec) / 1000);
			}
			break;
		case NFULA_PAYLOAD:
			parse_payload(r, d, dl);
			break;
		default:
			break;
		}
		if ((size_t)NLA_ALIGN(a->nla_len) >= left)
			break;
		left -= (size_t)NLA_ALIGN(a->nla_len);
		a = (const struct nlattr *)((const uint8_t *)a + NLA_ALIGN(a->nla_len));
	}
	return r->family != 0;
}
