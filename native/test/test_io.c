/*
 * The forwarding engine's socket paths on loopback, without threads: a TSO superframe
 * from a NIC goes out through real sending sockets (segments built around the payload in
 * place, UDP_SEGMENT when the kernel has it) and is checked datagram by datagram; a
 * receive batch through a real UDP socket takes the per-batch decap shortcut for
 * datagrams that start alike and must reach the same verdicts as fp_decap.
 */
#include <arpa/inet.h>
#include <errno.h>
#include "enginelib.h"

static const uint8_t MAC_L[6] = { 0x02, 0, 0x5e, 0x30, 0, 1 }, MAC_L2[6] = { 0x02, 0, 0x5e, 0x30, 0, 3 };
static const uint8_t MAC_R[6] = { 0x02, 0, 0x5e, 0x30, 0, 2 };
static const uint8_t IP_L[4] = { 10, 1, 0, 1 }, IP_L2[4] = { 10, 1, 0, 3 };
static const uint8_t LOOP[4] = { 127, 0, 0, 1 };
#define VNET 777

static int udp_bound(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 8 << 20;
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s, (struct sockaddr *)&a, &al) != 0) {
		perror("udp socket");
		exit(2);
	}
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	*port = ntohs(a.sin_port);
	return s;
}

/* A TCP/IPv4 TSO superframe from NIC L to R: hl = 66, plen bytes at MSS mss. */
static size_t superframe(uint8_t *f, size_t plen, struct rv_vnet_hdr *vh, uint16_t mss)
{
	size_t len = t_tcp4(f, plen, 5000, 0x18, 8);
	memcpy(f, MAC_R, 6);
	memcpy(f + 6, MAC_L, 6);
	memcpy(f + 26, IP_L, 4);
	rv_put16(f + 24, 0);
	rv_put16(f + 24, rhumb_csum_fold(rhumb_csum_partial(f + 14, 20, 0)));
	*vh = (struct rv_vnet_hdr){ RV_VNET_F_NEEDS_CSUM, RV_GSO_TCPV4, 66, mss, 34, 16 };
	return len;
}

static int tcp_csum_ok(const uint8_t *s, size_t len)
{
	uint8_t t[4] = { 0, 6, 0, 0 };
	size_t l4len = len - 34;
	uint32_t sum;
	t[2] = (uint8_t)(l4len >> 8);
	t[3] = (uint8_t)l4len;
	sum = rhumb_csum_partial(s + 26, 8, 0);
	sum = rhumb_csum_partial(t, 4, sum);
	return rhumb_csum_fold(rhumb_csum_partial(s + 34, l4len, sum)) == 0;
}

/*
 * Sends one superframe of plen bytes at MSS mss through the engine's real sending path
 * with gso on or off, over an underlay of MTU ul_mtu; with gso, it must take `sends`
 * UDP_SEGMENT sends.
 */
