/*
 * The forwarding engine's control side (rhumb_fp.h): start and stop, NICs (their TAPs made
 * by fp_tap.c), and the table writes and reads of its owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

const char *const fp_counter_names[C_COUNT] = {
	"tx_frames", "tx_bytes", "rx_frames", "rx_bytes", "encap", "local", "segments", "gso_sends",
	"coalesced", "misses", "parked", "flushed", "arp_replies", "nd_replies", "icmp_too_big",
	"drop_spoof_mac", "drop_spoof_ip", "drop_broadcast", "drop_too_big", "drop_park_full",
	"drop_park_timeout", "drop_negative", "drop_malformed", "drop_tagged", "drop_tap_write",
	"drop_send", "drop_bad_vxlan", "drop_unknown_vni", "drop_no_nic", "drop_rx_spoof", "drop_rx_vlan",
	"drop_vlan", "drop_unknown_peer",
};

size_t fp_counter_count(void)
{
	return C_COUNT;
}

static unsigned tap_offload_flags(const struct fp *f)
{
	unsigned o = 0;
	if (f->tso)
		o |= TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	if (f->uso)
		o |= TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6;
	return o;
}

static void probe_offloads(struct fp *f)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	int s;
	if (fd >= 0) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		snprintf(ifr.ifr_name, IFNAMSIZ, "rhprobe%%d");
		if (ioctl(fd, TUNSETIFF, &ifr) == 0) {
			f->probed_vnethdr = true;
			f->probed_tso = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0;
			f->probed_uso = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6) == 0;
		}
		close(fd);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		int v = 1400, one = 1;
		f->probed_gso = setsockopt(s, SOL_UDP, UDP_SEGMENT, &v, sizeof(v)) == 0;
		f->probed_gro = setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
		close(s);
	}
}

static int open_udp(struct fp *f, uint16_t port, bool reuseport, int *err)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 4 << 20, dont = IP_PMTUDISC_DONT, one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (s < 0) {
		*err = errno;
		return -1;
	}
	memcpy(&a.sin_addr, f->ul_ip, 4);
	if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	/* Inner packets without DF may be larger than the path: let the kernel fragment the outer one. */
	setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof(dont));
	/* The receiving sockets share the port; only sockets of this (root) user may join them. */
	if (reuseport && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
		*err = errno;
		close(s);
		return -1;
	}
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		*err = errno;
		close(s);
		return -1;
	}
	return s;
}


static int fail(struct fp_error *e, int err, const char *step)
{
	e->err = err;
	e->step = step;
	return FP_ESYS;
}

/* Sockets, epoll and the forwarding thread. */
static int fp_start(struct fp *f, struct fp_error *e)
{
	struct epoll_event ev;
	int err = 0;

	uint16_t port = f->port;

	/*
	 * Our receiving sockets share the port (SO_REUSEPORT), and so could another engine's:
	 * a plain bind first makes a second engine on this address fail as it always did.
	 */
	if (port != 0) {
		int probe = open_udp(f, port, false, &err);
		if (probe < 0)
			return fail(e, err, "bind underlay UDP socket");
		close(probe);
	}
	for (int q = 0; q < FP_NRX; q++) {
		int fd = open_udp(f, port, true, &err);
		if (fd < 0)
			return fail(e, err, "bind underlay UDP socket");
		f->rxq[q].fd = fd;
		f->nrx = q + 1;
		if (port == 0) { /* an ephemeral port: the others join the first one's */
			struct sockaddr_in a;
			socklen_t al = sizeof(a);
			if (getsockname(fd, (struct sockaddr *)&a, &al) != 0)
				return fail(e, errno, "getsockname");
			port = ntohs(a.sin_port);
		}
		if (f->gro) {
			int one = 1;
			if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0)
				f->gro = false;
		}
	}
	for (int s = 0; s < FP_NTX; s++) {
		f->txfd[s] = open_udp(f, 0, false, &err);
		if (f->txfd[s] < 0)
			return fail(e, err, "sending socket");
	}
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	f->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->epfd < 0 || f->evfd < 0)
		return fail(e, errno, "epoll");
	ev.events = EPOLLIN;
	ev.data.u64 = EV_CTL;
	epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->evfd, &ev);
	for (int q = 0; f->one_thread && q < f->nrx; q++) {
		ev.events = EPOLLIN;
		ev.data.u64 = EV_RX0 + (uint64_t)q;
		epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->rxq[q].fd, &ev);
	}
	if (pthread_create(&f->thr, NULL, fp_thread_main, f) != 0)
		return fail(e, EAGAIN, "cannot start the forwarding thread");
	pthread_setname_np(f->thr, "rhumb-fp-tx"); /* for top -H, perf, /proc/PID/task */
	f->thread_started = true;
	for (int q = 0; !f->one_thread && q < f->nrx; q++) {
		char name[16];
		if (pthread_create(&f->rxq[q].thr, NULL, fp_rx_main, &f->rxq[q]) != 0)
			return fail(e, EAGAIN, "cannot start a receive thread");
		snprintf(name, sizeof(name), "rhumb-fp-rx%u", (unsigned)q % 10);
		pthread_setname_np(f->rxq[q].thr, name);
		f->rxq[q].started = true;
	}
	return FP_OK;
}

