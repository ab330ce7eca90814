/*
 * Misses: a frame whose destination is unknown is parked (bounded per destination, per
 * NIC and in all), its owner is asked once (upcall), and the frames go out once the
 * answer is in the tables, or are dropped after FP_PARK_MS and the answer negatively
 * cached. Each NIC has its own share of the pending entries. Runs with the mutex held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhumb_fp_internal.h"

/* ---- misses --------------------------------------------------------------------------- */

void fp_upcall(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	if (f->upcall)
		f->upcall(f->upcall_ctx, kind, vnet, key);
}

struct pending *fp_pending_find(struct fp *f, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	for (int i = 0; i < FP_MAX_NICS; i++) {
		struct nic *n = &f->nics[i];
		if (n->npend == 0 || n->vnet != vnet)
			continue;
		for (int j = 0; j < FP_PEND_PER_NIC; j++) {
			struct pending *p = &n->pend[j];
			if (p->used && p->kind == kind && p->vnet == vnet && memcmp(p->key, key, 16) == 0)
				return p;
		}
	}
	return NULL;
}

/* Frees one parked frame: its bytes go back to its NIC's and the engine's budgets. */
static void parked_free(struct fp *f, struct parked *pk)
{
	struct nic *n = &f->nics[pk->nic];
	if (n->gen == pk->gen)
		n->parked_bytes -= pk->len;
	f->parked_bytes -= pk->len;
	free(pk);
}

void fp_pending_drop(struct fp *f, struct pending *p, int reason)
{
	for (struct parked *pk = p->head; pk;) {
		struct parked *next = pk->next;
		struct nic *n = &f->nics[pk->nic];
		if (reason >= 0 && n->used && n->gen == pk->gen)
			CNT_ADD(n->c[reason], 1);
		parked_free(f, pk);
		pk = next;
	}
	p->head = p->tail = NULL;
	p->bytes = 0;
}

/* Frees the entry and its parked frames; the owner gets its share back. */
static void pending_release(struct fp *f, struct pending *p)
{
	fp_pending_drop(f, p, -1);
	p->used = false;
	f->nics[p->owner].npend--;
}

/* A free entry in the NIC's own share, or NULL when the NIC has used all of it. */
static struct pending *pending_alloc(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	if (n->npend >= FP_PEND_PER_NIC)
		return NULL;
	for (int j = 0; j < FP_PEND_PER_NIC; j++) {
		struct pending *p = &n->pend[j];
		if (!p->used) {
			memset(p, 0, sizeof(*p));
			p->used = true;
			p->owner = (uint16_t)ni;
			n->npend++;
			return p;
		}
	}
	return NULL;
}

/* Every entry of the NIC's share (a removed NIC or a stopped engine): frames dropped. */
void fp_pending_release_all(struct fp *f, int ni)
{
	struct nic *n = &f->nics[ni];
	for (int j = 0; j < FP_PEND_PER_NIC && n->npend > 0; j++)
		if (n->pend[j].used)
			pending_release(f, &n->pend[j]);
}

/* A frame whose destination is unknown: park it and ask the owner (upcall) once. */
void fp_park(struct fp *f, int ni, const struct rv_vnet_hdr *vh, const uint8_t *frame, size_t len,
		 uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct nic *n = &f->nics[ni];
	struct pending *p = fp_pending_find(f, kind, vnet, key);
	uint64_t now = now_ms();
	struct parked *pk;

	if (p && p->neg_until > now) {
		CNT_ADD(n->c[D_NEGATIVE], 1);
		return;
	}
	if (p && p->neg_until && p->neg_until <= now && !p->head) {
		pending_release(f, p); /* negative entry expired: ask again */
		p = NULL;
	}
	if (!p) {
		p = pending_alloc(f, ni);
		if (!p) {
			CNT_ADD(n->c[D_PARK_FULL], 1);
			return;
		}
		p->kind = kind;
		p->vnet = vnet;
		memcpy(p->key, key, 16);
		p->t0 = now;
		CNT_ADD(n->c[C_MISSES], 1);
		fp_upcall(f, kind, vnet, key);
	}
	if (p->bytes + len > FP_PARK_BYTES || n->parked_bytes + len > FP_NIC_PARK_BYTES ||
	    f->parked_bytes + len > FP_PARK_TOTAL || !(pk = malloc(sizeof(*pk) + len))) {
		CNT_ADD(n->c[D_PARK_FULL], 1);
		return;
	}
	pk->next = NULL;
	pk->nic = ni;
	pk->gen = n->gen;
	pk->len = len;
	pk->vh = vh ? *vh : (struct rv_vnet_hdr){ 0 };
	memcpy(pk->data, frame, len);
	if (p->tail)
		p->tail->next = pk;
	else
		p->head = pk;
	p->tail = pk;
	p->bytes += len;
	n->parked_bytes += len;
	f->parked_bytes += len;
	CNT_ADD(n->c[C_PARKED], 1);
}

static void run_pending_one(struct fp *f, struct pending *p, uint64_t now)
{
	bool known;
	if (p->kind == 2)
		known = l2_find(f, p->vnet, p->key) != NULL;
	else
		known = l3_find(f, p->vnet, p->key) != NULL;
	if (known) {
		struct parked *pk = p->head;
		p->head = p->tail = NULL;
		pending_release(f, p);
		while (pk) {
			struct parked *next = pk->next;
			struct nic *n = &f->nics[pk->nic];
			if (n->used && n->gen == pk->gen) {
				CNT_ADD(n->c[C_FLUSHED], 1);
				/* Segment headers are built in slot 0 and point into pk: send before either is reused. */
				fp_from_tap(f, pk->nic, &pk->vh, pk->data, pk->len, 0, true);
				fp_flush(f);
			}
			parked_free(f, pk);
			pk = next;
		}
		return;
	}
	if (p->head && now - p->t0 >= FP_PARK_MS) {
		fp_pending_drop(f, p, D_PARK_TIMEOUT);
		p->neg_until = now + FP_NEG_MS;
	} else if (!p->head && p->neg_until && p->neg_until <= now) {
		pending_release(f, p);
	}
}

void fp_run_pending(struct fp *f)
{
	uint64_t now = now_ms();
	for (int i = 0; i < FP_MAX_NICS; i++) {
		struct nic *n = &f->nics[i];
		for (int j = 0; j < FP_PEND_PER_NIC && n->npend > 0; j++)
			if (n->pend[j].used)
				run_pending_one(f, &n->pend[j], now);
	}
}
