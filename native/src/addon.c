/*
 * rhumb native addon: entry point. Each subsystem (checksum, netlink, fast path, plumbing)
 * registers its functions here; JavaScript never touches packets one by one.
 */
#include <node_api.h>
#include <string.h>
#include "rhumb_csum.h"
#include "rhumb_netlink.h"
#include "rhumb_links.h"
#include "rhumb_fastpath.h"
#include "rhumb_napi.h"
#include "rhumb_nflog.h"
#include "rhumb_packet.h"
#include "rhumb_svp_front.h"

/* inetChecksum(buf): RFC 1071 checksum of a Buffer, as the wire would carry it. */
static napi_value js_inet_checksum(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	void *data;
	size_t len;
	bool is_buf = false;
	napi_value out;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf) {
		napi_throw_type_error(env, NULL, "inetChecksum expects a Buffer");
		return NULL;
	}
	RHUMB_CHECK(env, napi_get_buffer_info(env, argv[0], &data, &len));
	RHUMB_CHECK(env, napi_create_uint32(env, rhumb_csum_fold(rhumb_csum_partial(data, len, 0)), &out));
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "inetChecksum", NULL, js_inet_checksum, NULL, NULL, NULL, napi_default, NULL },
	};
	RHUMB_CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	RHUMB_CHECK(env, rhumb_netlink_register(env, exports));
	RHUMB_CHECK(env, rhumb_fastpath_register(env, exports));
	RHUMB_CHECK(env, rhumb_links_register(env, exports));
	RHUMB_CHECK(env, rhumb_nflog_register(env, exports));
	RHUMB_CHECK(env, rhumb_packet_register(env, exports));
	RHUMB_CHECK(env, rhumb_svp_index_register(env, exports));
	RHUMB_CHECK(env, rhumb_svp_front_register(env, exports));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
