#ifndef RHUMB_LINKS_H
#define RHUMB_LINKS_H
#include <node_api.h>

/*
 * Registers the native plumbing on exports: linkAdd, linkSet, linkDel, linkList,
 * addrList, netnsConfigure, bridgePort, nftApply, nftList (native/src/links.c).
 */
napi_status rhumb_links_register(napi_env env, napi_value exports);

#endif
