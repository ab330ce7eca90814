/*
 * An engine without sockets or threads for the C tests: NICs whose "TAP" is one end of a
 * SOCK_SEQPACKET pair (each write one packet, read back by the test), no sending sockets
 * (encapsulated frames end as drop_send), upcalls recorded.
 */
#ifndef RHUMB_ENGINELIB_H
#define RHUMB_ENGINELIB_H
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "rhumb_fp_internal.h"
#include "testlib.h"

struct recorded { int n; uint8_t kind[4096]; uint32_t vnet[4096]; };

static void t_record(void *ctx, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct recorded *r = ctx;
	(void)key;
	if (r->n < 4096) {
		r->kind[r->n] = kind;
		r->vnet[r->n] = vnet;
	}
	r->n++;
}

static inline struct fp *t_engine(struct recorded *rec)
{
	struct fp_options o = { .underlay_ip = { 198, 18, 0, 1 }, .port = 4789, .underlay_mtu = 1500, .coalesce = true, .mmsg = true };
	struct fp *f = fp_alloc(&o, t_record, rec);
	if (!f) {
		perror("fp_alloc");
		exit(2);
	}
	f->vnethdr = true;
	f->coalesce = true;
	return f;
}

/* A NIC in slot; *peer is the test's end of its "TAP". */
static inline void t_nic(struct fp *f, int slot, const uint8_t mac[6], const uint8_t ip[4], uint32_t vnet, uint16_t vlan, int *peer)
{
	int sv[2];
	struct fp_nic_spec s = { .ifname = "t", .vnet = vnet, .vlan = vlan, .mtu = -1 };
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
		perror("socketpair");
		exit(2);
	}
	memcpy(s.mac, mac, 6);
	v4key(s.ip, ip);
	if (fp_install_nic(f, slot, sv[0], &s) != FP_OK) {
		fprintf(stderr, "fp_install_nic failed\n");
		exit(2);
	}
	*peer = sv[1];
}

/* Reads one packet the engine wrote to a NIC (virtio header first); its length or 0. */
static inline size_t t_read(int peer, uint8_t *buf, size_t cap)
{
	ssize_t n = read(peer, buf, cap);
	return n > 0 ? (size_t)n : 0;
}

static inline void t_drain(int peer)
{
	uint8_t buf[70000];
	while (read(peer, buf, sizeof(buf)) > 0) {
	}
}

static inline void t_release(struct fp *f)
{
	for (int i = 0; i < FP_MAX_NICS; i++) {
		if (f->nics[i].used) {
			close(f->nics[i].fd);
			fp_uninstall_nic(f, i);
		}
	}
	fp_free(f);
}

/* A table record (rhumb_fp.h: fp_update). */
static inline void t_record_op(uint8_t r[FP_RECORD], uint8_t op, uint32_t vnet, uint16_t vlan, const uint8_t mac[6],
			       const uint8_t ip4[4], const uint8_t underlay[4])
{
	memset(r, 0, FP_RECORD);
	r[0] = op;
	r[2] = (uint8_t)vlan;
	r[3] = (uint8_t)(vlan >> 8);
	memcpy(r + 4, &vnet, 4);
	if (mac)
		memcpy(r + 8, mac, 6);
	if (ip4) {
		r[26] = r[27] = 0xff;
		memcpy(r + 28, ip4, 4);
	}
	if (underlay) {
		r[26] = r[27] = 0xff;
		memcpy(r + 28, underlay, 4);
	}
}

#endif
