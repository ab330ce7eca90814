/*
 * Reading the native plumbing's arguments (native/src/links.c, links_edge.c): each getter
 * checks one value and throws a TypeError or RangeError naming the method and the value
 * when it is not what the call needs; nothing runs after a throw.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "rhumb_links_args.h"
#include "rhumb_napi_util.h"
#include "rhumb_netns.h"

/* obj[key] when present and not undefined/null; NULL otherwise (or when it threw). */
napi_value la_prop(napi_env env, napi_value obj, const char *key)
{
	bool has = false;
	napi_value v;
	if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has)
		return NULL;
	if (napi_get_named_property(env, obj, key, &v) != napi_ok || rhumb_is_nullish(env, v))
		return NULL;
	return v;
}

bool la_get_string(napi_env env, const char *method, napi_value v, const char *what, char *buf, size_t cap)
{
	napi_valuetype t;
	size_t len = 0;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
		rhumb_throw_type(env, "%s: %s must be a string", method, what);
		return false;
	}
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len + 1 > cap) {
		rhumb_throw_type(env, "%s: %s is too long", method, what);
		return false;
	}
	napi_get_value_string_utf8(env, v, buf, cap, &len);
	if (strlen(buf) != len) { /* an embedded NUL */
		rhumb_throw_type(env, "%s: %s holds a NUL character", method, what);
		return false;
	}
	return true;
}

bool la_get_uint(napi_env env, const char *method, napi_value v, const char *what, double min, double max, uint32_t *out)
{
	napi_valuetype t;
	double d;
	char msg[160];
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
	    d != (double)(int64_t)d) {
		rhumb_throw_type(env, "%s: %s must be an integer", method, what);
		return false;
	}
	if (d < min || d > max) {
		snprintf(msg, sizeof(msg), "%s must be in [%.0f, %.0f], got %.0f", what, min, max, d);
		rhumb_throw_range(env, method, msg);
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

bool la_get_bool(napi_env env, const char *method, napi_value v, const char *what, bool *out)
{
	if (napi_get_value_bool(env, v, out) != napi_ok) {
		rhumb_throw_type(env, "%s: %s must be a boolean", method, what);
		return false;
	}
	return true;
}

bool la_get_ifname(napi_env env, const char *method, napi_value v, const char *what, char out[16])
{
	char buf[64];
	if (!la_get_string(env, method, v, what, buf, sizeof(buf)))
		return false;
	if (!rhumb_ifname_ok(buf)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s: %s must be 1-15 letters, digits, '_', '.' or '-' (not '.', '..' or a leading '-')",
			 method, what);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return false;
	}
	memcpy(out, buf, strlen(buf) + 1);
	return true;
}

bool la_get_netns(napi_env env, const char *method, napi_value v, char out[PATH_MAX_LEN])
{
	if (!la_get_string(env, method, v, "netns", out, PATH_MAX_LEN))
		return false;
	if (!rhumb_netns_path_ok(out)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s: netns must be /run/netns/NAME, /var/run/netns/NAME, /proc/PID/ns/net or a Docker sandbox key (.../netns/ID)", method);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return false;
	}
	return true;
}

bool la_get_mac(napi_env env, const char *method, napi_value v, uint8_t mac[6])
{
	char buf[32];
	if (!la_get_string(env, method, v, "mac", buf, sizeof(buf)))
		return false;
	if (!rhumb_parse_mac(buf, mac) || (mac[0] & 1) || rhumb_is_zero_mac(mac)) {
		rhumb_throw_type(env, "%s: mac must be a unicast 'xx:xx:xx:xx:xx:xx'%s", method, "");
		return false;
	}
	return true;
}

bool la_get_ipv4(napi_env env, const char *method, napi_value v, const char *what, uint8_t out[4])
{
	char buf[64];
	if (!la_get_string(env, method, v, what, buf, sizeof(buf)))
		return false;
	if (inet_pton(AF_INET, buf, out) != 1) {
		rhumb_throw_type(env, "%s: %s must be an IPv4 address", method, what);
		return false;
	}
	return true;
}

bool la_is_object(napi_env env, napi_value v)
{
	napi_valuetype t;
	return v && napi_typeof(env, v, &t) == napi_ok && t == napi_object;
}

/* Reads up to n arguments; throws when fewer than `required` were given. */
bool la_args(napi_env env, napi_callback_info info, const char *usage, size_t required, size_t n, napi_value *argv, size_t *argc)
{
	*argc = n;
	if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok)
		return false;
	if (*argc < required) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s needs %zu argument%s", usage, required, required == 1 ? "" : "s");
		napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
		return false;
	}
	return true;
}

