#ifndef RHUMB_NFLOG_PARSE_H
#define RHUMB_NFLOG_PARSE_H
/*
 * Decoding of nfnetlink_log packet messages, apart from the N-API glue (nflog.c) so the
 * C tests can feed it hostile messages: the payload is the first bytes of a packet an
 * instance sent, so nothing in it is trusted.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <linux/netlink.h>

/* One logged packet. */
struct rh_nflog_record {
	char prefix[128];
	int family; /* 4 or 6; 0: not IP */
	int proto;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	int sport, dport; /* -1: none */
	double time_ms;
};

/* Decodes an NFULNL_MSG_PACKET message of nlmsg_len bytes; false when it is not one or
 * carries no IPv4/IPv6 packet. Without a kernel timestamp the time is now. */
bool rh_nflog_parse_packet(const struct nlmsghdr *nh, struct rh_nflog_record *r);

#endif
