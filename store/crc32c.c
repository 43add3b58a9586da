/* crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) over chunk blocks.
 *
 * The SSE4.2 crc32 instruction handles 8 bytes per step; CPUs without it use a byte-wise table
 * built on first use. The choice is made once (pthread_once) and both paths give identical results.
 * crc32c_many interleaves three independent buffers (chunk blocks are checked in batches), which
 * hides the instruction's latency. A single long buffer (a read of one block) is split into three
 * lanes run the same way, whose CRCs are then joined by arithmetic modulo the polynomial.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[256];  /* written once under crc32c_once, read-only after */
static uint32_t crc32c_x2k[64];     /* idem: x^(2^k) mod P, reflected */
static int crc32c_use_hw;           /* idem */
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

/* ---- arithmetic on CRC states: polynomials over GF(2) modulo P, bit 31 holding x^0 ---- */

/* a * b mod P. */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
		if (a & bit)
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;  /* b * x */
	}
	return prod;
}

/* x^(8 * n) mod P: the factor that moves a CRC state past n zero bytes. */
static uint32_t gf_x8n(size_t n)
{
	uint32_t r = 1u << 31;  /* x^0 */

	for (int k = 3; n != 0; n >>= 1, k++)
		if (n & 1)
			r = gf_mul(r, crc32c_x2k[k]);
	return r;
}

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[i] = c;
	}
	crc32c_x2k[0] = 1u << 30;  /* x^1: bit 31 - 1 in the reflected order */
	for (int k = 1; k < 64; k++)
		crc32c_x2k[k] = gf_mul(crc32c_x2k[k - 1], crc32c_x2k[k - 1]);
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc32c_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);  /* aligned by now; memcpy keeps it free of aliasing questions */
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

#if defined(__x86_64__)
/* Three streams of the same length n (a multiple of 8) in lockstep; c[] carries the states. */
__attribute__((target("sse4.2")))
static void crc32c_hw3(uint64_t c[3], const uint8_t *const p[3], size_t n)
{
	uint64_t c0 = c[0], c1 = c[1], c2 = c[2];

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v0, v1, v2;

		memcpy(&v0, p[0] + i, 8);
		memcpy(&v1, p[1] + i, 8);
		memcpy(&v2, p[2] + i, 8);
		c0 = _mm_crc32_u64(c0, v0);
		c1 = _mm_crc32_u64(c1, v1);
		c2 = _mm_crc32_u64(c2, v2);
	}
	c[0] = c0;
	c[1] = c1;
	c[2] = c2;
}
#endif

#if defined(__x86_64__)
/* The state after len bytes from state crc (no inversions). From 3 KiB up the bytes run as three
 * lanes of equal length: lane 0 from crc, lanes 1 and 2 from 0; CRCs are linear, so the state after
 * lanes 0 and 1 is lane 0's moved past L bytes (times x^(8L)) xor lane 1's, and so on. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_long(uint32_t crc, const uint8_t *p, size_t len)
{
	size_t lane = len / 3 & ~(size_t)7;

	if (lane < 1024)
		return crc32c_hw(crc, p, len);
	uint64_t c[3] = { crc, 0, 0 };
	const uint8_t *lp[3] = { p, p + lane, p + 2 * lane };
	crc32c_hw3(c, lp, lane);
	uint32_t shift = gf_x8n(lane);
	uint32_t s = gf_mul((uint32_t)c[0], shift) ^ (uint32_t)c[1];
	s = gf_mul(s, shift) ^ (uint32_t)c[2];
	return crc32c_hw(s, p + 3 * lane, len - 3 * lane);
}
#endif

void crc32c_many(const void *const *bufs, const size_t *lens, size_t n, uint32_t *out)
{
	size_t i = 0;

	pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
	for (; crc32c_use_hw && i + 3 <= n; i += 3) {
		size_t common = lens[i];
		for (int k = 1; k < 3; k++)
			if (lens[i + k] < common)
				common = lens[i + k];
		common &= ~(size_t)7;
		uint64_t c[3] = { 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu };
		const uint8_t *p[3] = { bufs[i], bufs[i + 1], bufs[i + 2] };
		crc32c_hw3(c, p, common);
		for (int k = 0; k < 3; k++)
			out[i + k] = ~crc32c_hw((uint32_t)c[k], p[k] + common, lens[i + k] - common);
	}
#endif
	for (; i < n; i++)
		out[i] = crc32c(0, bufs[i], lens[i]);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc32c_once, crc32c_init);
	crc = ~crc;  /* pre- and post-inversion, so callers chain with a plain 0 start */
#if defined(__x86_64__)
	if (crc32c_use_hw)
		return ~crc32c_hw_long(crc, p, len);
#endif
	return ~crc32c_sw(crc, p, len);
}
