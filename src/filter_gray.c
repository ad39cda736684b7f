/* Luma kernel.
 *
 * DESIGN: a pure per-row function called by the band engine (filter.c) on
 * whatever thread or process runs the band; it owns nothing. The weights are
 * the exact decimal ones with half-up rounding:
 *   Rec.601  Y = (299 R + 587 G + 114 B + 500) / 1000
 *   Rec.709  Y = (2126 R + 7152 G + 722 B + 5000) / 10000
 * The divisions are by constants, which gcc turns into multiply-shift and
 * vectorizes; the loops are built twice (AVX2 and baseline) and picked per
 * call by ip__simd_level(). The AVX2 build does 3-channel rows with its own
 * kernel (gray3_avx2: byte shuffles, pmaddwd, and a float division shown
 * exact below). Integer results are the same on every path. */
#include <stddef.h>
#include <stdint.h>

#include "filter_internal.h"

#define Y601(r, g, b) ((299u * (r) + 587u * (g) + 114u * (b) + 500u) / 1000u)
#define Y709(r, g, b) ((2126u * (r) + 7152u * (g) + 722u * (b) + 5000u) / 10000u)

/* One loop per layout and weight set, so each has constant multipliers and
 * a constant divisor. */
IP__KERNEL_BODY void gray_rows(const uint8_t *restrict in, uint8_t *restrict out, size_t width,
                               uint32_t channels, enum ip_gray_weights weights)
{
    if (channels == 3 && weights == IP_GRAY_709) {
        for (size_t x = 0; x < width; x++)
            out[x] = (uint8_t)Y709(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
    } else if (channels == 3) {
        for (size_t x = 0; x < width; x++)
            out[x] = (uint8_t)Y601(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
    } else if (weights == IP_GRAY_709) {
        for (size_t x = 0; x < width; x++) {
            out[2 * x] = (uint8_t)Y709(in[4 * x], in[4 * x + 1], in[4 * x + 2]);
            out[2 * x + 1] = in[4 * x + 3];
        }
    } else {
        for (size_t x = 0; x < width; x++) {
            out[2 * x] = (uint8_t)Y601(in[4 * x], in[4 * x + 1], in[4 * x + 2]);
            out[2 * x + 1] = in[4 * x + 3];
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* RGB to gray, 16 pixels at a time, for the bulk of a 3-channel row; returns
 * how many pixels it did. The weighted sum s (plus half the divisor) is
 * exact in 32-bit lanes (pmaddwd of (R, G) with two weights and of (B, 1)
 * with the third and the half), and s / d truncates exactly as
 * (float)(s + 0.5) * (1/d): s + 0.5 < 2^22 is exact in float, its true
 * quotient is at least 0.5/d away from the next integer on either side
 * (0.5e-4 for d = 10000), and the float product is within 2^-16 of it
 * (quotient < 256: half an ulp plus the constant's relative error, under
 * 2^-24 * 256 * 1.5). So the result is the integer division's, on every
 * input (tests/unit/test_gray.c checks all 2^24). */
IP__TARGET_AVX2
static size_t gray3_avx2(const uint8_t *restrict in, uint8_t *restrict out, size_t width,
                         enum ip_gray_weights weights)
{
    /* pshufb masks: R, G, B bytes of 16 pixels from the three 16-byte loads. */
    const __m128i r0 = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i r1 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1);
    const __m128i r2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13);
    const __m128i g0 = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i g1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1);
    const __m128i g2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14);
    const __m128i b0 = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1);
    const __m128i b2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15);
    const int is709 = weights == IP_GRAY_709;
    const __m256i wrg = is709 ? _mm256_set1_epi32(7152 << 16 | 2126) : _mm256_set1_epi32(587 << 16 | 299);
    const __m256i wb = is709 ? _mm256_set1_epi32(5000 << 16 | 722) : _mm256_set1_epi32(500 << 16 | 114);
    const __m256i one = _mm256_set1_epi16(1);
    const __m256 half = _mm256_set1_ps(0.5f), inv = _mm256_set1_ps(is709 ? 1.0f / 10000.0f : 1.0f / 1000.0f);
    size_t x = 0;

    for (; x + 16 <= width; x += 16) {
        const uint8_t *p = in + 3 * x;
        __m128i a = _mm_loadu_si128((const __m128i *)p);
        __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i r8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, r0), _mm_shuffle_epi8(b, r1)),
                                  _mm_shuffle_epi8(c, r2));
        __m128i g8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, g0), _mm_shuffle_epi8(b, g1)),
                                  _mm_shuffle_epi8(c, g2));
        __m128i b8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, b0), _mm_shuffle_epi8(b, b1)),
                                  _mm_shuffle_epi8(c, b2));
        __m256i r16 = _mm256_cvtepu8_epi16(r8), g16 = _mm256_cvtepu8_epi16(g8), b16 = _mm256_cvtepu8_epi16(b8);
        /* Lane-wise unpacks; the packs below undo their order. */
        __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(r16, g16), wrg),
                                      _mm256_madd_epi16(_mm256_unpacklo_epi16(b16, one), wb));
        __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(r16, g16), wrg),
                                      _mm256_madd_epi16(_mm256_unpackhi_epi16(b16, one), wb));
        __m256i ylo = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(lo), half), inv));
        __m256i yhi = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(hi), half), inv));
        __m256i y16 = _mm256_packus_epi32(ylo, yhi);   /* 16 values, in order */
        __m128i y8 = _mm_packus_epi16(_mm256_castsi256_si128(y16), _mm256_extracti128_si256(y16, 1));

        _mm_storeu_si128((__m128i *)(out + x), y8);
    }
    return x;
}
#endif

IP__TARGET_AVX2
static void gray_avx2(const uint8_t *restrict in, uint8_t *restrict out, size_t width,
                      uint32_t channels, enum ip_gray_weights weights)
{
    size_t done = 0;

#if defined(__x86_64__)
    if (channels == 3)
        done = gray3_avx2(in, out, width, weights);
#endif
    gray_rows(in + done * channels, out + done, width - done, channels, weights);
}

static void gray_base(const uint8_t *restrict in, uint8_t *restrict out, size_t width,
                      uint32_t channels, enum ip_gray_weights weights)
{
    gray_rows(in, out, width, channels, weights);
}

void ip__gray_row(const uint8_t *in, uint8_t *out, size_t width, uint32_t channels,
                  enum ip_gray_weights weights)
{
    if (channels != 3 && channels != 4)
        return;
    if (ip__simd_level() >= 2)
        gray_avx2(in, out, width, channels, weights);
    else
        gray_base(in, out, width, channels, weights);
}
