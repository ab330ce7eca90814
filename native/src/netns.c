/*
 * Network namespaces for the native plumbing (rhumb_netns.h).
 */
#include "rhumb_netns.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/nsfs.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool rhumb_ifname_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 15 || name[0] == '-' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

static bool netns_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 128)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

static bool hex_id(const char *s)
{
	size_t n = strlen(s);
	if (n != 12 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * A Docker sandbox key, the namespace file libnetwork bind-mounts for a container:
 * <exec-root>/netns/<12 or 64 hex digits>, an absolute path of plain components (no '.'
 * or '..'), at most 256 characters (src/agent/plumbing/checks.ts sandboxPathProblem).
 */
static bool sandbox_key_ok(const char *path)
{
	static const char dir[] = "/netns/";
	size_t n = strlen(path);
	const char *last, *c;

	if (n > 256 || path[0] != '/')
		return false;
	last = strrchr(path, '/');
	if (last - path < (ptrdiff_t)(sizeof(dir) - 1) || strncmp(last - (sizeof(dir) - 2), dir, sizeof(dir) - 1) != 0 || !hex_id(last + 1))
		return false;
	/* Every component: 1+ name characters, not '.' or '..'. */
	for (c = path; *c; ) {
		const char *start = ++c;
		while (*c && *c != '/') {
			if (!name_char(*c))
				return false;
			c++;
		}
		if (c == start || (c - start == 1 && start[0] == '.') || (c - start == 2 && start[0] == '.' && start[1] == '.'))
			return false;
	}
	return true;
}

bool rhumb_netns_path_ok(const char *path)
{
	static const char run[] = "/run/netns/", varrun[] = "/var/run/netns/", proc[] = "/proc/", tail[] = "/ns/net";
	const char *p;
	size_t digits = 0;
	unsigned long long pid = 0;

	if (strncmp(path, run, sizeof(run) - 1) == 0)
		return netns_name_ok(path + sizeof(run) - 1);
	if (strncmp(path, varrun, sizeof(varrun) - 1) == 0)
		return netns_name_ok(path + sizeof(varrun) - 1);
	if (strncmp(path, proc, sizeof(proc) - 1) != 0)
		return sandbox_key_ok(path);
	p = path + sizeof(proc) - 1;
	if (*p == '0')
		return false;
	while (p[digits] >= '0' && p[digits] <= '9' && digits < 11)
		pid = pid * 10 + (unsigned long long)(p[digits++] - '0');
	if (digits == 0 || digits > 10 || pid > 0x7fffffffULL)
		return false;
	return strcmp(p + digits, tail) == 0;
}

int rhumb_netns_open(const char *path)
{
	struct statfs sfs;
	int fd, type, err;

	if (!rhumb_netns_path_ok(path))
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A namespace file, and of a network namespace (not a mount or user one, not a plain file). */
	if (fstatfs(fd, &sfs) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	type = (unsigned long)sfs.f_type == NSFS_MAGIC ? ioctl(fd, NS_GET_NSTYPE) : -1;
	if (type != CLONE_NEWNET) {
		close(fd);
		return -ENOTSUP;
	}
	return fd;
}

struct ns_job {
	int nsfd;
	int (*fn)(void *ctx);
	void *ctx;
	int rc;
};

static void *ns_thread(void *arg)
{
	struct ns_job *j = arg;
	/* Only this thread moves; it ends right after, so no other work ever runs in the wrong namespace. */
	if (setns(j->nsfd, CLONE_NEWNET) != 0) {
		j->rc = -errno;
		return NULL;
	}
	j->rc = j->fn(j->ctx);
	return NULL;
}

int rhumb_netns_run(int nsfd, int (*fn)(void *ctx), void *ctx)
{
	struct ns_job j = { nsfd, fn, ctx, 0 };
	pthread_t th;
	int rc = pthread_create(&th, NULL, ns_thread, &j);
	if (rc != 0)
		return -rc;
	pthread_join(th, NULL);
	return j.rc;
}

struct open_req {
	rhumb_rtnl_req *r;
	int timeout_ms;
};

static int open_req_in_ns(void *arg)
{
	struct open_req *o = arg;
	return rhumb_rtnl_req_open(o->r, o->timeout_ms);
}

int rhumb_netns_rtnl_open(int nsfd, rhumb_rtnl_req *r, int timeout_ms)
{
	struct open_req o = { r, timeout_ms };
	r->fd = -1;
	r->buf = NULL;
	return rhumb_netns_run(nsfd, open_req_in_ns, &o);
}

bool rhumb_netns_same(int nsfd, const char *path)
{
	struct stat a, b;
	return fstat(nsfd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}
