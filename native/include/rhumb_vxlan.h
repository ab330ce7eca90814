#ifndef RHUMB_VXLAN_H
#define RHUMB_VXLAN_H
/*
 * Pure packet functions of the userspace fast path: VXLAN header, 802.1Q tag, flow hash,
 * ARP / neighbour-advertisement / ICMP replies, TSO/USO segmentation and TCP coalescing.
 * No syscalls here: native/test/ runs them on crafted frames.
 */
#include <stddef.h>
#include <stdint.h>

#define RV_ETH_HLEN 14
#define RV_VXLAN_HLEN 8
#define RV_VXLAN_PORT 4789
/* Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
#define RV_VXLAN_OVERHEAD 50
#define RV_MAX_FRAME 65550

#define RV_ETH_P_IP 0x0800
#define RV_ETH_P_ARP 0x0806
#define RV_ETH_P_8021Q 0x8100
#define RV_ETH_P_IPV6 0x86dd

/* struct virtio_net_hdr (10 bytes, host byte order on x86). */
struct rv_vnet_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
} __attribute__((packed));

#define RV_VNET_HLEN 10
#define RV_VNET_F_NEEDS_CSUM 1
#define RV_VNET_F_DATA_VALID 2
#define RV_GSO_NONE 0
#define RV_GSO_TCPV4 1
#define RV_GSO_UDP 3
#define RV_GSO_TCPV6 4
#define RV_GSO_UDP_L4 5
#define RV_GSO_ECN 0x80

static inline uint16_t rv_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline void rv_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline uint32_t rv_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void rv_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Where the layers of an (untagged or 802.1Q) Ethernet frame are. */
struct rv_l3 {
	int vlan;           /* -1 when untagged */
	uint16_t ethertype; /* after the tag */
	size_t l3;          /* offset of the network header */
	uint8_t proto;      /* IP protocol (v4) / next header (v6), 0 otherwise */
	size_t l4;          /* offset of the transport header, 0 when unknown */
};
int rv_parse(const uint8_t *f, size_t len, struct rv_l3 *out);

/* Outer UDP source port from the inner flow (ECMP entropy), in 32768..60999 like Linux. */
uint32_t rv_flow_hash(const uint8_t *f, size_t len);
uint16_t rv_src_port(uint32_t hash);

void rv_vxlan_hdr(uint8_t out[RV_VXLAN_HLEN], uint32_t vni);
/* 0 and *vni on a valid header; -1 too short, -2 I flag missing. */
int rv_vxlan_parse(const uint8_t *p, size_t len, uint32_t *vni);

/* Inserts an 802.1Q tag after the MAC addresses; dst must hold len + 4. */
size_t rv_vlan_insert(uint8_t *dst, const uint8_t *f, size_t len, uint16_t vid);
/* Removes the tag in place (the frame start moves by 4 bytes): returns the new start. */
uint8_t *rv_vlan_strip(uint8_t *f, size_t *len);

/* ARP reply to an untagged ARP request saying target IP is at mac; returns 42 or 0. */
size_t rv_arp_reply(uint8_t out[42], const uint8_t *req, size_t len, const uint8_t mac[6]);
/* Neighbour advertisement answering an untagged IPv6 NS; returns its length or 0. */
size_t rv_nd_advert(uint8_t *out, size_t cap, const uint8_t *ns, size_t len, const uint8_t mac[6]);
/* Target address of an IPv6 neighbour solicitation (untagged); 0 when f is not one. */
int rv_nd_target(const uint8_t *f, size_t len, uint8_t target[16]);
/* ICMP fragmentation-needed (v4) / packet-too-big (v6) back to the sender of f. */
size_t rv_icmp_too_big(uint8_t *out, size_t cap, const uint8_t *f, size_t len, uint16_t mtu);
/* A gratuitous ARP request announcing ip (network order) at mac. */
size_t rv_garp(uint8_t out[42], const uint8_t mac[6], const uint8_t ip[4]);

/*
 * Marks an untagged TCP/UDP frame's L4 checksum as partial (pseudo-header sum in the
 * field, NEEDS_CSUM in vh) so the receiving stack does not re-verify what the outer
 * checksum covered; 0 (vh untouched) for anything else.
 */
int rv_make_partial(uint8_t *f, size_t len, struct rv_vnet_hdr *vh);

/* Completes a partial L4 checksum (virtio NEEDS_CSUM). */
int rv_csum_complete(uint8_t *f, size_t len, uint16_t csum_start, uint16_t csum_offset);

/*
 * Splits a TSO (TCPv4/v6) or USO superframe into wire frames with correct lengths, IDs,
 * sequence numbers, flags and checksums. Segment i is written at out + off[i] with
 * `headroom` bytes left before it (for the VXLAN header) and an 802.1Q tag when vid > 0;
 * seglen[i] = frame length. Returns the number of segments or -1 (malformed / too big).
 */
int rv_segment(const struct rv_vnet_hdr *h, const uint8_t *f, size_t len, uint16_t vid, size_t headroom,
	       uint8_t *out, size_t cap, size_t *off, size_t *seglen, int maxseg);

/*
 * The same segmentation without copying the payload (what the engine sends with): segment
 * i's headers (Ethernet [+ 802.1Q] + IP + L4, every length, ID, sequence number and
 * checksum set) are written at hdrs + i * stride + headroom, its payload stays in f.
 * seg[i].hdr/hlen cover headroom + headers, seg[i].data/dlen the payload. Returns the
 * number of segments, or -1 (malformed, more than maxseg, headers longer than stride).
 * RV_SEG_STRIDE fits the longest headers (IPv4 and TCP with options, a tag) after 16
 * bytes of headroom.
 */
#define RV_SEG_STRIDE 160
struct rv_seg {
	uint8_t *hdr;
	size_t hlen;
	const uint8_t *data;
	size_t dlen;
};
int rv_segment_hdrs(const struct rv_vnet_hdr *h, const uint8_t *f, size_t len, uint16_t vid, size_t headroom,
		    uint8_t *hdrs, size_t stride, struct rv_seg *seg, int maxseg);

/*
 * Coalescing of consecutive TCP/IPv4 segments of one flow into a superframe towards the
 * TAP (zero copy: the result is an iovec list over the caller's buffers).
 */
#define RV_GRO_MAXSEG 64
struct rv_gro {
	uint8_t *head;   /* first segment's frame (its headers are rewritten on finish) */
	size_t head_len;
	size_t hdr_len;  /* Ethernet + IP + TCP header bytes */
	uint16_t mss;    /* payload size of the first segment */
	uint32_t next_seq;
	size_t total;    /* frame bytes so far */
	int nseg;
	int closed;      /* a short or PSH segment ended it */
	uint8_t psh;
	const uint8_t *payload[RV_GRO_MAXSEG];
	size_t plen[RV_GRO_MAXSEG];
};
/* Starts a run with f; returns 0 when f cannot be coalesced (write it as is). */
int rv_gro_start(struct rv_gro *g, uint8_t *f, size_t len);
/* Appends f to the run when it continues the flow; 1 merged, 0 not. */
int rv_gro_append(struct rv_gro *g, const uint8_t *f, size_t len);
/* Rewrites the head's headers, fills the virtio header; returns the iovec count written. */
struct iovec;
int rv_gro_finish(struct rv_gro *g, struct rv_vnet_hdr *vh, struct iovec *iov, int maxiov);

#endif