struct fp *fp_open(const struct fp_options *o, fp_upcall_fn upcall, void *ctx, struct fp_error *e)
{
	struct fp *f = fp_alloc(o, upcall, ctx);
	if (!f) {
		fail(e, ENOMEM, "out of memory");
		return NULL;
	}
	probe_offloads(f);
	f->tso = f->probed_tso && o->tso;
	f->uso = f->probed_uso && o->uso;
	f->gso = f->probed_gso && o->gso;
	f->gro = f->probed_gro && o->gro;
	f->coalesce = o->coalesce;
	f->mmsg = o->mmsg;
	f->one_thread = o->threads == FP_THREADS_ONE;
	/*
	 * The virtio header is kept even with every offload off: frames from the underlay are
	 * written with a partial L4 checksum (the outer UDP checksum covered them, and kernel
	 * senders on veth leave the inner one unfinished).
	 */
	f->vnethdr = f->probed_vnethdr;
	if (!f->vnethdr)
		f->coalesce = f->tso = f->uso = false;
	if (fp_start(f, e) != FP_OK) {
		fp_destroy(f);
		return NULL;
	}
	return f;
}

void fp_close(struct fp *f)
{
	f->stop = true;
	if (f->thread_started) {
		fp_wake(f);
		pthread_join(f->thr, NULL);
		f->thread_started = false;
	}
	for (int q = 0; q < f->nrx; q++) {
		if (!f->rxq[q].started)
			continue;
		/* Wakes the receive thread out of recvmmsg (it then sees stop). */
		shutdown(f->rxq[q].fd, SHUT_RDWR);
		pthread_join(f->rxq[q].thr, NULL);
		f->rxq[q].started = false;
	}
	for (int i = 0; i < FP_MAX_NICS; i++) {
		if (f->nics[i].used) {
			close(f->nics[i].fd);
			fp_uninstall_nic(f, i);
		}
	}
	for (int q = 0; q < f->nrx; q++) {
		if (f->rxq[q].fd >= 0)
			close(f->rxq[q].fd);
		f->rxq[q].fd = -1;
	}
	f->nrx = 0;
	for (int s = 0; s < FP_NTX; s++)
		if (f->txfd[s] >= 0)
			close(f->txfd[s]);
	if (f->epfd >= 0)
		close(f->epfd);
	if (f->evfd >= 0)
		close(f->evfd);
	f->epfd = f->evfd = -1;
	for (int s = 0; s < FP_NTX; s++)
		f->txfd[s] = -1;
}

bool fp_is_closed(const struct fp *f)
{
	return f->epfd < 0;
}

void fp_destroy(struct fp *f)
{
	fp_close(f);
	fp_free(f);
}

