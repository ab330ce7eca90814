/*
 * rtnetlink for links, addresses and routes (rhumb_link.h): one request each, built with
 * nested attributes the way iproute2 builds them, answered by an ACK (or, for a GET, a
 * reply and then the ACK).
 */
#include "rhumb_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

/* ---- building requests --------------------------------------------------------------- */

void rl_init(struct rl_msg *m, uint16_t type, uint16_t flags, const void *fam, size_t famlen)
{
	memset(m, 0, sizeof(*m));
	m->u.nh.nlmsg_len = (uint32_t)NLMSG_LENGTH(famlen);
	m->u.nh.nlmsg_type = type;
	m->u.nh.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
	memcpy(NLMSG_DATA(&m->u.nh), fam, famlen);
}

static void *room(struct rl_msg *m, size_t len)
{
	size_t off = NLMSG_ALIGN(m->u.nh.nlmsg_len);
	if (m->overflow || off + RTA_ALIGN(len) > sizeof(m->u.raw)) {
		m->overflow = true;
		return NULL;
	}
	m->u.nh.nlmsg_len = (uint32_t)(off + RTA_ALIGN(len));
	return m->u.raw + off;
}

void rl_put(struct rl_msg *m, uint16_t type, const void *data, size_t len)
{
	struct rtattr *rta = room(m, RTA_LENGTH(len));
	if (!rta)
		return;
	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
}

void rl_put_u8(struct rl_msg *m, uint16_t type, uint8_t v) { rl_put(m, type, &v, 1); }
void rl_put_u32(struct rl_msg *m, uint16_t type, uint32_t v) { rl_put(m, type, &v, 4); }
void rl_put_str(struct rl_msg *m, uint16_t type, const char *s) { rl_put(m, type, s, strlen(s) + 1); }

void rl_nest(struct rl_msg *m, uint16_t type)
{
	size_t off = NLMSG_ALIGN(m->u.nh.nlmsg_len);
	struct rtattr *rta;
	if (m->depth >= RL_MAX_NEST) {
		m->overflow = true;
		return;
	}
	rta = room(m, RTA_LENGTH(0));
	if (!rta)
		return;
	rta->rta_type = type;
	m->nest[m->depth++] = off;
}

void rl_nest_end(struct rl_msg *m)
{
	struct rtattr *rta;
	if (m->overflow || m->depth == 0)
		return;
	rta = (struct rtattr *)(m->u.raw + m->nest[--m->depth]);
	rta->rta_len = (unsigned short)(m->u.nh.nlmsg_len - m->nest[m->depth]);
}

void rl_raw(struct rl_msg *m, const void *data, size_t len)
{
	void *p = room(m, len);
	if (p)
		memcpy(p, data, len);
}

int rl_talk(rhumb_rtnl_req *r, struct rl_msg *m, rhumb_rtnl_reply_cb cb, void *ctx, rhumb_rtnl_error *e)
{
	if (m->overflow || m->depth != 0) {
		e->err = EMSGSIZE;
		e->msg[0] = '\0';
		return -EMSGSIZE;
	}
	return rhumb_rtnl_exchange(r, &m->u.nh, cb, ctx, e);
}

/* ---- links ---------------------------------------------------------------------------- */

static const char *kind_name(enum rl_kind k)
{
	return k == RL_VXLAN ? "vxlan" : k == RL_BRIDGE ? "bridge" : "veth";
}

static void put_vxlan(struct rl_msg *m, const struct rl_vxlan *v)
{
	uint16_t port = htons(v->port);
	rl_put_u32(m, IFLA_VXLAN_ID, v->vni);
	rl_put(m, IFLA_VXLAN_LOCAL, v->local, 4);
	if (v->link)
		rl_put_u32(m, IFLA_VXLAN_LINK, v->link);
	rl_put(m, IFLA_VXLAN_PORT, &port, 2);
	rl_put_u8(m, IFLA_VXLAN_LEARNING, v->learning);
	rl_put_u8(m, IFLA_VXLAN_PROXY, v->proxy);
	rl_put_u8(m, IFLA_VXLAN_L2MISS, v->l2miss);
	rl_put_u8(m, IFLA_VXLAN_L3MISS, v->l3miss);
}

static void put_peer(struct rl_msg *m, const struct rl_peer *p)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	rl_nest(m, VETH_INFO_PEER);
	rl_raw(m, &ifi, sizeof(ifi));
	rl_put_str(m, IFLA_IFNAME, p->name);
	if (p->mtu)
		rl_put_u32(m, IFLA_MTU, p->mtu);
	if (p->has_mac)
		rl_put(m, IFLA_ADDRESS, p->mac, 6);
	/* Born in the instance's namespace: it never exists in ours. */
	if (p->netns_fd >= 0)
		rl_put_u32(m, IFLA_NET_NS_FD, (uint32_t)p->netns_fd);
	rl_nest_end(m);
}

