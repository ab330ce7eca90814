#ifndef RHUMB_LINKS_ARGS_H
#define RHUMB_LINKS_ARGS_H
/*
 * Argument getters of the native plumbing's bindings (native/src/links_args.c): each
 * reads one value, or throws (TypeError, RangeError) naming the method and returns false.
 */
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rhumb_link.h"
#include "rhumb_links_job.h"

/* obj[key] when present and not undefined/null; NULL otherwise (or when it threw). */
napi_value la_prop(napi_env env, napi_value obj, const char *key);
bool la_get_string(napi_env env, const char *method, napi_value v, const char *what, char *buf, size_t cap);
bool la_get_uint(napi_env env, const char *method, napi_value v, const char *what, double min, double max, uint32_t *out);
bool la_get_bool(napi_env env, const char *method, napi_value v, const char *what, bool *out);
bool la_get_ifname(napi_env env, const char *method, napi_value v, const char *what, char out[16]);
bool la_get_netns(napi_env env, const char *method, napi_value v, char out[PATH_MAX_LEN]);
bool la_get_mac(napi_env env, const char *method, napi_value v, uint8_t mac[6]);
bool la_get_ipv4(napi_env env, const char *method, napi_value v, const char *what, uint8_t out[4]);
bool la_is_object(napi_env env, napi_value v);
/* Reads up to n arguments; throws when fewer than `required` were given. */
bool la_args(napi_env env, napi_callback_info info, const char *usage, size_t required, size_t n, napi_value *argv, size_t *argc);

/* Optional property helpers: true when absent or read; false when it threw. */
#define OPT(env, obj, key, getter)                                  \
	({                                                          \
		napi_value _v = la_prop((env), (obj), (key));          \
		bool _ok = true;                                    \
		if (_v)                                             \
			_ok = (getter);                             \
		_ok;                                                \
	})

/* A required property read by getter (`_v` in it); throws when absent. */
#define REQ(env, obj, key, m, getter)                                                    \
	({                                                                               \
		napi_value _v = la_prop((env), (obj), (key));                               \
		bool _ok = _v != NULL;                                                   \
		if (!_ok)                                                                \
			rhumb_throw_type((env), "%s: %s is required", (m), (key));       \
		else                                                                     \
			_ok = (getter);                                                  \
		_ok;                                                                     \
	})

/* edgeApply (native/src/links_edge.c). */
napi_value rhumb_links_edge_apply(napi_env env, napi_callback_info info);

#endif
