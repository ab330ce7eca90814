/*
 * TAP devices created inside instance namespaces, by a short-lived thread that setns()es
 * there (so the device is born in place and the fd stays with us), and the cap on the
 * superframes the instance's TCP builds on a TAP (one superframe, one UDP_SEGMENT send).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"
#include "rhumb_link.h"

/* <net/if.h> clashes with <linux/if.h>. */
extern unsigned int if_nametoindex(const char *ifname);

uint16_t fp_tap_gso_segs(uint16_t mtu)
{
	/* The longest segment datagram: VXLAN header, Ethernet header with a tag, the MTU. */
	size_t dgram = (size_t)mtu + RV_VXLAN_HLEN + RV_ETH_HLEN + 4;
	size_t segs = FP_GSO_MAX / dgram;
	if (segs > FP_GSO_SEGS)
		segs = FP_GSO_SEGS;
	return (uint16_t)(segs ? segs : 1);
}

/*
 * IFLA_GSO_MAX_SEGS of the TAP, in this namespace. Best effort: a kernel that cannot
 * change it (before 5.19) only costs a second, short send per superframe.
 */
static void tap_cap_segments(const char *ifname, uint32_t segs)
{
	struct rl_change c = { .up = -1, .master = -1, .gso_max_segs = segs };
	rhumb_rtnl_req req;
	rhumb_rtnl_error e;

	/* The ACK is awaited so that the setting is in place when the NIC is handed over. */
	if (rhumb_rtnl_req_open(&req, 1000) != 0)
		return;
	(void)rl_link_set(&req, ifname, &c, &e);
	rhumb_rtnl_req_close(&req);
}

void *fp_tap_thread(void *arg)
{
	struct tap_req *r = arg;
	struct ifreq ifr;
	int s;

	r->fd = -1;
	if (r->netns && *r->netns) {
		int nsfd = open(r->netns, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0) {
			r->err = errno;
			r->step = "open netns";
			return NULL;
		}
		/* Only this short-lived thread changes namespace. */
		if (setns(nsfd, CLONE_NEWNET) != 0) {
			r->err = errno;
			r->step = "setns";
			close(nsfd);
			return NULL;
		}
		close(nsfd);
	}
	if (r->must_exist && if_nametoindex(r->ifname) == 0) {
		r->err = ENODEV;
		r->step = "re-attach (no such device)";
		return NULL;
	}
	r->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0) {
		r->err = errno;
		r->step = "open /dev/net/tun";
		return NULL;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (r->vnethdr ? IFF_VNET_HDR : 0);
	if (ioctl(r->fd, TUNSETIFF, &ifr) != 0) {
		r->step = "TUNSETIFF";
		goto fail;
	}
	if (r->vnethdr && ioctl(r->fd, TUNSETOFFLOAD, r->offload) != 0) {
		r->step = "TUNSETOFFLOAD";
		goto fail;
	}
	/* A persistent TAP outlives the agent: a restarted one re-attaches to it by name. */
	if (r->persist && ioctl(r->fd, TUNSETPERSIST, 1) != 0) {
		r->step = "TUNSETPERSIST";
		goto fail;
	}
	if (r->must_exist)
		return NULL; /* re-attached: address and MTU are as the first agent set them */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		r->step = "socket";
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, r->mac, 6);
	if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) {
		r->step = "SIOCSIFHWADDR";
		close(s);
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->ifname);
	ifr.ifr_mtu = r->mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) != 0) {
		r->step = "SIOCSIFMTU";
		close(s);
		goto fail;
	}
	close(s);
	if (r->gso_max_segs)
		tap_cap_segments(r->ifname, r->gso_max_segs);
	return NULL;
fail:
	r->err = errno;
	close(r->fd);
	r->fd = -1;
	return NULL;
}

