/*
 * Deleting a link without waiting for the end of its teardown. The kernel answers
 * RTM_DELLINK only after the whole unregistration: the device is unlisted (its name and
 * its veth peer's free, nothing reaches it) within a millisecond, then the request's
 * thread waits for an RCU barrier and the device's last references, tens of milliseconds
 * on a busy node, and it holds nothing anyone waits for. So the request goes out on a
 * detached thread, and the caller returns at the device's RTM_DELLINK notification (sent
 * once it is unlisted), or at the request's own answer if that comes first (an error).
 */
#include "rhumb_link.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/rtnetlink.h>

/* Shared by the caller and the thread sending the request; the last one out frees it. */
struct unlist {
	atomic_int refs;
	int done_fd; /* eventfd: the request was answered */
	rhumb_rtnl_req req;
	char name[16];
	int rc;
	rhumb_rtnl_error e;
};

static void unlist_put(struct unlist *u)
{
	if (atomic_fetch_sub(&u->refs, 1) != 1)
		return;
	rhumb_rtnl_req_close(&u->req);
	close(u->done_fd);
	free(u);
}

static void *send_delete(void *arg)
{
	struct unlist *u = arg;
	uint64_t one = 1;
	u->rc = rl_link_del(&u->req, u->name, &u->e);
	if (write(u->done_fd, &one, sizeof(one)) < 0) {
		/* An eventfd write only fails on overflow: the caller is woken either way. */
	}
	unlist_put(u);
	return NULL;
}

/* 1 when the pending notifications on fd include ifindex's RTM_DELLINK, 0 when not, -errno. */
static int saw_unlisted(int fd, int32_t ifindex)
{
	uint8_t buf[16384] __attribute__((aligned(4)));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			const struct ifinfomsg *ifi = NLMSG_DATA(nh);
			/* AF_BRIDGE notifications say a port left its bridge; AF_UNSPEC says the device is gone. */
			if (nh->nlmsg_type == RTM_DELLINK && nh->nlmsg_len >= NLMSG_LENGTH(sizeof(*ifi)) &&
			    ifi->ifi_family == AF_UNSPEC && ifi->ifi_index == ifindex)
				return 1;
		}
	}
}

int rl_link_del_unlisted(const char *name, int timeout_ms, rhumb_rtnl_error *e)
{
	struct unlist *u;
	struct pollfd fds[2];
	pthread_attr_t attr;
	pthread_t thread;
	int32_t ifindex = 0;
	int mon, rc;

	memset(e, 0, sizeof(*e));
	u = calloc(1, sizeof(*u));
	if (!u)
		return -(e->err = ENOMEM);
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->req.fd = -1;
	u->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->done_fd < 0) {
		rc = -errno;
		free(u);
		return -(e->err = -rc);
	}
	atomic_init(&u->refs, 1);
	/* Subscribed before the request goes out: the notification cannot be missed. */
	mon = rhumb_rtnl_monitor_open(RTNLGRP_LINK);
	if (mon < 0) {
		unlist_put(u);
		return -(e->err = -mon);
	}
	rc = rhumb_rtnl_req_open(&u->req, timeout_ms);
	if (rc == 0)
		rc = ifindex = rl_link_index(&u->req, name, e);
	if (rc < 0) {
		if (!e->err)
			e->err = -rc;
		goto out;
	}
	atomic_fetch_add(&u->refs, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, send_delete, u);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&u->refs, 1);
		/* No thread: delete here, waiting for all of it. */
		rc = rl_link_del(&u->req, name, e);
		goto out;
	}
	fds[0] = (struct pollfd){ .fd = mon, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = u->done_fd, .events = POLLIN };
	for (;;) {
		int n = poll(fds, 2, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n == 0 ? -ETIMEDOUT : -errno;
			e->err = -rc;
			break;
		}
		if (fds[1].revents) {
			/* Answered (the thread wrote its result before waking us). */
			rc = u->rc;
			*e = u->e;
			break;
		}
		if (fds[0].revents) {
			int seen = saw_unlisted(mon, ifindex);
			if (seen == 1) {
				rc = 0;
				break;
			}
			/* Notifications lost (ENOBUFS): wait for the answer alone. */
			if (seen < 0)
				fds[0].fd = -1;
		}
	}
out:
	close(mon);
	unlist_put(u);
	return rc;
}
