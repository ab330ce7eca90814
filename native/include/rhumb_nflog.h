#ifndef RHUMB_NFLOG_H
#define RHUMB_NFLOG_H
#include <node_api.h>

/*
 * Registers the NFLOG binding on exports: class NflogSocket (one nfnetlink_log group of
 * this network namespace, parsed in C into one record per logged packet, delivered in
 * batches on the libuv loop).
 */
napi_status rhumb_nflog_register(napi_env env, napi_value exports);

#endif
