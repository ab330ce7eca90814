#ifndef RHUMB_NAPI_UTIL_H
#define RHUMB_NAPI_UTIL_H
/*
 * Helpers the Node-API bindings share: errors (TypeError and RangeError naming the method,
 * system errors with code, errno and syscall like Node's), properties of result objects,
 * and strict parsers and formatters of MAC and IP text.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

#include "rhumb_napi.h"
#include "rhumb_rtnl.h"

/* TypeError: fmt takes the method and the detail (two %s). */
void rhumb_throw_type(napi_env env, const char *fmt, const char *method, const char *detail);
void rhumb_throw_range(napi_env env, const char *method, const char *what);
/* Error "what: strerror (CODE): kmsg" with code, errno (negative) and syscall; NULL if it could not be made. */
napi_value rhumb_make_sys_error(napi_env env, const char *what, const char *syscall, int err, const char *kmsg);
void rhumb_throw_sys(napi_env env, const char *what, const char *syscall, int err, const char *kmsg);

napi_status rhumb_set_str(napi_env env, napi_value obj, const char *key, const char *val);
napi_status rhumb_set_num(napi_env env, napi_value obj, const char *key, double val);
napi_status rhumb_set_bool(napi_env env, napi_value obj, const char *key, bool val);

void rhumb_format_mac(const uint8_t *mac, char out[18]);
void rhumb_format_ip(const rhumb_rtnl_addr *a, char out[INET6_ADDRSTRLEN]);
int rhumb_hexval(char c);
/* Strict "xx:xx:xx:xx:xx:xx". */
bool rhumb_parse_mac(const char *s, uint8_t out[6]);
bool rhumb_is_zero_mac(const uint8_t mac[6]);
/* IPv4 or IPv6 text. */
bool rhumb_parse_ip(const char *s, rhumb_rtnl_addr *a);
bool rhumb_is_nullish(napi_env env, napi_value v);

#endif
