/* digest.h - content identity of a chunk: SHA-256 of its payload bytes.
 *
 * The digest is the chunk's name everywhere (local chunk files, metadata keys, later the S3 bucket).
 * Computed with OpenSSL (SHA-NI where the CPU has it). All functions are thread-safe.
 */
#ifndef PECFS_DIGEST_H
#define PECFS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64

struct digest {
	uint8_t b[DIGEST_LEN];
};

/* SHA-256 of len bytes at data. */
void digest_compute(const void *data, size_t len, struct digest *out);

/* Lower-case hex, NUL-terminated (hex must hold DIGEST_HEX_LEN + 1 bytes). */
void digest_to_hex(const struct digest *d, char *hex);

/* Parses exactly 64 hex digits; returns 0 or -EINVAL. */
int digest_from_hex(const char *hex, struct digest *out);

int digest_equal(const struct digest *a, const struct digest *b);

#endif
