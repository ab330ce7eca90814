#ifndef RHUMB_CSUM_H
#define RHUMB_CSUM_H
#include <stddef.h>
#include <stdint.h>

/*
 * Internet checksum (RFC 1071) helpers shared by encap, decap and segmentation.
 * rhumb_csum_partial sums 32 bytes at a time; regions chained through `sum` must have
 * even lengths except the last.
 */
uint32_t rhumb_csum_partial(const void *data, size_t len, uint32_t sum);
uint16_t rhumb_csum_fold(uint32_t sum);

#endif
