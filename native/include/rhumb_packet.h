#ifndef RHUMB_PACKET_H
#define RHUMB_PACKET_H
/*
 * One whole Ethernet frame out of a named interface of the caller's namespace, on a raw
 * AF_PACKET socket: the announcements (gratuitous ARP, unsolicited neighbour advertisement)
 * the kernel backend sends into a vnet's bridge when an address moves.
 */
#include <node_api.h>
#include <stddef.h>

/* Smallest and largest frame accepted: an Ethernet header, and an MTU-9000 frame with VLAN tag. */
#define RHUMB_PACKET_MIN 14
#define RHUMB_PACKET_MAX 9018

/* Sends frame (len bytes, header included) out of ifindex; 0, or -errno (with *syscall the step that failed). */
int rhumb_packet_send(unsigned ifindex, const void *frame, size_t len, const char **syscall);

napi_status rhumb_packet_register(napi_env env, napi_value exports);

#endif
