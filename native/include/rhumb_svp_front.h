#ifndef RHUMB_SVP_FRONT_H
#define RHUMB_SVP_FRONT_H
/*
 * The native SVP front end's Node-API side: the index view (svp_index.c) and the
 * connections served on the main thread's libuv loop (svp_front.c).
 */
#include <node_api.h>
#include "rhumb_svp.h"

/* Which index state answers now (swapped by svpIndexUse when a load completes). */
struct svp_index {
	struct svp_tables *cur;
	napi_ref cur_ref;
};

bool svp_get_tables(napi_env env, napi_value v, struct svp_tables **out);
bool svp_get_index(napi_env env, napi_value v, struct svp_index **out);

napi_status rhumb_svp_index_register(napi_env env, napi_value exports);
napi_status rhumb_svp_front_register(napi_env env, napi_value exports);

#endif