static void check_send_sized(bool gso, uint16_t vlan, uint16_t ul_mtu, size_t mss, size_t plen, uint64_t sends)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	static uint8_t frame[70000], got[70000];
	struct rv_vnet_hdr vh;
	uint8_t rop[FP_RECORD];
	uint16_t port;
	int peer, rx = udp_bound(&port), ok_len = 1, ok_csum = 1, ok_payload = 1, ok_vxlan = 1, ok_seq = 1;
	size_t len = superframe(frame, plen, &vh, (uint16_t)mss), seen = 0;
	int want = (int)((plen + mss - 1) / mss), n = 0;

	f->port = port;
	f->ul_mtu = ul_mtu;
	f->gso = gso;
	for (int s = 0; s < FP_NTX; s++) {
		uint16_t ignored;
		f->txfd[s] = udp_bound(&ignored);
	}
	t_nic(f, 0, MAC_L, IP_L, VNET, vlan, &peer);
	t_record_op(rop, 1, VNET, vlan, MAC_R, NULL, LOOP);
	CHECK(fp_update(f, rop, FP_RECORD) == FP_OK, "remote MAC known");
	fp_from_tap(f, 0, &vh, frame, len, 0, false);
	fp_flush(f);
	for (;;) {
		ssize_t r = recv(rx, got, sizeof(got), MSG_DONTWAIT);
		uint32_t vni;
		size_t tag = vlan ? 4 : 0;
		const uint8_t *s = got + RV_VXLAN_HLEN;
		size_t chunk;
		if (r < 0)
			break;
		n++;
		if (rv_vxlan_parse(got, (size_t)r, &vni) != 0 || vni != VNET)
			ok_vxlan = 0;
		if (tag) {
			if (rv_get16(s + 12) != RV_ETH_P_8021Q || (rv_get16(s + 14) & 0x0fff) != vlan)
				ok_vxlan = 0;
			memmove(got + RV_VXLAN_HLEN + 4, got + RV_VXLAN_HLEN, 12); /* untag to check the rest */
			s += 4;
		}
		chunk = (size_t)r - RV_VXLAN_HLEN - tag - 66;
		if ((size_t)r < RV_VXLAN_HLEN + tag + 66 || chunk > mss || rv_get16(s + 16) != 20 + 32 + chunk)
			ok_len = 0;
		else if (!tcp_csum_ok(s, (size_t)r - RV_VXLAN_HLEN - tag) || rhumb_csum_fold(rhumb_csum_partial(s + 14, 20, 0)) != 0)
			ok_csum = 0;
		else if (rv_get32(s + 38) != 5000 + seen)
			ok_seq = 0;
		else if (memcmp(s + 66, frame + 66 + seen, chunk) != 0)
			ok_payload = 0;
		else
			seen += chunk;
	}
	CHECK(n == want, "gso %d vlan %u mss %zu: %d datagrams for %d segments", gso, vlan, mss, n, want);
	CHECK(ok_vxlan && ok_len && ok_csum && ok_seq && ok_payload && seen == plen,
	      "gso %d vlan %u mss %zu: every segment tagged as asked, with its length, checksums, sequence and payload (%zu of %zu bytes)",
	      gso, vlan, mss, seen, plen);
	CHECK(f->c[C_SEGMENTS] == (uint64_t)want && f->c[D_SEND] == 0, "gso %d: segments counted, nothing failed", gso);
	if (gso)
		CHECK(f->c[C_GSO_SENDS] == sends, "mss %zu, %zu bytes: %llu UDP_SEGMENT sends (want %llu)", mss, plen,
		      (unsigned long long)f->c[C_GSO_SENDS], (unsigned long long)sends);
	for (int s = 0; s < FP_NTX; s++)
		close(f->txfd[s]);
	close(rx);
	close(peer);
	t_release(f);
}

static void check_send(bool gso, uint16_t vlan)
{
	check_send_sized(gso, vlan, 1500, vlan ? 1394 : 1398, 20000, 1);
}

/*
 * A superframe of as many full segments as fp_tap_gso_segs allows a TAP of the instance's
 * MTU goes out in one UDP_SEGMENT send, tagged or not, at any MTU (the instance's TCP
 * builds no bigger ones); one over the cap still goes out whole, in two sends.
 */
static void check_capped_superframes(void)
{
	static const uint16_t mtus[] = { 1450, 1401, 576, 8950 };
	for (size_t i = 0; i < sizeof(mtus) / sizeof(mtus[0]); i++) {
		uint16_t mtu = mtus[i], segs = fp_tap_gso_segs(mtu);
		size_t mss = (size_t)mtu - 20 - 32; /* IPv4, TCP with timestamps */
		CHECK(segs >= 1 && segs <= FP_GSO_SEGS, "mtu %u: cap %u within 1..%d", mtu, segs, FP_GSO_SEGS);
		for (uint16_t vlan = 0; vlan <= 5; vlan += 5) {
			uint16_t ul = (uint16_t)(mtu + RV_VXLAN_OVERHEAD + (vlan ? 4 : 0));
			check_send_sized(true, vlan, ul, mss, mss * segs, 1);
			/* (gso_sends counts sends of more than one segment: two over the cap) */
			if (segs < FP_GSO_SEGS && mss * (segs + 2) <= 65535 - 52)
				check_send_sized(true, vlan, ul, mss, mss * (segs + 2), 2);
			check_send_sized(true, vlan, ul, mss, mss * (segs - 1) + 1, 1); /* a short tail */
		}
	}
	CHECK(fp_tap_gso_segs(1450) == 44, "MTU 1450: 44 segments a superframe (%u)", fp_tap_gso_segs(1450));
}

