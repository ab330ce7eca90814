/*
 * Shared by the C tests of hostile input: a CHECK that counts, frame builders, and
 * heap copies of exactly the frame's length so that AddressSanitizer sees any read or
 * write past the end.
 */
#ifndef RHUMB_TESTLIB_H
#define RHUMB_TESTLIB_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rhumb_csum.h"
#include "rhumb_vxlan.h"

static int failures, checks;
#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		checks++;                                                             \
		if (!(cond)) {                                                        \
			failures++;                                                   \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
			printf(__VA_ARGS__);                                          \
			printf("\n");                                                 \
		}                                                                     \
	} while (0)

static const uint8_t T_MAC_A[6] = { 0x02, 0, 0x5e, 0, 0, 1 }, T_MAC_B[6] = { 0x02, 0, 0x5e, 0, 0, 2 };
static const uint8_t T_IP_A[4] = { 10, 0, 0, 1 }, T_IP_B[4] = { 10, 0, 0, 2 };

/* A heap copy of exactly len bytes (at least 1, so malloc never returns NULL for 0). */
static inline uint8_t *t_exact(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p) {
		perror("malloc");
		exit(2);
	}
	if (len)
		memcpy(p, src, len);
	return p;
}

/*
 * Ethernet + IPv4 + TCP with a `doff`-word data offset (the header bytes past 20 are a
 * NOP-padded option area) + plen bytes of payload. The IP total length says what the
 * frame holds, as a sender would write it.
 */
static inline size_t t_tcp4(uint8_t *f, size_t plen, uint32_t seq, uint8_t flags, unsigned doff)
{
	size_t thl = doff >= 5 ? (size_t)doff * 4 : 20, hl = 14 + 20 + thl;
	memcpy(f, T_MAC_B, 6);
	memcpy(f + 6, T_MAC_A, 6);
	rv_put16(f + 12, RV_ETH_P_IP);
	memset(f + 14, 0, 20);
	f[14] = 0x45;
	rv_put16(f + 16, (uint16_t)(20 + thl + plen));
	rv_put16(f + 18, 100);
	f[22] = 64;
	f[23] = 6;
	memcpy(f + 26, T_IP_A, 4);
	memcpy(f + 30, T_IP_B, 4);
	rv_put16(f + 24, rhumb_csum_fold(rhumb_csum_partial(f + 14, 20, 0)));
	memset(f + 34, 1, thl); /* NOP options */
	rv_put16(f + 34, 40000);
	rv_put16(f + 36, 5201);
	rv_put32(f + 38, seq);
	rv_put32(f + 42, 777);
	f[46] = (uint8_t)((doff & 0x0f) << 4);
	f[47] = flags;
	rv_put16(f + 48, 500);
	rv_put16(f + 50, 0);
	rv_put16(f + 52, 0);
	for (size_t i = 0; i < plen; i++)
		f[hl + i] = (uint8_t)(i * 7 + seq);
	return hl + plen;
}

/* Ethernet + IPv6 + TCP (20-byte header) + payload. */
static inline size_t t_tcp6(uint8_t *f, size_t plen)
{
	size_t hl = 14 + 40 + 20;
	memcpy(f, T_MAC_B, 6);
	memcpy(f + 6, T_MAC_A, 6);
	rv_put16(f + 12, RV_ETH_P_IPV6);
	memset(f + 14, 0, 60);
	f[14] = 0x60;
	rv_put16(f + 18, (uint16_t)(20 + plen));
	f[20] = 6;
	f[21] = 64;
	f[22] = 0x20;
	f[23] = 0x01;
	f[37] = 1;
	f[38] = 0x20;
	f[39] = 0x01;
	f[53] = 2;
	rv_put16(f + 54, 1234);
	rv_put16(f + 56, 80);
	rv_put32(f + 58, 42);
	f[66] = 5 << 4;
	f[67] = 0x18;
	for (size_t i = 0; i < plen; i++)
		f[hl + i] = (uint8_t)(i ^ 0x5a);
	return hl + plen;
}

/* Ethernet + IPv4 + UDP + payload. */
static inline size_t t_udp4(uint8_t *f, size_t plen)
{
	memcpy(f, T_MAC_B, 6);
	memcpy(f + 6, T_MAC_A, 6);
	rv_put16(f + 12, RV_ETH_P_IP);
	memset(f + 14, 0, 28);
	f[14] = 0x45;
	rv_put16(f + 16, (uint16_t)(28 + plen));
	f[22] = 64;
	f[23] = 17;
	memcpy(f + 26, T_IP_A, 4);
	memcpy(f + 30, T_IP_B, 4);
	rv_put16(f + 34, 1000);
	rv_put16(f + 36, 2000);
	rv_put16(f + 38, (uint16_t)(8 + plen));
	rv_put16(f + 40, 0x1234);
	for (size_t i = 0; i < plen; i++)
		f[42 + i] = (uint8_t)i;
	return 42 + plen;
}

/* An ARP request from A for B. */
static inline size_t t_arp(uint8_t *f)
{
	memset(f, 0, 42);
	memset(f, 0xff, 6);
	memcpy(f + 6, T_MAC_A, 6);
	rv_put16(f + 12, RV_ETH_P_ARP);
	rv_put16(f + 14, 1);
	rv_put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	rv_put16(f + 20, 1);
	memcpy(f + 22, T_MAC_A, 6);
	memcpy(f + 28, T_IP_A, 4);
	memcpy(f + 38, T_IP_B, 4);
	return 42;
}

/* An IPv6 neighbour solicitation from fe80::1 for fe80::2. */
static inline size_t t_ns(uint8_t *f)
{
	memset(f, 0, 86);
	memcpy(f, T_MAC_B, 6);
	memcpy(f + 6, T_MAC_A, 6);
	rv_put16(f + 12, RV_ETH_P_IPV6);
	f[14] = 0x60;
	rv_put16(f + 18, 32);
	f[20] = 58;
	f[21] = 255;
	f[22] = 0xfe;
	f[23] = 0x80;
	f[37] = 1;
	f[38] = 0xff;
	f[39] = 0x02;
	f[49] = 1;
	f[50] = 0xff;
	f[53] = 2;
	f[54] = 135;
	f[62] = 0xfe;
	f[63] = 0x80;
	f[77] = 2;
	f[78] = 1;
	f[79] = 1;
	memcpy(f + 80, T_MAC_A, 6);
	return 86;
}

/* Unbuffered output: a sanitizer abort must not swallow the checks printed before it. */
static inline void t_init(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
}

static inline int t_report(void)
{
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

#endif
