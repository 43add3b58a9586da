/* gpu_check.h - what the check programs of tests/gpu share: a line per check ("ok  " or "FAIL") with
 * a failure count, and reproducible pseudo-random bytes. Header-only; one program includes it once.
 */
#ifndef GPU_CHECK_H
#define GPU_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static int check_failures __attribute__((unused));

__attribute__((format(printf, 2, 3))) static inline void check(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", ok ? "ok  " : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	check_failures += !ok;
}

/* xorshift64 bytes from seed: different seeds give content no store holds yet */
static inline void check_fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

#endif
