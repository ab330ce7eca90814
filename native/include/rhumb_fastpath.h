#ifndef RHUMB_FASTPATH_H
#define RHUMB_FASTPATH_H
#include <node_api.h>

/*
 * Registers class FastPath on exports: the userspace VXLAN data plane (TAP devices in the
 * instances' namespaces, an underlay UDP socket, a forwarding thread, mapping tables and
 * miss upcalls). See src/dataplane/fastpath.ts for the typed face.
 */
napi_status rhumb_fastpath_register(napi_env env, napi_value exports);

#endif
