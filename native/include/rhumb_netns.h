#ifndef RHUMB_NETNS_H
#define RHUMB_NETNS_H
/*
 * Network namespaces for the native plumbing: the shapes of names and paths the agent
 * accepts (the same rules as src/agent/plumbing/checks.ts, checked again here so nothing
 * else reaches the kernel), opening a namespace file, and doing work inside one from a
 * short-lived helper thread (only that thread changes namespace; sockets it opens stay in
 * the namespace after it ends).
 */
#include <stdbool.h>

#include "rhumb_rtnl.h"

/* 1-15 letters, digits, '_', '.', '-'; not '.', '..' or a leading '-'. */
bool rhumb_ifname_ok(const char *name);

/*
 * /run/netns/NAME, /var/run/netns/NAME (NAME: 1-128 of [A-Za-z0-9_.-], first [A-Za-z0-9]),
 * /proc/PID/ns/net, or a Docker sandbox key: /DIR/.../netns/ID (ID: 12 or 64 lower-case hex
 * digits; components of [A-Za-z0-9_.-], not '.' or '..'; at most 256 characters).
 */
bool rhumb_netns_path_ok(const char *path);

/*
 * Opens a network namespace file (the path must pass rhumb_netns_path_ok). Returns the fd,
 * -EINVAL for a bad path, -ENOTSUP when the file is not a network namespace, or -errno.
 */
int rhumb_netns_open(const char *path);

/* Runs fn(ctx) on a helper thread inside the namespace nsfd; fn's result, or -errno when setns failed. */
int rhumb_netns_run(int nsfd, int (*fn)(void *ctx), void *ctx);

/* Opens the request socket r inside the namespace nsfd. 0 or -errno. */
int rhumb_netns_rtnl_open(int nsfd, rhumb_rtnl_req *r, int timeout_ms);

/* Does the path still name the namespace nsfd is open on? (It may have been deleted meanwhile.) */
bool rhumb_netns_same(int nsfd, const char *path);

#endif