int fp_add_nic(struct fp *f, const struct fp_nic_spec *s, struct fp_error *e)
{
	struct tap_req req = { 0 };
	pthread_t th;
	struct epoll_event ev;
	int slot = -1, rc;

	req.netns = s->netns;
	req.ifname = s->ifname;
	memcpy(req.mac, s->mac, 6);
	req.mtu = (uint16_t)(s->mtu < 0 ? f->ul_mtu - RV_VXLAN_OVERHEAD : s->mtu);
	req.vnethdr = f->vnethdr;
	req.offload = tap_offload_flags(f);
	req.persist = s->persist;
	req.must_exist = s->reattach;
	/*
	 * A TAP in an instance's namespace is the instance's interface: TCP sizes its
	 * superframes by it. In the node's namespace it is a bridge port, where a cap would
	 * make the bridge segment in software what the instance's veth let through.
	 */
	if (f->tso && f->gso && s->netns && *s->netns)
		req.gso_max_segs = fp_tap_gso_segs(req.mtu);
	if (pthread_create(&th, NULL, fp_tap_thread, &req) != 0)
		return fail(e, EAGAIN, "cannot start the namespace thread");
	pthread_join(th, NULL);
	if (req.fd < 0)
		return fail(e, req.err, req.step ? req.step : "?");
	fp_lock_write(f);
	for (int i = 0; i < FP_MAX_NICS && slot < 0; i++)
		if (!f->nics[i].used)
			slot = i;
	rc = slot < 0 ? FP_ETOO_MANY : fp_install_nic(f, slot, req.fd, s);
	if (rc != FP_OK) {
		fp_unlock_write(f);
		close(req.fd);
		return rc;
	}
	ev.events = EPOLLIN;
	ev.data.u64 = (uint64_t)slot;
	epoll_ctl(f->epfd, EPOLL_CTL_ADD, req.fd, &ev);
	f->flush_wanted = true;
	fp_unlock_write(f);
	fp_wake(f);
	return slot;
}

bool fp_nic_exists(struct fp *f, int id)
{
	return id >= 0 && id < FP_MAX_NICS && f->nics[id].used;
}

int fp_remove_nic(struct fp *f, int id)
{
	struct nic *n;
	fp_lock_write(f);
	if (!fp_nic_exists(f, id)) {
		fp_unlock_write(f);
		return FP_ENOENT;
	}
	n = &f->nics[id];
	epoll_ctl(f->epfd, EPOLL_CTL_DEL, n->fd, NULL);
	/* Removing a NIC removes its device, persistent or not. */
	if (ioctl(n->fd, TUNSETPERSIST, 0) != 0) { /* was not persistent */ }
	close(n->fd);
	fp_uninstall_nic(f, id);
	fp_unlock_write(f);
	return FP_OK;
}

/* Drops the frames waiting on (kind, vnet, key) and remembers the NOTFOUND answer. */
static void not_found(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct pending *p = fp_pending_find(f, kind, vnet, key);
	if (p) {
		fp_pending_drop(f, p, D_NEGATIVE);
		p->neg_until = now_ms() + FP_NEG_MS;
	}
}

static void apply_record(struct fp *f, const uint8_t *r)
{
	uint32_t vnet = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
	uint16_t vlan = (uint16_t)((r[2] | r[3] << 8) & 0x0fff);
	struct l2e *e;
	struct l3e *e3;
	uint8_t key[16] = { 0 };

	switch (r[0]) {
	case 1:
		e = l2_find(f, vnet, r + 8);
		if (e && e->nic >= 0)
			break; /* a local NIC wins over a remote answer */
		e = l2_slot(f, vnet, r + 8);
		if (e) {
			e->nic = -1;
			e->vlan = vlan;
			memcpy(&e->ul, r + 28, 4);
		}
		break;
	case 2:
		e = l2_find(f, vnet, r + 8);
		if (e && e->nic < 0)
			l2_del(f, vnet, r + 8);
		break;
	case 3:
		e3 = l3_slot(f, vnet, r + 16);
		if (e3) {
			memcpy(e3->mac, r + 8, 6);
			e3->vlan = vlan;
		}
		break;
	case 4:
		l3_del(f, vnet, r + 16);
		break;
	case 5:
		memcpy(key, r + 8, 6);
		not_found(f, 2, vnet, key);
		break;
	case 6:
		memcpy(key, r + 16, 16);
		not_found(f, 3, vnet, key);
		break;
	}
}

int fp_update(struct fp *f, const uint8_t *records, size_t len)
{
	size_t n = len / FP_RECORD;
	for (size_t o = 0; o + FP_RECORD <= len; o += FP_RECORD)
		if (records[o] < 1 || records[o] > 6)
			return FP_EBADOP;
	fp_lock_write(f);
	if (f->l2n + n > FP_L2CAP * 3 / 4 || f->l3n + n > FP_L3CAP * 3 / 4) {
		fp_unlock_write(f);
		return FP_EFULL;
	}
	for (size_t o = 0; o + FP_RECORD <= len; o += FP_RECORD)
		apply_record(f, records + o);
	f->flush_wanted = true;
	fp_unlock_write(f);
	fp_wake(f);
	return FP_OK;
}

