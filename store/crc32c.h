/* crc32c.h - CRC-32C (Castagnoli), used to detect corruption of stored chunk blocks on every read.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run time), a table
 * otherwise; both give identical results. Thread-safe.
 */
#ifndef PECFS_CRC32C_H
#define PECFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (start with 0) over len bytes. crc32c(0, "123456789", 9) == 0xE3069283. From 3 KiB up
 * the bytes run as three interleaved lanes, joined at the end (as fast as crc32c_many's batches). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* out[i] = crc32c(0, bufs[i], lens[i]) for i < n. Three buffers at a time share one pass: the crc32
 * instruction has a latency of three cycles and a throughput of one, so three independent streams
 * run about three times as fast as one. */
void crc32c_many(const void *const *bufs, const size_t *lens, size_t n, uint32_t *out);

#endif
