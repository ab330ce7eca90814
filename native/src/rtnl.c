/*
 * rtnetlink neighbour/FDB protocol layer. Requests are synchronous round trips on a
 * dedicated socket; notifications arrive on a separate socket joined to RTNLGRP_NEIGH.
 */
#include "rhumb_rtnl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif

#define DUMP_RETRIES 5

static int nl_socket(int flags)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE);
	return fd < 0 ? -errno : fd;
}

int rhumb_rtnl_req_open(rhumb_rtnl_req *r, int timeout_ms)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t salen = sizeof(sa);
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int one = 1;
	int fd, err;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	fd = nl_socket(0);
	if (fd < 0)
		return fd;
	/* Kernel error strings, and no echo of our own request in error replies. */
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	r->buf = malloc(RHUMB_RTNL_BUFSZ);
	if (!r->buf) {
		close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	r->portid = sa.nl_pid;
	r->seq = (uint32_t)time(NULL);
	return 0;
}

void rhumb_rtnl_req_close(rhumb_rtnl_req *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->buf);
	r->buf = NULL;
}

int rhumb_rtnl_monitor_open(int group)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int rcvbuf = 4 * 1024 * 1024;
	int fd, err;

	fd = nl_socket(SOCK_NONBLOCK);
	if (fd < 0)
		return fd;
	/* A burst of misses must not overflow the queue; FORCE needs CAP_NET_ADMIN. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void rhumb_rtnl_msg_init(rhumb_rtnl_msg *m, uint16_t type, uint16_t flags, uint8_t family,
			 int32_t ifindex, uint16_t state, uint8_t ntf_flags)
{
	struct ndmsg *ndm;

	memset(m, 0, sizeof(*m));
	m->u.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	m->u.nh.nlmsg_type = type;
	m->u.nh.nlmsg_flags = NLM_F_REQUEST | flags;
	ndm = NLMSG_DATA(&m->u.nh);
	ndm->ndm_family = family;
	ndm->ndm_ifindex = ifindex;
	ndm->ndm_state = state;
	ndm->ndm_flags = ntf_flags;
}

int rhumb_rtnl_msg_put(rhumb_rtnl_msg *m, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(m->u.nh.nlmsg_len);
	struct rtattr *rta;

	if (off + RTA_SPACE(len) > sizeof(m->u.raw))
		return -EMSGSIZE;
	rta = (struct rtattr *)(m->u.raw + off);
	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	m->u.nh.nlmsg_len = (uint32_t)(off + RTA_SPACE(len));
	return 0;
}

static int send_msg(rhumb_rtnl_req *r, struct nlmsghdr *nh)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	nh->nlmsg_seq = ++r->seq;
	nh->nlmsg_pid = 0;
	do {
		n = sendto(r->fd, nh, nh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != nh->nlmsg_len)
		return -EIO;
	return 0;
}

/* Reads one datagram from the kernel into r->buf. Returns its length or -errno. */
static ssize_t recv_msg(rhumb_rtnl_req *r)
{
	struct sockaddr_nl from;
	struct iovec iov = { .iov_base = r->buf, .iov_len = RHUMB_RTNL_BUFSZ };
	struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	for (;;) {
		n = recvmsg(r->fd, &mh, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		if (mh.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (from.nl_pid != 0) /* only the kernel talks to us */
			continue;
		return n;
	}
}

/* Extracts the errno and extended-ACK message of an NLMSG_ERROR. */
static int parse_error(const struct nlmsghdr *nh, rhumb_rtnl_error *e)
{
	const struct nlmsgerr *ne = NLMSG_DATA(nh);
	size_t payload = nh->nlmsg_len - NLMSG_HDRLEN;
	size_t off;

	if (payload < sizeof(*ne))
		return -EIO;
	if (ne->error == 0)
		return 0;
	e->err = -ne->error;
	e->msg[0] = '\0';
	if (!(nh->nlmsg_flags & NLM_F_ACK_TLVS))
		return ne->error;
	off = (nh->nlmsg_flags & NLM_F_CAPPED) ? sizeof(*ne)
					       : sizeof(*ne) - sizeof(ne->msg) + ne->msg.nlmsg_len;
	while (off + sizeof(struct nlattr) <= payload) {
		const struct nlattr *na = (const struct nlattr *)((const uint8_t *)ne + off);
		if (na->nla_len < sizeof(*na) || off + na->nla_len > payload)
			break;
		if ((na->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
			size_t len = na->nla_len - sizeof(*na);
			if (len >= sizeof(e->msg))
				len = sizeof(e->msg) - 1;
			memcpy(e->msg, (const uint8_t *)na + sizeof(*na), len);
			e->msg[len] = '\0';
			/* trim the trailing newline/NUL some subsystems add */
			while (len && (e->msg[len - 1] == '\n' || e->msg[len - 1] == '\0'))
				e->msg[--len] = '\0';
		}
		off += NLA_ALIGN(na->nla_len);
	}
	return ne->error;
}

static int fail(rhumb_rtnl_error *e, int neg_err)
{
	e->err = -neg_err;
	e->msg[0] = '\0';
	return neg_err;
}

int rhumb_rtnl_exchange(rhumb_rtnl_req *r, struct nlmsghdr *req, rhumb_rtnl_reply_cb cb, void *ctx, rhumb_rtnl_error *e)
{
	int rc;

	e->err = 0;
	e->msg[0] = '\0';
	req->nlmsg_flags |= NLM_F_ACK;
	rc = send_msg(r, req);
	if (rc < 0)
		return fail(e, rc);
	for (;;) {
		ssize_t len = recv_msg(r);
		struct nlmsghdr *nh;
		size_t left;

		if (len < 0)
			return fail(e, (int)len);
		left = (size_t)len;
		for (nh = (struct nlmsghdr *)r->buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_seq != r->seq || nh->nlmsg_pid != r->portid)
				continue; /* a late answer to an earlier, timed-out request */
			if (nh->nlmsg_type == NLMSG_ERROR)
				return parse_error(nh, e);
			if (cb)
				cb(nh, ctx);
		}
	}
}

int rhumb_rtnl_ack(rhumb_rtnl_req *r, rhumb_rtnl_msg *m, rhumb_rtnl_error *e)
{
	return rhumb_rtnl_exchange(r, &m->u.nh, NULL, NULL, e);
}

int rhumb_rtnl_dump_raw(rhumb_rtnl_req *r, struct nlmsghdr *req, rhumb_rtnl_dump_raw_cb cb, void *ctx,
			rhumb_rtnl_error *e)
{
	for (int attempt = 0; attempt < DUMP_RETRIES; attempt++) {
		bool done = false, interrupted = false;
		int cb_rc = 0, rc;

		e->err = 0;
		e->msg[0] = '\0';
		req->nlmsg_flags |= NLM_F_DUMP;
		rc = send_msg(r, req);
		if (rc < 0)
			return fail(e, rc);
		while (!done) {
			ssize_t len = recv_msg(r);
			struct nlmsghdr *nh;
			size_t left;

			if (len < 0)
				return fail(e, (int)len);
			left = (size_t)len;
			for (nh = (struct nlmsghdr *)r->buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
				if (nh->nlmsg_seq != r->seq || nh->nlmsg_pid != r->portid)
					continue;
				if (nh->nlmsg_flags & NLM_F_DUMP_INTR)
					interrupted = true;
				if (nh->nlmsg_type == NLMSG_DONE) {
					/* the DONE payload carries an error if the dump failed */
					if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
						int derr = *(const int *)NLMSG_DATA(nh);
						if (derr < 0)
							return fail(e, derr);
					}
					done = true;
					break;
				}
				if (nh->nlmsg_type == NLMSG_ERROR) {
					rc = parse_error(nh, e);
					if (rc < 0)
						return rc;
					continue;
				}
				if (cb_rc == 0)
					cb_rc = cb(nh, ctx);
			}
		}
		if (cb_rc != 0)
			return cb_rc;
		if (!interrupted)
			return 0;
		/* the table changed under the dump: the view is inconsistent, start again */
		cb_rc = cb(NULL, ctx);
		if (cb_rc != 0)
			return cb_rc;
	}
	return fail(e, -EAGAIN);
}

struct neigh_dump {
	rhumb_rtnl_dump_cb cb;
	void *ctx;
};

static int neigh_row(const struct nlmsghdr *nh, void *arg)
{
	struct neigh_dump *d = arg;
	rhumb_rtnl_neigh n;

	if (!nh)
		return d->cb(NULL, d->ctx);
	if (nh->nlmsg_type != RTM_NEWNEIGH || rhumb_rtnl_parse_neigh(nh, &n) != 0)
		return 0;
	return d->cb(&n, d->ctx);
}

int rhumb_rtnl_dump(rhumb_rtnl_req *r, uint8_t family, rhumb_rtnl_dump_cb cb, void *ctx,
		    rhumb_rtnl_error *e)
{
	rhumb_rtnl_msg m;
	struct neigh_dump d = { cb, ctx };

	rhumb_rtnl_msg_init(&m, RTM_GETNEIGH, NLM_F_DUMP, family, 0, 0, 0);
	return rhumb_rtnl_dump_raw(r, &m.u.nh, neigh_row, &d, e);
}

int rhumb_rtnl_parse_neigh(const struct nlmsghdr *nh, rhumb_rtnl_neigh *out)
{
	const struct ndmsg *ndm;
	const struct rtattr *rta;
	int left;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ndm)))
		return -EINVAL;
	ndm = NLMSG_DATA(nh);
	memset(out, 0, sizeof(*out));
	out->msg_type = nh->nlmsg_type;
	out->family = ndm->ndm_family;
	out->ifindex = ndm->ndm_ifindex;
	out->state = ndm->ndm_state;
	out->flags = ndm->ndm_flags;

	left = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ndm)));
	for (rta = (const struct rtattr *)((const uint8_t *)ndm + NLMSG_ALIGN(sizeof(*ndm)));
	     RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
		size_t plen = RTA_PAYLOAD(rta);
		const uint8_t *p = RTA_DATA(rta);

		switch (rta->rta_type) {
		case NDA_DST:
			if (plen != 4 && plen != 16)
				break;
			out->has_dst = true;
			out->dst.family = plen == 4 ? AF_INET : AF_INET6;
			out->dst.len = (uint8_t)plen;
			memcpy(out->dst.bytes, p, plen);
			break;
		case NDA_LLADDR:
			if (plen != ETH_ALEN)
				break;
			out->has_lladdr = true;
			memcpy(out->lladdr, p, ETH_ALEN);
			break;
		case NDA_PORT:
			if (plen != 2)
				break;
			out->has_port = true;
			out->port = (uint16_t)((p[0] << 8) | p[1]);
			break;
		case NDA_VNI:
			if (plen != 4)
				break;
			out->has_vni = true;
			memcpy(&out->vni, p, 4);
			break;
		case NDA_MASTER:
			if (plen != 4)
				break;
			out->has_master = true;
			memcpy(&out->master, p, 4);
			break;
		default:
			break;
		}
	}
	return 0;
}

