#ifndef RHUMB_NETLINK_H
#define RHUMB_NETLINK_H
#include <node_api.h>

/*
 * Registers the rtnetlink binding on exports: class RtnlSocket (requests, dumps, miss
 * notifications on the libuv loop) and function ifIndex(name).
 */
napi_status rhumb_netlink_register(napi_env env, napi_value exports);

#endif
