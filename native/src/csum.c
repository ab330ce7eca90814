#include "rhumb_csum.h"
#include <string.h>

/*
 * The sum is taken over native-order 32-bit words into 64-bit accumulators; on
 * little-endian the byte-swapped fold is the big-endian ones'-complement sum (RFC 1071,
 * section 2(B)). The bulk of a buffer goes through the widest vector unit the CPU has
 * (chosen once, at load): segmentation checksums every byte an instance sends.
 */
typedef uint64_t (*bulk_fn)(const uint8_t *p, size_t n);

/* n is a multiple of 32. */
static uint64_t bulk_scalar(const uint8_t *p, size_t n)
{
	uint64_t acc = 0;
	for (; n; n -= 32, p += 32) {
		uint32_t w[8];
		memcpy(w, p, 32);
		acc += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
	}
	return acc;
}

#if defined(__x86_64__)
#include <immintrin.h>

static uint64_t bulk_sse2(const uint8_t *p, size_t n)
{
	__m128i z = _mm_setzero_si128(), a = z, b = z;
	uint64_t l[2];
	for (; n; n -= 32, p += 32) {
		__m128i v = _mm_loadu_si128((const __m128i *)p), u = _mm_loadu_si128((const __m128i *)(p + 16));
		a = _mm_add_epi64(a, _mm_add_epi64(_mm_unpacklo_epi32(v, z), _mm_unpackhi_epi32(v, z)));
		b = _mm_add_epi64(b, _mm_add_epi64(_mm_unpacklo_epi32(u, z), _mm_unpackhi_epi32(u, z)));
	}
	_mm_storeu_si128((__m128i *)l, _mm_add_epi64(a, b));
	return l[0] + l[1];
}

__attribute__((target("avx2"))) static uint64_t bulk_avx2(const uint8_t *p, size_t n)
{
	__m256i z = _mm256_setzero_si256(), a = z, b = z;
	uint64_t l[4];
	for (; n >= 64; n -= 64, p += 64) {
		__m256i v = _mm256_loadu_si256((const __m256i *)p), u = _mm256_loadu_si256((const __m256i *)(p + 32));
		a = _mm256_add_epi64(a, _mm256_add_epi64(_mm256_unpacklo_epi32(v, z), _mm256_unpackhi_epi32(v, z)));
		b = _mm256_add_epi64(b, _mm256_add_epi64(_mm256_unpacklo_epi32(u, z), _mm256_unpackhi_epi32(u, z)));
	}
	if (n) {
		__m256i v = _mm256_loadu_si256((const __m256i *)p);
		a = _mm256_add_epi64(a, _mm256_add_epi64(_mm256_unpacklo_epi32(v, z), _mm256_unpackhi_epi32(v, z)));
	}
	_mm256_storeu_si256((__m256i *)l, _mm256_add_epi64(a, b));
	return l[0] + l[1] + l[2] + l[3];
}
#endif

static bulk_fn bulk = bulk_scalar;

__attribute__((constructor)) static void pick_bulk(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	bulk = __builtin_cpu_supports("avx2") ? bulk_avx2 : bulk_sse2;
#endif
}

const char *rhumb_csum_impl(void)
{
#if defined(__x86_64__)
	if (bulk == bulk_avx2)
		return "avx2";
	if (bulk == bulk_sse2)
		return "sse2";
#endif
	return "scalar";
}

static uint32_t csum_with(bulk_fn fn, const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	size_t whole = len & ~(size_t)31;
	uint64_t acc = whole ? fn(p, whole) : 0;
	uint32_t folded;

	p += whole;
	len -= whole;
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

uint32_t rhumb_csum_partial(const void *data, size_t len, uint32_t sum)
{
	return csum_with(bulk, data, len, sum);
}

/* For the C tests: every implementation this CPU can run must agree (0 scalar, 1 sse2, 2 avx2). */
uint32_t rhumb_csum_partial_with(int impl, const void *data, size_t len, uint32_t sum)
{
	bulk_fn fn = bulk_scalar;
#if defined(__x86_64__)
	if (impl == 1)
		fn = bulk_sse2;
	if (impl == 2 && __builtin_cpu_supports("avx2"))
		fn = bulk_avx2;
#endif
	return csum_with(fn, data, len, sum);
}

uint16_t rhumb_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
