#ifndef RHUMB_NAPI_H
#define RHUMB_NAPI_H
/*
 * What every Node-API binding of the addon shares: one way to check a napi_* call, and
 * Node's error codes for errno values.
 */
#include <node_api.h>
#include <stdbool.h>
#include <string.h>

/* Throws ERR_NAPI with `what`, unless the failed call already left an exception pending. */
static inline void rhumb_throw_pending_or(napi_env env, const char *what)
{
	bool pending = false;
	if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
		return;
	napi_throw_error(env, "ERR_NAPI", what);
}

/* Evaluates a napi_* call; when it fails, throws (see above) and returns NULL. */
#define RHUMB_CHECK(env, call)                                                       \
	do {                                                                         \
		if ((call) != napi_ok) {                                             \
			rhumb_throw_pending_or((env), #call " failed");              \
			return NULL;                                                 \
		}                                                                    \
	} while (0)

/* 'ENOENT' for ENOENT, as Node names system errors. */
static inline const char *rhumb_errno_code(int err)
{
	const char *c = strerrorname_np(err);
	return c ? c : "EUNKNOWN";
}

#endif
