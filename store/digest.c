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

#include <openssl/crypto.h>
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

int digest_from_hex(const char *hex, struct digest *out)
{
	struct digest d;
	size_t n = 0;

	/* OpenSSL's decoder, with no separator between the digit pairs. */
	if (strnlen(hex, DIGEST_HEX_LEN + 1) != DIGEST_HEX_LEN ||
	    OPENSSL_hexstr2buf_ex(d.b, sizeof(d.b), &n, hex, '\0') != 1 || n != DIGEST_LEN)
		return -EINVAL;
	*out = d;
	return 0;
}

int digest_equal(const struct digest *a, const struct digest *b)
{
	return memcmp(a->b, b->b, DIGEST_LEN) == 0;
}
