#ifndef RHUMB_CSUM_H
#define RHUMB_CSUM_H
#include <stddef.h>
#include <stdint.h>

/*
 * Internet checksum (RFC 1071) helpers shared by encap, decap and segmentation.
 * rhumb_csum_partial sums the bulk with SSE2/AVX2 where the CPU has them; regions chained through `sum` must have
 * even lengths except the last.
 */
uint32_t rhumb_csum_partial(const void *data, size_t len, uint32_t sum);
uint16_t rhumb_csum_fold(uint32_t sum);
/* Which bulk implementation rhumb_csum_partial uses here: "avx2", "sse2" or "scalar". */
const char *rhumb_csum_impl(void);
/* The same sum through one implementation (0 scalar, 1 sse2, 2 avx2; unavailable ones fall back to scalar): for tests. */
uint32_t rhumb_csum_partial_with(int impl, const void *data, size_t len, uint32_t sum);

#endif
