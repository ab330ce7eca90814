/*
 * The forwarding engine's state, its two forwarding threads and its NICs in the tables.
 * The data path is in fp_tx.c (towards the underlay), fp_rx.c (from it) and fp_park.c
 * (misses); the transmit side runs with the engine's mutex held, the receive side with its
 * table lock held for reading (see rhumb_fp_internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

/* ---- state ---------------------------------------------------------------------------- */

struct fp *fp_alloc(const struct fp_options *o, fp_upcall_fn upcall, void *ctx)
{
	struct fp *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	pthread_rwlockattr_t ra;
	pthread_mutex_init(&f->mu, NULL);
	/* Control writers must not starve behind the receive thread's back-to-back batches. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->tabs, &ra);
	pthread_rwlockattr_destroy(&ra);
	f->epfd = f->evfd = -1;
	for (int s = 0; s < FP_NTX; s++)
		f->txfd[s] = -1;
	memcpy(f->ul_ip, o->underlay_ip, 4);
	f->port = o->port;
	f->ul_mtu = o->underlay_mtu;
	f->upcall = upcall;
	f->upcall_ctx = ctx;
	f->l2 = calloc(FP_L2CAP, sizeof(*f->l2));
	f->l3 = calloc(FP_L3CAP, sizeof(*f->l3));
	f->tapbuf = malloc(sizeof(*f->tapbuf) * FP_BATCH);
	f->hdrbuf = malloc(sizeof(*f->hdrbuf) * FP_BATCH);
	for (int q = 0; q < FP_NRX; q++) {
		f->rxq[q] = (struct rxq){ .f = f, .fd = -1 };
		f->rxq[q].buf = malloc((size_t)FP_RXBUF * FP_BATCH);
		f->rxq[q].dlv = calloc((size_t)FP_BATCH * 64, sizeof(struct fp_delivery));
		if (!f->rxq[q].buf || !f->rxq[q].dlv) {
			fp_free(f);
			return NULL;
		}
	}
	f->txq = calloc(FP_NTX, sizeof(*f->txq));
	if (!f->l2 || !f->l3 || !f->tapbuf || !f->hdrbuf || !f->txq) {
		fp_free(f);
		return NULL;
	}
	return f;
}

void fp_free(struct fp *f)
{
	free(f->l2);
	free(f->l3);
	free(f->tapbuf);
	free(f->hdrbuf);
	for (int q = 0; q < FP_NRX; q++) {
		free(f->rxq[q].buf);
		free(f->rxq[q].dlv);
	}
	free(f->txq);
	free(f->peers);
	pthread_mutex_destroy(&f->mu);
	pthread_rwlock_destroy(&f->tabs);
	free(f);
}

/* ---- the forwarding threads ----------------------------------------------------------- */

/*
 * Transmit: the TAPs, control wakeups, and every 100 ms the parked frames; with one_thread
 * also the receiving sockets (a batch each time one is readable; mu, then tabs).
 */
void *fp_thread_main(void *arg)
{
	struct fp *f = arg;
	struct epoll_event ev[64];
	uint64_t last = 0;

	while (!f->stop) {
		int n = epoll_wait(f->epfd, ev, 64, 100);
		uint64_t now;
		pthread_mutex_lock(&f->mu);
		for (int i = 0; i < n && !f->stop; i++) {
			uint64_t id = ev[i].data.u64;
			if (id == EV_CTL) {
				uint64_t v;
				if (read(f->evfd, &v, sizeof(v)) < 0) { /* nothing to drain */ }
				f->flush_wanted = true;
			} else if (id >= EV_RX0 && id < EV_RX0 + FP_NRX) {
				fp_rx_batch(f, &f->rxq[id - EV_RX0], true);
			} else if (id < FP_MAX_NICS && f->nics[id].used) {
				fp_tap_ready(f, (int)id);
			}
		}
		now = now_ms();
		if (f->flush_wanted || now - last >= 100) {
			f->flush_wanted = false;
			last = now;
			fp_run_pending(f);
			fp_flush(f);
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

/* Receive: blocks in recvmmsg; fp_close shuts the socket down to end it. */
void *fp_rx_main(void *arg)
{
	struct rxq *q = arg;
	struct fp *f = q->f;
	while (!f->stop) {
		if (fp_rx_batch(f, q, false) < 0 && errno != EINTR && errno != EAGAIN && errno != ENOMEM && errno != ENOBUFS)
			break; /* the socket is gone: nothing more will arrive */
	}
	return NULL;
}

void fp_lock_write(struct fp *f)
{
	pthread_mutex_lock(&f->mu);
	pthread_rwlock_wrlock(&f->tabs);
}

void fp_unlock_write(struct fp *f)
{
	pthread_rwlock_unlock(&f->tabs);
	pthread_mutex_unlock(&f->mu);
}

void fp_wake(struct fp *f)
{
	uint64_t one = 1;
	if (write(f->evfd, &one, sizeof(one)) < 0) { /* already pending */ }
}

/* ---- NICs in the tables --------------------------------------------------------------- */

int fp_install_nic(struct fp *f, int slot, int fd, const struct fp_nic_spec *s)
{
	struct nic *nic = &f->nics[slot];
	uint8_t key[16];
	struct l2e *e;
	struct l3e *e3;

	memset(nic, 0, sizeof(*nic));
	nic->gen = ++f->next_gen;
	nic->fd = fd;
	memcpy(nic->mac, s->mac, 6);
	memcpy(nic->ip, s->ip, 16);
	nic->vnet = s->vnet & 0xffffff;
	nic->vlan = s->vlan & 0x0fff;
	nic->mtu = (uint16_t)(s->mtu < 0 ? f->ul_mtu - RV_VXLAN_OVERHEAD : s->mtu);
	nic->allow_mac = s->allow_mac;
	nic->allow_ip = s->allow_ip;
	nic->shared_mac = s->shared_mac;
	e = l2_slot(f, nic->vnet, nic->mac);
	memcpy(key, s->ip, 16);
	e3 = e ? l3_slot(f, nic->vnet, key) : NULL;
	if (!e || !e3) {
		if (e)
			l2_del(f, nic->vnet, nic->mac);
		return FP_EFULL;
	}
	e->nic = (int16_t)slot;
	e->vlan = nic->vlan;
	e->ul = 0;
	memcpy(e3->mac, nic->mac, 6);
	e3->vlan = nic->vlan;
	nic->used = true;
	return FP_OK;
}

void fp_uninstall_nic(struct fp *f, int slot)
{
	struct nic *n = &f->nics[slot];
	struct l2e *e;
	struct l3e *e3;
	uint8_t key[16];

	fp_pending_release_all(f, slot);
	n->used = false;
	e = l2_find(f, n->vnet, n->mac);
	if (e && e->nic == slot)
		l2_del(f, n->vnet, n->mac);
	memcpy(key, n->ip, 16);
	e3 = l3_find(f, n->vnet, key);
	if (e3 && memcmp(e3->mac, n->mac, 6) == 0)
		l3_del(f, n->vnet, key);
}
