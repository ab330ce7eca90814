/*
 * The engine's receive path: datagrams from the underlay (peer check, VXLAN decap with
 * the VLAN and spoofing checks, decided once per run of alike datagrams), coalesced into
 * superframes towards the TAPs. Runs on the receive thread with the table lock held for
 * reading.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

/* ---- receive (from the underlay) ------------------------------------------------------ */

void fp_deliver(struct fp *f, struct fp_delivery *d, int nd)
{
	struct rv_gro g;
	struct rv_vnet_hdr vh;
	struct iovec iov[RV_GRO_MAXSEG + 1];
	int i = 0;
	while (i < nd) {
		struct nic *n = &f->nics[d[i].nic];
		int j = i + 1, cnt;
		if (!f->coalesce || !rv_gro_start(&g, d[i].frame, d[i].len)) {
			struct rv_vnet_hdr one = { 0 };
			rv_make_partial(d[i].frame, d[i].len, &one);
			fp_tap_write(f, n, &one, d[i].frame, d[i].len);
			i++;
			continue;
		}
		while (j < nd && d[j].nic == d[i].nic && rv_gro_append(&g, d[j].frame, d[j].len))
			j++;
		cnt = rv_gro_finish(&g, &vh, iov, RV_GRO_MAXSEG + 1);
		if (writev(n->fd, iov, cnt) < 0) {
			CNT_ADD(n->c[D_TAP_WRITE], 1);
		} else {
			CNT_ADD(n->c[C_RX_FRAMES], 1);
			CNT_ADD(n->c[C_RX_BYTES], g.total);
			if (g.nseg > 1)
				CNT_ADD(n->c[C_COALESCED], (uint64_t)g.nseg);
		}
		i = j;
	}
}

static bool vnet_known(struct fp *f, uint32_t vni)
{
	for (int i = 0; i < FP_MAX_NICS; i++)
		if (f->nics[i].used && f->nics[i].vnet == vni)
			return true;
	return false;
}

int fp_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

