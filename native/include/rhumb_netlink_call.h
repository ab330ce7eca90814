#ifndef RHUMB_NETLINK_CALL_H
#define RHUMB_NETLINK_CALL_H
/*
 * What the two halves of the rtnetlink binding share: the RtnlSocket object and its miss
 * notifications (native/src/netlink.c) and its requests and dumps with their arguments
 * (native/src/netlink_requests.c).
 */
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rhumb_rtnl.h"

/* An RtnlSocket's native state (netlink.c). */
typedef struct rh_rtnl rh_rtnl;

/*
 * One call of a binding function: its arguments (up to four are read) and its name, which
 * every error message starts with. For RtnlSocket methods also the open socket.
 */
struct call {
	napi_env env;
	const char *method;
	rh_rtnl *r;
	size_t argc; /* given, at most 4 */
	napi_value argv[4];
};

/*
 * Starts an RtnlSocket method call: `this` must be an open socket and at least `required`
 * arguments given (else a TypeError quoting `usage`). False when it threw.
 */
bool rhumb_nl_begin(napi_env env, napi_callback_info info, const char *method, size_t required, const char *usage,
		    struct call *c);
/* The socket's request socket (requests and dumps). */
rhumb_rtnl_req *rhumb_nl_req(rh_rtnl *r);

/* Argument getters (netlink_requests.c): each throws (TypeError, RangeError) naming the method and returns false. */
/* Argument i, or NULL when it is absent, undefined or null. */
napi_value rhumb_nl_optional(const struct call *c, size_t i);
bool rhumb_nl_arg_ifindex(const struct call *c, napi_value v, int32_t *out);

/* The RtnlSocket methods that talk to the kernel, and ifIndex(name) (netlink_requests.c). */
napi_value rhumb_nl_neigh_set(napi_env env, napi_callback_info info);
napi_value rhumb_nl_neigh_del(napi_env env, napi_callback_info info);
napi_value rhumb_nl_fdb_set(napi_env env, napi_callback_info info);
napi_value rhumb_nl_fdb_del(napi_env env, napi_callback_info info);
napi_value rhumb_nl_neigh_list(napi_env env, napi_callback_info info);
napi_value rhumb_nl_fdb_list(napi_env env, napi_callback_info info);
napi_value rhumb_nl_if_index(napi_env env, napi_callback_info info);

#endif
