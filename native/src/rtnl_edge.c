/*
 * rtnetlink for the distributed gateway's kernel state (src/agent/kernel/edge.ts):
 * addresses on a vnet's bridge, routes in a vnet's table, and the fwmark rules that pick
 * those tables, IPv4 and IPv6, each one request. What iproute2's `addr add … noprefixroute
 * [nodad]`, `route replace … dev D src S table T [mtu M]`, `rule add pref P fwmark M/K
 * lookup T` and their deletions send.
 */
#include "rhumb_link.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

static size_t addr_len(uint8_t family)
{
	return family == AF_INET6 ? 16 : 4;
}

int rl_addr_change(rhumb_rtnl_req *r, bool add, const struct rl_ip *a, uint8_t prefix, int32_t ifindex, rhumb_rtnl_error *e)
{
	struct ifaddrmsg ifa = { .ifa_family = a->family, .ifa_prefixlen = prefix, .ifa_scope = RT_SCOPE_UNIVERSE,
				 .ifa_index = (uint32_t)ifindex };
	uint32_t flags = IFA_F_NOPREFIXROUTE | (a->family == AF_INET6 ? IFA_F_NODAD : 0);
	struct rl_msg m;
	rl_init(&m, add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_CREATE | NLM_F_REPLACE : 0, &ifa, sizeof(ifa));
	rl_put(&m, IFA_LOCAL, a->addr, addr_len(a->family));
	rl_put(&m, IFA_ADDRESS, a->addr, addr_len(a->family));
	if (add)
		rl_put_u32(&m, IFA_FLAGS, flags);
	return rl_talk(r, &m, NULL, NULL, e);
}

static void put_table(struct rl_msg *m, uint32_t table)
{
	rl_put_u32(m, RTA_TABLE, table);
}

int rl_table_route_change(rhumb_rtnl_req *r, bool add, const struct rl_ip *dst, uint8_t prefix, uint32_t table,
			  int32_t ifindex, const struct rl_ip *src, uint32_t mtu, rhumb_rtnl_error *e)
{
	struct rtmsg rtm = {
		.rtm_family = dst->family, .rtm_dst_len = prefix,
		.rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC,
		.rtm_protocol = add ? RTPROT_BOOT : 0, .rtm_scope = add ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE,
		.rtm_type = RTN_UNICAST,
	};
	struct rl_msg m;
	rl_init(&m, add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_REPLACE : 0, &rtm, sizeof(rtm));
	put_table(&m, table);
	if (prefix)
		rl_put(&m, RTA_DST, dst->addr, addr_len(dst->family));
	if (add) {
		rl_put_u32(&m, RTA_OIF, (uint32_t)ifindex);
		if (src && src->family)
			rl_put(&m, RTA_PREFSRC, src->addr, addr_len(src->family));
		if (mtu) {
			rl_nest(&m, RTA_METRICS);
			rl_put_u32(&m, RTAX_MTU, mtu);
			rl_nest_end(&m);
		}
	}
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_rule_change(rhumb_rtnl_req *r, bool add, uint8_t family, uint32_t pref, uint32_t mark, uint32_t mask, uint32_t table,
		   rhumb_rtnl_error *e)
{
	struct fib_rule_hdr frh = {
		.family = family, .action = FR_ACT_TO_TBL, .table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC,
	};
	struct rl_msg m;
	rl_init(&m, add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0, &frh, sizeof(frh));
	rl_put_u32(&m, FRA_PRIORITY, pref);
	rl_put_u32(&m, FRA_FWMARK, mark);
	rl_put_u32(&m, FRA_FWMASK, mask);
	rl_put_u32(&m, FRA_TABLE, table);
	return rl_talk(r, &m, NULL, NULL, e);
}