int rl_link_add(rhumb_rtnl_req *r, const struct rl_link *l, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;

	if (l->up) {
		ifi.ifi_flags = IFF_UP;
		ifi.ifi_change = IFF_UP;
	}
	rl_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	rl_put_str(&m, IFLA_IFNAME, l->name);
	if (l->mtu)
		rl_put_u32(&m, IFLA_MTU, l->mtu);
	if (l->has_mac)
		rl_put(&m, IFLA_ADDRESS, l->mac, 6);
	if (l->master)
		rl_put_u32(&m, IFLA_MASTER, l->master);
	if (l->group)
		rl_put_u32(&m, IFLA_GROUP, l->group);
	rl_nest(&m, IFLA_LINKINFO);
	rl_put_str(&m, IFLA_INFO_KIND, kind_name(l->kind));
	if (l->kind == RL_VXLAN || l->kind == RL_VETH) {
		rl_nest(&m, IFLA_INFO_DATA);
		if (l->kind == RL_VXLAN)
			put_vxlan(&m, &l->vxlan);
		else
			put_peer(&m, &l->peer);
		rl_nest_end(&m);
	}
	rl_nest_end(&m);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_link_set(rhumb_rtnl_req *r, const char *name, const struct rl_change *c, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;

	if (c->up >= 0) {
		ifi.ifi_flags = c->up ? IFF_UP : 0;
		ifi.ifi_change = IFF_UP;
	}
	rl_init(&m, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	rl_put_str(&m, IFLA_IFNAME, name);
	if (c->mtu)
		rl_put_u32(&m, IFLA_MTU, c->mtu);
	if (c->gso_max_segs)
		rl_put_u32(&m, IFLA_GSO_MAX_SEGS, c->gso_max_segs);
	if (c->has_mac)
		rl_put(&m, IFLA_ADDRESS, c->mac, 6);
	if (c->master >= 0)
		rl_put_u32(&m, IFLA_MASTER, (uint32_t)c->master);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_link_del(rhumb_rtnl_req *r, const char *name, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;
	rl_init(&m, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	rl_put_str(&m, IFLA_IFNAME, name);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_group_del(rhumb_rtnl_req *r, uint32_t group, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;
	rl_init(&m, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	rl_put_u32(&m, IFLA_GROUP, group);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_parse_link(const struct nlmsghdr *nh, struct rl_link_info *out)
{
	const struct ifinfomsg *ifi;
	const struct rtattr *rta;
	int left;

	if (nh->nlmsg_type != RTM_NEWLINK || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return -EINVAL;
	ifi = NLMSG_DATA(nh);
	memset(out, 0, sizeof(*out));
	out->ifindex = ifi->ifi_index;
	out->up = (ifi->ifi_flags & IFF_UP) != 0;
	left = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	for (rta = IFLA_RTA(ifi); RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
		size_t plen = RTA_PAYLOAD(rta);
		const uint8_t *p = RTA_DATA(rta);
		switch (rta->rta_type) {
		case IFLA_IFNAME:
			if (plen > 0 && plen <= sizeof(out->name)) {
				memcpy(out->name, p, plen);
				out->name[sizeof(out->name) - 1] = '\0';
			}
			break;
		case IFLA_MTU:
			if (plen == 4)
				memcpy(&out->mtu, p, 4);
			break;
		case IFLA_MASTER:
			if (plen == 4)
				memcpy(&out->master, p, 4);
			break;
		case IFLA_ADDRESS:
			if (plen == 6) {
				out->has_mac = true;
				memcpy(out->mac, p, 6);
			}
			break;
		case IFLA_LINKINFO: {
			const struct rtattr *in;
			int inleft = (int)plen;
			for (in = (const struct rtattr *)p; RTA_OK(in, inleft); in = RTA_NEXT(in, inleft)) {
				size_t ilen = RTA_PAYLOAD(in);
				if (in->rta_type == IFLA_INFO_KIND && ilen > 0 && ilen <= sizeof(out->kind)) {
					memcpy(out->kind, RTA_DATA(in), ilen);
					out->kind[sizeof(out->kind) - 1] = '\0';
				} else if ((in->rta_type & NLA_TYPE_MASK) == IFLA_INFO_DATA && strcmp(out->kind, "vxlan") == 0) {
					const struct rtattr *d;
					int dleft = (int)ilen;
					for (d = RTA_DATA(in); RTA_OK(d, dleft); d = RTA_NEXT(d, dleft))
						if (d->rta_type == IFLA_VXLAN_ID && RTA_PAYLOAD(d) == 4) {
							out->has_vni = true;
							memcpy(&out->vni, RTA_DATA(d), 4);
						} else if (d->rta_type == IFLA_VXLAN_LOCAL && RTA_PAYLOAD(d) == 4) {
							out->has_vxlan_local = true;
							memcpy(out->vxlan_local, RTA_DATA(d), 4);
						}
				}
			}
			break;
		}
		default:
			break;
		}
	}
	return 0;
}

struct one_link {
	bool found;
	struct rl_link_info info;
};

static void take_link(const struct nlmsghdr *nh, void *ctx)
{
	struct one_link *o = ctx;
	if (rl_parse_link(nh, &o->info) == 0)
		o->found = true;
}

int rl_link_index(rhumb_rtnl_req *r, const char *name, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;
	struct one_link o = { 0 };
	int rc;

	rl_init(&m, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	rl_put_str(&m, IFLA_IFNAME, name);
	rc = rl_talk(r, &m, take_link, &o, e);
	if (rc < 0)
		return rc;
	if (!o.found) {
		e->err = ENODEV;
		return -ENODEV;
	}
	return o.info.ifindex;
}

struct link_dump {
	rl_link_cb cb;
	void *ctx;
};

static int link_row(const struct nlmsghdr *nh, void *arg)
{
	struct link_dump *d = arg;
	struct rl_link_info l;
	if (!nh)
		return d->cb(NULL, d->ctx);
	if (rl_parse_link(nh, &l) != 0)
		return 0;
	return d->cb(&l, d->ctx);
}

int rl_link_dump(rhumb_rtnl_req *r, rl_link_cb cb, void *ctx, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rl_msg m;
	struct link_dump d = { cb, ctx };
	rl_init(&m, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	return rhumb_rtnl_dump_raw(r, &m.u.nh, link_row, &d, e);
}

/* ---- addresses and routes -------------------------------------------------------------- */

struct addr_dump {
	rl_addr_cb cb;
	void *ctx;
};

static int addr_row(const struct nlmsghdr *nh, void *arg)
{
	struct addr_dump *d = arg;
	const struct ifaddrmsg *ifa;
	const struct rtattr *rta;
	struct rl_addr_info a = { 0 };
	bool have = false;
	int left;

	if (!nh)
		return d->cb(NULL, d->ctx);
	if (nh->nlmsg_type != RTM_NEWADDR || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
		return 0;
	ifa = NLMSG_DATA(nh);
	if (ifa->ifa_family != AF_INET)
		return 0;
	a.ifindex = (int32_t)ifa->ifa_index;
	a.prefix = ifa->ifa_prefixlen;
	left = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa)));
	for (rta = IFA_RTA(ifa); RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
		/* IFA_LOCAL is the address itself; IFA_ADDRESS differs on point-to-point links. */
		if ((rta->rta_type == IFA_LOCAL || (rta->rta_type == IFA_ADDRESS && !have)) && RTA_PAYLOAD(rta) == 4) {
			memcpy(a.addr, RTA_DATA(rta), 4);
			have = true;
		}
	}
	return have ? d->cb(&a, d->ctx) : 0;
}

int rl_addr_dump(rhumb_rtnl_req *r, rl_addr_cb cb, void *ctx, rhumb_rtnl_error *e)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	struct rl_msg m;
	struct addr_dump d = { cb, ctx };
	rl_init(&m, RTM_GETADDR, 0, &ifa, sizeof(ifa));
	return rhumb_rtnl_dump_raw(r, &m.u.nh, addr_row, &d, e);
}

int rl_addr_add(rhumb_rtnl_req *r, int32_t ifindex, const uint8_t addr[4], uint8_t prefix, rhumb_rtnl_error *e)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = prefix, .ifa_scope = RT_SCOPE_UNIVERSE,
				 .ifa_index = (uint32_t)ifindex };
	struct rl_msg m;
	rl_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
	rl_put(&m, IFA_LOCAL, addr, 4);
	rl_put(&m, IFA_ADDRESS, addr, 4);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_route_replace(rhumb_rtnl_req *r, const uint8_t dst[4], uint8_t prefix, const uint8_t *gw, int32_t ifindex,
		     rhumb_rtnl_error *e)
{
	struct rtmsg rtm = {
		.rtm_family = AF_INET, .rtm_dst_len = prefix, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
		.rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK, .rtm_type = RTN_UNICAST,
	};
	struct rl_msg m;
	rl_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm, sizeof(rtm));
	if (prefix)
		rl_put(&m, RTA_DST, dst, 4);
	if (gw)
		rl_put(&m, RTA_GATEWAY, gw, 4);
	rl_put_u32(&m, RTA_OIF, (uint32_t)ifindex);
	return rl_talk(r, &m, NULL, NULL, e);
}

int rl_brport_set(rhumb_rtnl_req *r, int32_t ifindex, int learning, int flood, rhumb_rtnl_error *e)
{
	struct ifinfomsg ifi = { .ifi_family = AF_BRIDGE, .ifi_index = ifindex };
	struct rl_msg m;
	rl_init(&m, RTM_SETLINK, 0, &ifi, sizeof(ifi));
	/* The bridge reads port flags only from a nest marked as one. */
	rl_nest(&m, IFLA_PROTINFO | NLA_F_NESTED);
	if (learning >= 0)
		rl_put_u8(&m, IFLA_BRPORT_LEARNING, (uint8_t)learning);
	if (flood >= 0)
		rl_put_u8(&m, IFLA_BRPORT_UNICAST_FLOOD, (uint8_t)flood);
	rl_nest_end(&m);
	return rl_talk(r, &m, NULL, NULL, e);
}
