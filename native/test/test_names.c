/*
 * The shapes of interface names and namespace paths the native plumbing accepts
 * (native/src/netns.c): the same rules as src/agent/plumbing/checks.ts (netnsPathProblem,
 * and sandboxPathProblem for Docker's sandbox keys), so that nothing
 * the TypeScript side would refuse reaches the kernel through C either.
 */
#include <errno.h>
#include "testlib.h"
#include "rhumb_netns.h"

int main(void)
{
	static const char *good_if[] = { "eth0", "rv02005e440001", "a", "x.y", "x_y-z", "123456789012345", "_", NULL };
	static const char *bad_if[] = { "", "1234567890123456", "-x", ".", "..", "a b", "a/b", "a:b", "a;b", "a\nb", "ä", "a\"", "a#", NULL };
	static const char *good_ns[] = { "/run/netns/vm1", "/var/run/netns/a.b_c-d", "/proc/1/ns/net", "/proc/2147483647/ns/net", "/run/netns/0",
					 "/var/run/docker/netns/0123456789ab",
					 "/tmp/rhumb-docker-x/n1/exec/netns/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL };
	static const char *bad_ns[] = { "", "/run/netns/", "/run/netns/.x", "/run/netns/-x", "/run/netns/a/b", "/run/netns/../x",
					"/var/run/netns/a b", "/proc/0/ns/net", "/proc/01/ns/net", "/proc/2147483648/ns/net",
					"/proc/12345678901/ns/net", "/proc/self/ns/net", "/proc/1/ns/net/", "/proc/1/ns/mnt", "/tmp/ns",
					"run/netns/x", "/run/netns/a\nb",
					/* Docker sandbox keys of the wrong shape */
					"/var/run/docker/netns/0123456789AB", "/netns/0123456789ab", "/a/../netns/0123456789ab", "/a/./netns/0123456789ab",
					"/a//netns/0123456789ab", "/a/netns/0123456789a", "/a/netns/0123456789abc", "/a b/netns/0123456789ab",
					"a/netns/0123456789ab", "/a/netns/0123456789ab/", "/a/netnsx/0123456789ab", "/a/xnetns/0123456789ab", NULL };
	char longname[200];

	t_init();
	for (int i = 0; good_if[i]; i++)
		CHECK(rhumb_ifname_ok(good_if[i]), "interface name %s accepted", good_if[i]);
	for (int i = 0; bad_if[i]; i++)
		CHECK(!rhumb_ifname_ok(bad_if[i]), "interface name %s refused", bad_if[i]);
	for (int i = 0; good_ns[i]; i++)
		CHECK(rhumb_netns_path_ok(good_ns[i]), "netns path %s accepted", good_ns[i]);
	for (int i = 0; bad_ns[i]; i++)
		CHECK(!rhumb_netns_path_ok(bad_ns[i]), "netns path %s refused", bad_ns[i]);
	snprintf(longname, sizeof(longname), "/run/netns/%0128d", 7);
	CHECK(rhumb_netns_path_ok(longname), "a 128-character name accepted");
	snprintf(longname, sizeof(longname), "/run/netns/%0129d", 7);
	CHECK(!rhumb_netns_path_ok(longname), "a 129-character name refused");
	CHECK(rhumb_netns_open("/tmp/ns") == -EINVAL, "opening a path of the wrong shape is refused before open()");
	return t_report();
}
