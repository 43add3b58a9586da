/* pecgpu_sha256.h - SHA-256 (FIPS 180-4) written once for the host and for CUDA kernels.
 *
 * Plain C11 where included from C; every function is __host__ __device__ where included from a .cu
 * file. The round constants are immediates in the unrolled rounds, so device code needs no constant
 * memory. Streaming init/update/final over bytes; no allocation, no global state, no library calls.
 * The host library hashes with OpenSSL; this core is what the CUDA kernel runs (tested against it).
 */
#ifndef PECGPU_SHA256_H
#define PECGPU_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PECGPU_HD __host__ __device__ __forceinline__
#else
#define PECGPU_HD static inline
#endif

struct pecgpu_sha256 {
	uint32_t h[8];
	uint64_t total;     /* bytes fed so far */
	uint32_t buflen;    /* bytes waiting in buf, < 64 */
	uint8_t buf[64];
};

#define PECGPU_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define PECGPU_CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define PECGPU_MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define PECGPU_BSIG0(x) (PECGPU_ROTR(x, 2) ^ PECGPU_ROTR(x, 13) ^ PECGPU_ROTR(x, 22))
#define PECGPU_BSIG1(x) (PECGPU_ROTR(x, 6) ^ PECGPU_ROTR(x, 11) ^ PECGPU_ROTR(x, 25))
#define PECGPU_SSIG0(x) (PECGPU_ROTR(x, 7) ^ PECGPU_ROTR(x, 18) ^ ((x) >> 3))
#define PECGPU_SSIG1(x) (PECGPU_ROTR(x, 17) ^ PECGPU_ROTR(x, 19) ^ ((x) >> 10))

/* Round t of FIPS 180-4 section 6.2.2 step 3, with the working variables renamed instead of moved:
 * each round turns the roles a..h one place, so eight consecutive rounds restore them. */
#define PECGPU_ROUND(a, b, c, d, e, f, g, h, k, w)                                   \
	do {                                                                          \
		uint32_t t1_ = (h) + PECGPU_BSIG1(e) + PECGPU_CH(e, f, g) + (k) + (w); \
		uint32_t t2_ = PECGPU_BSIG0(a) + PECGPU_MAJ(a, b, c);                 \
		(d) += t1_;                                                           \
		(h) = t1_ + t2_;                                                      \
	} while (0)

/* Schedule word W[t] for t >= 16 kept in a 16-word ring: w[t & 15]. */
#define PECGPU_W(w, t)                                                                      \
	((w)[(t) & 15] += PECGPU_SSIG1((w)[((t) - 2) & 15]) + (w)[((t) - 7) & 15] +         \
			  PECGPU_SSIG0((w)[((t) - 15) & 15]))

#define PECGPU_R8(t, k0, k1, k2, k3, k4, k5, k6, k7, W)        \
	do {                                                    \
		PECGPU_ROUND(a, b, c, d, e, f, g, h, k0, W(t));  \
		PECGPU_ROUND(h, a, b, c, d, e, f, g, k1, W(t + 1)); \
		PECGPU_ROUND(g, h, a, b, c, d, e, f, k2, W(t + 2)); \
		PECGPU_ROUND(f, g, h, a, b, c, d, e, k3, W(t + 3)); \
		PECGPU_ROUND(e, f, g, h, a, b, c, d, k4, W(t + 4)); \
		PECGPU_ROUND(d, e, f, g, h, a, b, c, k5, W(t + 5)); \
		PECGPU_ROUND(c, d, e, f, g, h, a, b, k6, W(t + 6)); \
		PECGPU_ROUND(b, c, d, e, f, g, h, a, k7, W(t + 7)); \
	} while (0)

/* Compresses one 64-byte block (big-endian words) into h. */
PECGPU_HD void pecgpu_sha256_block(uint32_t h_[8], const uint8_t *p)
{
	uint32_t w[16];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
	uint32_t e = h_[4], f = h_[5], g = h_[6], h = h_[7];
#define PECGPU_W0(t) w[t]
#define PECGPU_WN(t) PECGPU_W(w, t)
	PECGPU_R8(0, 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
		  0x923f82a4, 0xab1c5ed5, PECGPU_W0);
	PECGPU_R8(8, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
		  0x9bdc06a7, 0xc19bf174, PECGPU_W0);
	PECGPU_R8(16, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
		  0x5cb0a9dc, 0x76f988da, PECGPU_WN);
	PECGPU_R8(24, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
		  0x06ca6351, 0x14292967, PECGPU_WN);
	PECGPU_R8(32, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb,
		  0x81c2c92e, 0x92722c85, PECGPU_WN);
	PECGPU_R8(40, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624,
		  0xf40e3585, 0x106aa070, PECGPU_WN);
	PECGPU_R8(48, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
		  0x5b9cca4f, 0x682e6ff3, PECGPU_WN);
	PECGPU_R8(56, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb,
		  0xbef9a3f7, 0xc67178f2, PECGPU_WN);
#undef PECGPU_W0
#undef PECGPU_WN
	h_[0] += a;
	h_[1] += b;
	h_[2] += c;
	h_[3] += d;
	h_[4] += e;
	h_[5] += f;
	h_[6] += g;
	h_[7] += h;
}

PECGPU_HD void pecgpu_sha256_init(struct pecgpu_sha256 *s)
{
	/* FIPS 180-4 section 5.3.3 */
	s->h[0] = 0x6a09e667;
	s->h[1] = 0xbb67ae85;
	s->h[2] = 0x3c6ef372;
	s->h[3] = 0xa54ff53a;
	s->h[4] = 0x510e527f;
	s->h[5] = 0x9b05688c;
	s->h[6] = 0x1f83d9ab;
	s->h[7] = 0x5be0cd19;
	s->total = 0;
	s->buflen = 0;
}

PECGPU_HD void pecgpu_sha256_update(struct pecgpu_sha256 *s, const void *data, uint64_t len)
{
	const uint8_t *p = (const uint8_t *)data;
	s->total += len;
	if (s->buflen) {
		while (len && s->buflen < 64) {
			s->buf[s->buflen++] = *p++;
			len--;
		}
		if (s->buflen < 64)
			return;
		pecgpu_sha256_block(s->h, s->buf);
		s->buflen = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		pecgpu_sha256_block(s->h, p);
	while (len--)
		s->buf[s->buflen++] = *p++;
}

/* Pads (a 1 bit, zeros, the length in bits as a big-endian u64) and writes the 32-byte digest. */
PECGPU_HD void pecgpu_sha256_final(struct pecgpu_sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->total * 8;
	s->buf[s->buflen++] = 0x80;
	if (s->buflen > 56) {
		while (s->buflen < 64)
			s->buf[s->buflen++] = 0;
		pecgpu_sha256_block(s->h, s->buf);
		s->buflen = 0;
	}
	while (s->buflen < 56)
		s->buf[s->buflen++] = 0;
	for (int i = 0; i < 8; i++)
		s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	pecgpu_sha256_block(s->h, s->buf);
	s->buflen = 0;
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

#endif