enum rhumb_rtnl_miss rhumb_rtnl_classify(const rhumb_rtnl_neigh *n)
{
	if (n->msg_type == RTM_GETNEIGH) {
		/* vxlan_fdb_miss / vxlan_ip_miss (and app_solicit): key on the attributes,
		 * not on ndm_family, which is AF_INET for L2 misses on current kernels. */
		if (n->has_dst)
			return RHUMB_MISS_L3;
		if (n->has_lladdr)
			return RHUMB_MISS_L2;
		return RHUMB_MISS_NONE;
	}
	if (n->msg_type == RTM_NEWNEIGH && n->has_dst && !(n->flags & NTF_PROXY) &&
	    (n->family == AF_INET || n->family == AF_INET6) &&
	    (n->state & (NUD_INCOMPLETE | NUD_STALE | NUD_DELAY | NUD_PROBE)))
		return RHUMB_MISS_L3_RESOLVING;
	return RHUMB_MISS_NONE;
}

const char *rhumb_rtnl_state_name(uint16_t state)
{
	static const struct { uint16_t bit; const char *name; } names[] = {
		{ NUD_PERMANENT, "permanent" }, { NUD_NOARP, "noarp" },   { NUD_REACHABLE, "reachable" },
		{ NUD_STALE, "stale" },         { NUD_DELAY, "delay" },   { NUD_PROBE, "probe" },
		{ NUD_INCOMPLETE, "incomplete" }, { NUD_FAILED, "failed" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (state & names[i].bit)
			return names[i].name;
	return "none";
}