static void put_vlan_vnet(uint8_t *r, uint16_t vlan, uint32_t vnet)
{
	r[2] = (uint8_t)vlan;
	r[3] = (uint8_t)(vlan >> 8);
	memcpy(r + 4, &vnet, 4);
}

int fp_entries(struct fp *f, uint32_t vnet, uint8_t **out, size_t *len)
{
	size_t cnt = 0, k = 0;
	uint8_t *b;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < FP_L2CAP; i++)
		if (f->l2[i].state == E_USED && f->l2[i].vnet == vnet && f->l2[i].nic < 0)
			cnt++;
	for (size_t i = 0; i < FP_L3CAP; i++)
		if (f->l3[i].state == E_USED && f->l3[i].vnet == vnet)
			cnt++;
	b = calloc(cnt ? cnt : 1, FP_RECORD);
	if (!b) {
		pthread_mutex_unlock(&f->mu);
		return FP_ENOMEM;
	}
	for (size_t i = 0; i < FP_L2CAP && k < cnt; i++) {
		struct l2e *e = &f->l2[i];
		if (e->state == E_USED && e->vnet == vnet && e->nic < 0) {
			uint8_t *r = b + FP_RECORD * k++;
			r[0] = 1;
			put_vlan_vnet(r, e->vlan, vnet);
			memcpy(r + 8, e->mac, 6);
			r[26] = r[27] = 0xff;
			memcpy(r + 28, &e->ul, 4);
		}
	}
	for (size_t i = 0; i < FP_L3CAP && k < cnt; i++) {
		struct l3e *e = &f->l3[i];
		if (e->state == E_USED && e->vnet == vnet) {
			uint8_t *r = b + FP_RECORD * k++;
			r[0] = 3;
			put_vlan_vnet(r, e->vlan, vnet);
			memcpy(r + 8, e->mac, 6);
			memcpy(r + 16, e->addr, 16);
		}
	}
	pthread_mutex_unlock(&f->mu);
	*out = b;
	*len = cnt * FP_RECORD;
	return FP_OK;
}

int fp_set_peers(struct fp *f, const uint8_t *addrs, size_t n)
{
	uint32_t *set = NULL, *old;
	if (n > FP_MAX_PEERS)
		return FP_ETOO_MANY;
	if (n > 0) {
		set = malloc(n * sizeof(uint32_t));
		if (!set)
			return FP_ENOMEM;
		memcpy(set, addrs, n * sizeof(uint32_t));
		qsort(set, n, sizeof(uint32_t), fp_cmp_u32);
	}
	fp_lock_write(f);
	old = f->peers;
	f->peers = set;
	f->npeers = n;
	fp_unlock_write(f);
	free(old);
	return FP_OK;
}

void fp_inject(struct fp *f, uint32_t vnet, const uint8_t *frame, size_t len)
{
	struct l2e *src;
	if (len < RV_ETH_HLEN)
		return;
	pthread_mutex_lock(&f->mu);
	src = l2_find(f, vnet, frame + 6);
	for (int i = 0; i < FP_MAX_NICS && src; i++)
		if (f->nics[i].used && f->nics[i].vnet == vnet && f->nics[i].vlan == src->vlan && memcmp(f->nics[i].mac, frame + 6, 6) != 0)
			fp_tap_write(f, &f->nics[i], NULL, frame, len);
	pthread_mutex_unlock(&f->mu);
}

int fp_counters(struct fp *f, int id, uint64_t *out)
{
	pthread_mutex_lock(&f->mu);
	if (id >= 0 && !fp_nic_exists(f, id)) {
		pthread_mutex_unlock(&f->mu);
		return FP_ENOENT;
	}
	/* The receive thread counts without the mutex. */
	for (int i = 0; i < C_COUNT; i++)
		out[i] = __atomic_load_n(id >= 0 ? &f->nics[id].c[i] : &f->c[i], __ATOMIC_RELAXED);
	pthread_mutex_unlock(&f->mu);
	return FP_OK;
}

void fp_get_offloads(const struct fp *f, struct fp_offloads *o)
{
	*o = (struct fp_offloads){
		.vnethdr = f->vnethdr, .tso = f->tso, .uso = f->uso, .gso = f->gso, .gro = f->gro,
		.coalesce = f->coalesce, .mmsg = f->mmsg, .probed_tso = f->probed_tso,
		.probed_uso = f->probed_uso, .probed_gso = f->probed_gso, .probed_gro = f->probed_gro,
		.one_thread = f->one_thread,
	};
}