/* VXLAN datagram: header for vnet, inner frame dst <- src, TCP with plen payload, tag < 0: untagged. */
static size_t dgram(uint8_t *out, uint32_t vnet, const uint8_t dst[6], const uint8_t src[6], int tag, size_t plen)
{
	static uint8_t inner[2000];
	size_t n = t_tcp4(inner, plen, 1, 0x10, 5);
	memcpy(inner, dst, 6);
	memcpy(inner + 6, src, 6);
	rv_vxlan_hdr(out, vnet);
	if (tag >= 0)
		return RV_VXLAN_HLEN + rv_vlan_insert(out + RV_VXLAN_HLEN, inner, n, (uint16_t)tag);
	memcpy(out + RV_VXLAN_HLEN, inner, n);
	return RV_VXLAN_HLEN + n;
}

static size_t drain_count(int peer)
{
	uint8_t buf[70000];
	size_t n = 0;
	while (read(peer, buf, sizeof(buf)) > 0)
		n++;
	return n;
}

/* The per-batch decap shortcut reaches fp_decap's verdicts. */
static void check_receive(void)
{
	struct recorded rec = { 0 };
	struct fp *f = t_engine(&rec);
	uint8_t d[2100];
	uint16_t port;
	int p0, p1, tx;
	uint16_t txport;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	size_t n;

	f->rxq[0].fd = udp_bound(&port);
	to.sin_port = htons(port);
	tx = udp_bound(&txport);
	f->coalesce = false; /* one TAP write per delivered frame: the count says what passed */
	f->mmsg = true;
	t_nic(f, 0, MAC_L, IP_L, VNET, 0, &p0);
	t_nic(f, 1, MAC_L2, IP_L2, VNET, 5, &p1);
	CHECK(fp_set_peers(f, LOOP, 1) == FP_OK, "loopback is a peer");
#define SEND(buf, len) sendto(tx, buf, len, 0, (struct sockaddr *)&to, sizeof(to))
	/* Three alike for NIC 0: the first decides, the next two take the shortcut. */
	for (int i = 0; i < 3; i++) {
		n = dgram(d, VNET, MAC_L, MAC_R, -1, 100);
		SEND(d, n);
	}
	/* Starts alike but its IP header is cut: still dropped as bad VXLAN. */
	n = dgram(d, VNET, MAC_L, MAC_R, -1, 100);
	SEND(d, RV_VXLAN_HLEN + 14 + 10 + 2);
	/* A different source MAC that is a local NIC's: spoof, even after accepted ones. */
	n = dgram(d, VNET, MAC_L, MAC_L2, -1, 100);
	SEND(d, n);
	/* NIC 1 is on VLAN 5: tagged 5 passes (twice), tagged 7 does not. */
	n = dgram(d, VNET, MAC_L2, MAC_R, 5, 100);
	SEND(d, n);
	SEND(d, n);
	n = dgram(d, VNET, MAC_L2, MAC_R, 7, 100);
	SEND(d, n);
	/* Another VNI with NIC 0's MAC: unknown. */
	n = dgram(d, VNET + 1, MAC_L, MAC_R, -1, 100);
	SEND(d, n);
	CHECK(fp_rx_batch(f, &f->rxq[0], true) == 9, "one batch of nine datagrams");
	CHECK(drain_count(p0) == 3 && drain_count(p1) == 2, "three frames to NIC 0, two to NIC 1");
	CHECK(f->c[D_BAD_VXLAN] == 1, "the cut one dropped as bad VXLAN (%llu)", (unsigned long long)f->c[D_BAD_VXLAN]);
	CHECK(f->nics[0].c[D_RX_SPOOF] == 1, "the local source MAC dropped as a spoof");
	CHECK(f->nics[1].c[D_RX_VLAN] == 1, "the wrong tag dropped");
	CHECK(f->c[D_UNKNOWN_VNI] == 1, "the unknown VNI dropped");
	CHECK(fp_rx_batch(f, &f->rxq[0], true) < 0 && errno == EAGAIN, "nothing left");
#undef SEND
	close(tx);
	close(f->rxq[0].fd);
	f->rxq[0].fd = -1;
	close(p0);
	close(p1);
	t_release(f);
}

int main(void)
{
	t_init();
	check_send(true, 0);
	check_send(true, 5);
	check_send(false, 0);
	check_capped_superframes();
	check_receive();
	return t_report();
}
