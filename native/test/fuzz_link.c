/*
 * rl_parse_link (rtnl_link.c) on link dump messages: a well-formed vxlan link decodes
 * (name, MTU, kind, VNI, source address), then truncated and mutated copies of it, each
 * in a buffer of exactly its nlmsg_len bytes, must decode or be refused without reading
 * outside it (AddressSanitizer) or undefined behaviour.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"
#include "rhumb_link.h"

static uint8_t msg[512];

static struct rtattr *attr(size_t *off, uint16_t type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)(msg + *off);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (data)
		memcpy(RTA_DATA(a), data, len);
	*off += RTA_ALIGN(a->rta_len);
	return a;
}

/* A vxlan link "rvx42" (MTU 1450, VNI 42, local 198.18.0.1); returns its length. */
static size_t build(void)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)msg;
	struct ifinfomsg *ifi;
	size_t off = NLMSG_LENGTH(sizeof(*ifi));
	uint32_t mtu = 1450, vni = 42;
	struct in_addr local;
	struct rtattr *info, *data;

	memset(msg, 0, sizeof(msg));
	nh->nlmsg_type = RTM_NEWLINK;
	ifi = NLMSG_DATA(nh);
	ifi->ifi_index = 7;
	inet_pton(AF_INET, "198.18.0.1", &local);
	attr(&off, IFLA_IFNAME, "rvx42", 6);
	attr(&off, IFLA_MTU, &mtu, 4);
	info = attr(&off, IFLA_LINKINFO, NULL, 0);
	attr(&off, IFLA_INFO_KIND, "vxlan", 6);
	data = attr(&off, IFLA_INFO_DATA, NULL, 0);
	attr(&off, IFLA_VXLAN_ID, &vni, 4);
	attr(&off, IFLA_VXLAN_LOCAL, &local, 4);
	data->rta_len = (unsigned short)(msg + off - (uint8_t *)data);
	info->rta_len = (unsigned short)(msg + off - (uint8_t *)info);
	nh->nlmsg_len = (uint32_t)off;
	return off;
}

static int parse_exact(const uint8_t *src, size_t len, struct rl_link_info *out)
{
	uint8_t *copy = malloc(len);
	int rc;
	memcpy(copy, src, len);
	((struct nlmsghdr *)copy)->nlmsg_len = (uint32_t)len;
	rc = rl_parse_link((const struct nlmsghdr *)copy, out);
	free(copy);
	return rc;
}

int main(void)
{
	struct rl_link_info l;
	size_t len = build();
	uint8_t mutated[sizeof(msg)];
	const uint8_t want_local[4] = { 198, 18, 0, 1 };

	t_init();
	CHECK(parse_exact(msg, len, &l) == 0, "a well-formed link decodes");
	CHECK(l.ifindex == 7 && strcmp(l.name, "rvx42") == 0 && l.mtu == 1450, "ifindex, name, MTU");
	CHECK(strcmp(l.kind, "vxlan") == 0 && l.has_vni && l.vni == 42, "kind and VNI");
	CHECK(l.has_vxlan_local && memcmp(l.vxlan_local, want_local, 4) == 0, "the vxlan source address");

	/* Every truncation: refused or decoded, never read past the end. */
	for (size_t cut = sizeof(struct nlmsghdr); cut < len; cut++)
		(void)parse_exact(msg, cut, &l);

	/* Random byte mutations of the attribute area (lengths and types included). */
	srand(12345);
	for (int i = 0; i < 200000; i++) {
		size_t n = (size_t)(rand() % 4) + 1, cut = len - (size_t)(rand() % 8);
		memcpy(mutated, msg, len);
		for (size_t k = 0; k < n; k++)
			mutated[NLMSG_LENGTH(sizeof(struct ifinfomsg)) + (size_t)rand() % (len - NLMSG_LENGTH(sizeof(struct ifinfomsg)))] = (uint8_t)rand();
		if (cut < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
			cut = len;
		if (parse_exact(mutated, cut, &l) == 0)
			CHECK(memchr(l.name, '\0', sizeof(l.name)) && memchr(l.kind, '\0', sizeof(l.kind)), "names stay terminated");
	}
	return t_report();
}
