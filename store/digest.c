/* digest.c - SHA-256 chunk identity through OpenSSL's one-shot EVP interface.
 *
 * EVP_Digest picks the fastest implementation the CPU offers (SHA-NI here) and keeps no state
 * between calls, so every function is thread-safe. Hex helpers are the only other thing here.
 */
#include "digest.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

void digest_compute(const void *data, size_t len, struct digest *out)
{
	unsigned int n = 0;
	int ok;

	assert(data != NULL || len == 0);
	/* EVP_Digest fails only on allocation failure or a missing algorithm; SHA-256 is built into
	 * libcrypto, so a failure means the process cannot go on safely naming chunks. */
	ok = EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL);
	assert(ok == 1 && n == DIGEST_LEN);
	if (ok != 1 || n != DIGEST_LEN)
		abort();
}

void digest_to_hex(const struct digest *d, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < DIGEST_LEN; i++) {
		hex[2 * i] = digits[d->b[i] >> 4];
		hex[2 * i + 1] = digits[d->b[i] & 0xf];
	}
	hex[DIGEST_HEX_LEN] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int digest_from_hex(const char *hex, struct digest *out)
{
	struct digest d;

	for (int i = 0; i < DIGEST_LEN; i++) {
		int hi, lo;

		if (hex[2 * i] == '\0' || hex[2 * i + 1] == '\0')
			return -EINVAL;
		hi = hex_value(hex[2 * i]);
		lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		d.b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[DIGEST_HEX_LEN] != '\0')
		return -EINVAL;
	*out = d;
	return 0;
}

int digest_equal(const struct digest *a, const struct digest *b)
{
	return memcmp(a->b, b->b, DIGEST_LEN) == 0;
}