bool fp_accept_from(struct fp *f, uint32_t addr, uint64_t datagrams)
{
	uint64_t now, last;
	uint8_t key[16];
	if (f->npeers && bsearch(&addr, f->peers, f->npeers, sizeof(uint32_t), fp_cmp_u32) != NULL)
		return true;
	/* Dropped; the owner hears of it (rate-limited) and may list the nodes again. */
	CNT_ADD(f->c[D_UNKNOWN_PEER], datagrams);
	now = now_ms();
	last = __atomic_load_n(&f->peer_miss_at, __ATOMIC_RELAXED);
	if (last && now - last < FP_PEER_MISS_MS)
		return false;
	/* Several receive threads: the one that moves the stamp reports. */
	if (!__atomic_compare_exchange_n(&f->peer_miss_at, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return false;
	v4key(key, (const uint8_t *)&addr);
	fp_upcall(f, 4, 0, key);
	return false;
}

int fp_decap(struct fp *f, uint8_t *p, size_t len, uint8_t **frame, size_t *flen)
{
	uint32_t vni;
	struct l2e *e, *se;
	struct rv_l3 l;
	uint8_t *fr;
	size_t fl;
	struct nic *n;

	if (rv_vxlan_parse(p, len, &vni) != 0 || len < RV_VXLAN_HLEN + RV_ETH_HLEN) {
		CNT_ADD(f->c[D_BAD_VXLAN], 1);
		return -1;
	}
	fr = p + RV_VXLAN_HLEN;
	fl = len - RV_VXLAN_HLEN;
	if (rv_parse(fr, fl, &l) != 0) { /* truncated inner frame or IP header */
		CNT_ADD(f->c[D_BAD_VXLAN], 1);
		return -1;
	}
	if (fr[0] & 1) {
		CNT_ADD(f->c[vnet_known(f, vni) ? D_BCAST : D_UNKNOWN_VNI], 1);
		return -1;
	}
	e = l2_find(f, vni, fr);
	if (!e || e->nic < 0) {
		CNT_ADD(f->c[vnet_known(f, vni) ? D_NO_NIC : D_UNKNOWN_VNI], 1);
		return -1;
	}
	n = &f->nics[e->nic];
	/*
	 * A frame from the underlay claiming a local NIC's source MAC is a spoof, unless that
	 * NIC is a gateway port: another node's gateway routed the frame here.
	 */
	se = l2_find(f, vni, fr + 6);
	if (se && se->nic >= 0 && !f->nics[se->nic].shared_mac) {
		CNT_ADD(n->c[D_RX_SPOOF], 1);
		return -1;
	}
	/* The inner tag must name the NIC's fabric VLAN; untagged frames are for VLAN 0 only. */
	if (l.vlan >= 0) {
		if ((uint16_t)l.vlan != n->vlan) {
			CNT_ADD(n->c[D_RX_VLAN], 1);
			return -1;
		}
		fr = rv_vlan_strip(fr, &fl);
	} else if (n->vlan != 0) {
		CNT_ADD(n->c[D_RX_VLAN], 1);
		return -1;
	}
	*frame = fr;
	*flen = fl;
	return e->nic;
}

int fp_decap_again(struct fp *f, int ni, uint8_t *p, size_t len, uint8_t **frame, size_t *flen)
{
	struct rv_l3 l;
	uint8_t *fr = p + RV_VXLAN_HLEN;
	size_t fl = len - RV_VXLAN_HLEN;
	if (rv_parse(fr, fl, &l) != 0) { /* truncated inner frame or IP header */
		CNT_ADD(f->c[D_BAD_VXLAN], 1);
		return -1;
	}
	if (l.vlan >= 0)
		fr = rv_vlan_strip(fr, &fl);
	*frame = fr;
	*flen = fl;
	return ni;
}

int fp_rx_batch(struct fp *f, struct rxq *q, bool nonblocking)
{
	int batch = !f->mmsg ? 1 : f->gro ? FP_GRO_BATCH : FP_BATCH;
	struct mmsghdr msg[FP_BATCH];
	struct iovec iov[FP_BATCH];
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl[FP_BATCH];
	struct sockaddr_in from[FP_BATCH];
	struct fp_delivery *d = q->dlv;
	const int dcap = FP_BATCH * 64;
	int nd = 0, r, memo_ni = -1;
	uint8_t memo[FP_DECAP_KEY];

	memset(msg, 0, sizeof(msg[0]) * (size_t)batch);
	for (int i = 0; i < batch; i++) {
		iov[i] = (struct iovec){ q->buf + (size_t)i * FP_RXBUF, FP_RXBUF };
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
		msg[i].msg_hdr.msg_control = ctl[i].buf;
		msg[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
		msg[i].msg_hdr.msg_name = &from[i];
		msg[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	/* Blocks until one datagram is there, then takes what else is waiting. */
	r = recvmmsg(q->fd, msg, (unsigned)batch, nonblocking ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
	if (r <= 0)
		return r;
	pthread_rwlock_rdlock(&f->tabs);
	for (int i = 0; i < r; i++) {
		uint8_t *p = q->buf + (size_t)i * FP_RXBUF;
		size_t len = msg[i].msg_len, gsz = len;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg[i].msg_hdr); c; c = CMSG_NXTHDR(&msg[i].msg_hdr, c)) {
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int v;
				memcpy(&v, CMSG_DATA(c), sizeof(v));
				if (v > 0)
					gsz = (size_t)v;
			}
		}
		/* VXLAN is accepted only from the underlay addresses of known nodes. */
		if (msg[i].msg_hdr.msg_namelen < sizeof(from[i]) ||
		    !fp_accept_from(f, from[i].sin_addr.s_addr, len == 0 ? 1 : (len + gsz - 1) / gsz))
			continue;
		for (size_t o = 0; o < len; o += gsz) {
			size_t dl = len - o < gsz ? len - o : gsz;
			uint8_t *fr;
			size_t fl;
			int ni;
			/* The segments of one GRO datagram share their headers: decide once. */
			if (memo_ni >= 0 && dl >= FP_DECAP_KEY && memcmp(p + o, memo, FP_DECAP_KEY) == 0) {
				ni = fp_decap_again(f, memo_ni, p + o, dl, &fr, &fl);
			} else {
				if (dl >= FP_DECAP_KEY)
					memcpy(memo, p + o, FP_DECAP_KEY);
				ni = fp_decap(f, p + o, dl, &fr, &fl);
				memo_ni = dl >= FP_DECAP_KEY ? ni : -1;
			}
			if (ni < 0)
				continue;
			if (nd == dcap) {
				fp_deliver(f, d, nd);
				nd = 0;
			}
			d[nd++] = (struct fp_delivery){ ni, fr, fl };
		}
	}
	fp_deliver(f, d, nd);
	pthread_rwlock_unlock(&f->tabs);
	return r;
}
