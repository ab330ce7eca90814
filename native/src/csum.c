#include "rhumb_csum.h"
#include <string.h>

uint32_t rhumb_csum_partial(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t acc = 0;
	uint32_t folded;

	/* Sum native-order 32-bit words; on little-endian the byte-swapped fold is the
	 * big-endian ones'-complement sum (RFC 1071, section 2(B)). */
	while (len >= 32) {
		uint32_t w[8];
		memcpy(w, p, 32);
		acc += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
		p += 32;
		len -= 32;
	}
	while (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len)
		acc += *p; /* odd tail: the high byte of a big-endian word = low byte of a native one */
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	folded = (uint32_t)acc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	folded = (uint32_t)__builtin_bswap16((uint16_t)folded);
#endif
	return sum + folded;
}

uint16_t rhumb_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
