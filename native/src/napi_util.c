/*
 * Helpers the Node-API bindings share (rhumb_napi_util.h): system errors shaped like
 * Node's, result objects, and strict parsers of MAC and IP text.
 */
#include "rhumb_napi_util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

void rhumb_throw_type(napi_env env, const char *fmt, const char *method, const char *detail)
{
	char msg[256];
	snprintf(msg, sizeof(msg), fmt, method, detail ? detail : "");
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

void rhumb_throw_range(napi_env env, const char *method, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", method, what);
	napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/* Error with code/errno/syscall like Node's system errors; the message names the request. */
napi_value rhumb_make_sys_error(napi_env env, const char *what, const char *syscall, int err,
				 const char *kmsg)
{
	char msg[640];
	napi_value m, c, e, v;

	snprintf(msg, sizeof(msg), "%s: %s (%s)%s%s", what, strerror(err), rhumb_errno_code(err),
		 kmsg && *kmsg ? ": " : "", kmsg ? kmsg : "");
	if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok ||
	    napi_create_string_utf8(env, rhumb_errno_code(err), NAPI_AUTO_LENGTH, &c) != napi_ok ||
	    napi_create_error(env, c, m, &e) != napi_ok)
		return NULL;
	if (napi_create_int32(env, -err, &v) == napi_ok)
		napi_set_named_property(env, e, "errno", v);
	if (syscall && napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok)
		napi_set_named_property(env, e, "syscall", v);
	return e;
}

void rhumb_throw_sys(napi_env env, const char *what, const char *syscall, int err, const char *kmsg)
{
	napi_value e = rhumb_make_sys_error(env, what, syscall, err, kmsg);
	if (e)
		napi_throw(env, e);
	else
		napi_throw_error(env, rhumb_errno_code(err), what);
}

napi_status rhumb_set_str(napi_env env, napi_value obj, const char *key, const char *val)
{
	napi_value v;
	napi_status s = napi_create_string_utf8(env, val, NAPI_AUTO_LENGTH, &v);
	return s == napi_ok ? napi_set_named_property(env, obj, key, v) : s;
}

napi_status rhumb_set_num(napi_env env, napi_value obj, const char *key, double val)
{
	napi_value v;
	napi_status s = napi_create_double(env, val, &v);
	return s == napi_ok ? napi_set_named_property(env, obj, key, v) : s;
}

napi_status rhumb_set_bool(napi_env env, napi_value obj, const char *key, bool val)
{
	napi_value v;
	napi_status s = napi_get_boolean(env, val, &v);
	return s == napi_ok ? napi_set_named_property(env, obj, key, v) : s;
}

void rhumb_format_mac(const uint8_t *mac, char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

void rhumb_format_ip(const rhumb_rtnl_addr *a, char out[INET6_ADDRSTRLEN])
{
	if (!inet_ntop(a->family, a->bytes, out, INET6_ADDRSTRLEN))
		snprintf(out, INET6_ADDRSTRLEN, "?");
}

int rhumb_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Strict "xx:xx:xx:xx:xx:xx". */
bool rhumb_parse_mac(const char *s, uint8_t out[6])
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = rhumb_hexval(s[i * 3]), lo = rhumb_hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool rhumb_is_zero_mac(const uint8_t mac[6])
{
	return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

bool rhumb_parse_ip(const char *s, rhumb_rtnl_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = AF_INET;
		a->len = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		a->family = AF_INET6;
		a->len = 16;
		return true;
	}
	return false;
}

bool rhumb_is_nullish(napi_env env, napi_value v)
{
	napi_valuetype t;
	return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

