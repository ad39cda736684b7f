/* Gaussian and box blur row kernels.
 *
 * DESIGN: pure per-row functions called by the band engine (filter.c), which
 * owns every buffer they read and write (pad rows, ring of horizontal rows,
 * running sums) and decides which rows they see; they run on whatever thread
 * or process runs the band and keep no state.
 *
 * Gaussian without alpha (the hot path):
 *   horizontal  h = (sum_j w_j p[x+j] + 2^6) >> 7        uint16, 7 fraction bits
 *   vertical    y = (sum_j w_j h[y+j] + 2^20) >> 21      back to 8 bits
 * Taps sum to 2^14, so h <= 255 * 2^7 < 2^15 (it fits the signed 16-bit
 * multiplies of pmaddwd) and the vertical sum < 2^30. The rounding of h adds
 * at most 2^-8 of a level, far inside the 1-level budget. The kernels run 32
 * (AVX2) or 8 (SSE2) outputs at a time with accumulators in registers and
 * taps inner; the AVX2 path is chosen at run time, so a release build runs on
 * any x86-64, and the portable C loop gives the same integers.
 *
 * Alpha images are blurred premultiplied, colour = round(blur(c a) / blur(a)),
 * alpha = round(blur(a)), half up. The ratio is only as good as the relative
 * precision of the taps that carry the alpha: where the alpha in a window
 * sits on tail taps (sparse alpha), 14-bit taps are off by several percent
 * and the colour by many levels. So this path works in double precision
 * with the true weights (relative error ~1e-13; blur(a) is zero exactly where
 * every alpha in the window is), with the same operations in the same order
 * on every path: not integer, but just as reproducible. The taps-outer
 * loops over chunks of a row are vectorised by the compiler (AVX2 build and
 * baseline build of one body).
 *
 * Box: running sums, horizontal per row and vertical across the band, then
 * round-half-up of sum / (2r+1)^2. The division is done in double:
 * T = sum + n/2 < 2^27, and T/n is either an integer or at least 1/n away
 * from one, while the rounding error of T * (1/n) is below 2^-43; adding
 * 0.5/n before truncating gives exactly floor(T/n) on every path. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filter_internal.h"

#define H_SHIFT (IP_GAUSS_SHIFT - IP__GAUSS_MID_BITS)
#define V_SHIFT (IP_GAUSS_SHIFT + IP__GAUSS_MID_BITS)

/* The true half kernel wc[0..r] (two-sided sum 1): the alpha path's taps,
 * and what the integer taps are quantised from. */
void ip__gauss_weights(double sigma, int r, double *wc)
{
    double total = 0.0;

    for (int i = 0; i <= r; i++) {
        wc[i] = exp(-(double)i * i / (2.0 * sigma * sigma));
        total += i ? 2.0 * wc[i] : wc[i];
    }
    for (int i = 0; i <= r; i++)
        wc[i] /= total;
}

int ip__gauss_radius(double sigma)
{
    int r = (int)ceil(3.0 * sigma);

    return r < 1 ? 1 : r > IP_BLUR_MAX_RADIUS ? IP_BLUR_MAX_RADIUS : r;
}

void ip__gauss_taps(double sigma, int *radius, int32_t *taps)
{
    double w[IP_BLUR_MAX_RADIUS + 1];
    int r = ip__gauss_radius(sigma);
    int64_t side = 0;

    /* Side taps rounded to 1 << IP_GAUSS_SHIFT, the residue in the centre. */
    ip__gauss_weights(sigma, r, w);
    for (int i = 1; i <= r; i++) {
        taps[r - i] = taps[r + i] = (int32_t)floor(w[i] * (double)(1ll << IP_GAUSS_SHIFT) + 0.5);
        side += 2 * (int64_t)taps[r + i];
    }
    taps[r] = (int32_t)((1ll << IP_GAUSS_SHIFT) - side);
    *radius = r;
}

/* ---- Gaussian without alpha ------------------------------------------------
 * Three implementations of the same integer formulas, picked per call:
 * AVX2 and SSE2 intrinsics (x86-64; SSE2 is its baseline) and portable C
 * (other machines, and the reference the tests compare the others with).
 * The SIMD versions multiply pairs of 16-bit values with pmaddwd: inputs
 * interleaved as (a, b), where a and b are mirror taps, against (w, w), so
 * each 32-bit lane gets w*a + w*b. Inputs must fit int16: pixels do, and the
 * intermediate rows (7 fraction bits, <= 255*128) do; taps are <= 2^14. The
 * unpack and the final pack both work within 128-bit lanes, so outputs come
 * back in order. */

static int simd_limit = 2;

void ip__simd_limit(int level)
{
    simd_limit = level;
}

int ip__simd_level(void)
{
#if defined(__x86_64__)
    int cpu = __builtin_cpu_supports("avx2") ? 2 : 1;
#else
    int cpu = 0;
#endif
    return simd_limit < cpu ? simd_limit : cpu;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1

/* 32 outputs per iteration: four accumulators of 8 lanes. Each kernel
 * starts at output i and returns where it stopped; the caller finishes the
 * row with narrower code. */
__attribute__((target("avx2")))
static size_t gauss_h_avx2(const uint8_t *centre, size_t i, size_t n, size_t step,
                           const int32_t *wc, int r, uint16_t *out)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i round = _mm256_set1_epi32(1 << (H_SHIFT - 1));
    const __m256i w0 = _mm256_set1_epi32(wc[0]);

    for (; i + 32 <= n; i += 32) {
        const uint8_t *pc = centre + i;
        __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)pc));
        __m256i c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(pc + 16)));
        __m256i l0 = _mm256_madd_epi16(_mm256_unpacklo_epi16(c0, zero), w0);
        __m256i h0 = _mm256_madd_epi16(_mm256_unpackhi_epi16(c0, zero), w0);
        __m256i l1 = _mm256_madd_epi16(_mm256_unpacklo_epi16(c1, zero), w0);
        __m256i h1 = _mm256_madd_epi16(_mm256_unpackhi_epi16(c1, zero), w0);
        for (int j = 1; j <= r; j++) {
            const uint8_t *pa = pc - (size_t)j * step, *pb = pc + (size_t)j * step;
            __m256i w = _mm256_set1_epi32(wc[j] * 0x10001);
            __m256i a0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)pa));
            __m256i b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)pb));
            __m256i a1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(pa + 16)));
            __m256i b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(pb + 16)));
            l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a0, b0), w));
            h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(_mm256_unpackhi_epi16(a0, b0), w));
            l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(_mm256_unpacklo_epi16(a1, b1), w));
            h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a1, b1), w));
        }
        l0 = _mm256_srli_epi32(_mm256_add_epi32(l0, round), H_SHIFT);
        h0 = _mm256_srli_epi32(_mm256_add_epi32(h0, round), H_SHIFT);
        l1 = _mm256_srli_epi32(_mm256_add_epi32(l1, round), H_SHIFT);
        h1 = _mm256_srli_epi32(_mm256_add_epi32(h1, round), H_SHIFT);
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_packus_epi32(l0, h0));
        _mm256_storeu_si256((__m256i *)(out + i + 16), _mm256_packus_epi32(l1, h1));
    }
    return i;
}

__attribute__((target("avx2")))
static size_t gauss_v_avx2(const void *const *rows, size_t i, size_t n, const int32_t *wc,
                           int r, uint8_t *out)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i round = _mm256_set1_epi32(1 << (V_SHIFT - 1));
    const __m256i w0 = _mm256_set1_epi32(wc[0]);

    for (; i + 32 <= n; i += 32) {
        const uint16_t *pc = (const uint16_t *)rows[r] + i;
        __m256i c0 = _mm256_loadu_si256((const __m256i *)pc);
        __m256i c1 = _mm256_loadu_si256((const __m256i *)(pc + 16));
        __m256i l0 = _mm256_madd_epi16(_mm256_unpacklo_epi16(c0, zero), w0);
        __m256i h0 = _mm256_madd_epi16(_mm256_unpackhi_epi16(c0, zero), w0);
        __m256i l1 = _mm256_madd_epi16(_mm256_unpacklo_epi16(c1, zero), w0);
        __m256i h1 = _mm256_madd_epi16(_mm256_unpackhi_epi16(c1, zero), w0);
        __m256i p;
        for (int j = 1; j <= r; j++) {
            const uint16_t *pa = (const uint16_t *)rows[r - j] + i;
            const uint16_t *pb = (const uint16_t *)rows[r + j] + i;
            __m256i w = _mm256_set1_epi32(wc[j] * 0x10001);
            __m256i a0 = _mm256_loadu_si256((const __m256i *)pa);
            __m256i b0 = _mm256_loadu_si256((const __m256i *)pb);
            __m256i a1 = _mm256_loadu_si256((const __m256i *)(pa + 16));
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(pb + 16));
            l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a0, b0), w));
            h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(_mm256_unpackhi_epi16(a0, b0), w));
            l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(_mm256_unpacklo_epi16(a1, b1), w));
            h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a1, b1), w));
        }
        l0 = _mm256_srli_epi32(_mm256_add_epi32(l0, round), V_SHIFT);
        h0 = _mm256_srli_epi32(_mm256_add_epi32(h0, round), V_SHIFT);
        l1 = _mm256_srli_epi32(_mm256_add_epi32(l1, round), V_SHIFT);
        h1 = _mm256_srli_epi32(_mm256_add_epi32(h1, round), V_SHIFT);
        /* Lane-wise packs leave 8-byte groups in the order 0, 2, 1, 3. */
        p = _mm256_packus_epi16(_mm256_packus_epi32(l0, h0), _mm256_packus_epi32(l1, h1));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_permute4x64_epi64(p, 0xD8));
    }
    return i;
}

/* SSE2 has no packus_epi32, but every value packed here is < 2^15, so the
 * signed pack gives the same result. */
static size_t gauss_h_sse2(const uint8_t *centre, size_t i, size_t n, size_t step,
                           const int32_t *wc, int r, uint16_t *out)
{
    const __m128i zero = _mm_setzero_si128();
    const __m128i round = _mm_set1_epi32(1 << (H_SHIFT - 1));
    const __m128i w0 = _mm_set1_epi32(wc[0]);

    for (; i + 8 <= n; i += 8) {
        __m128i c = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(centre + i)), zero);
        __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi16(c, zero), w0);
        __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi16(c, zero), w0);
        for (int j = 1; j <= r; j++) {
            const uint8_t *pa = centre + i - (size_t)j * step, *pb = centre + i + (size_t)j * step;
            __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)pa), zero);
            __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)pb), zero);
            __m128i w = _mm_set1_epi32(wc[j] * 0x10001);
            lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), w));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(a, b), w));
        }
        lo = _mm_srli_epi32(_mm_add_epi32(lo, round), H_SHIFT);
        hi = _mm_srli_epi32(_mm_add_epi32(hi, round), H_SHIFT);
        _mm_storeu_si128((__m128i *)(out + i), _mm_packs_epi32(lo, hi));
    }
    return i;
}

static size_t gauss_v_sse2(const void *const *rows, size_t i, size_t n, const int32_t *wc,
                           int r, uint8_t *out)
{
    const __m128i zero = _mm_setzero_si128();
    const __m128i round = _mm_set1_epi32(1 << (V_SHIFT - 1));
    const __m128i w0 = _mm_set1_epi32(wc[0]);

    for (; i + 8 <= n; i += 8) {
        __m128i c = _mm_loadu_si128((const __m128i *)((const uint16_t *)rows[r] + i));
        __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi16(c, zero), w0);
        __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi16(c, zero), w0);
        __m128i p;
        for (int j = 1; j <= r; j++) {
            __m128i a = _mm_loadu_si128((const __m128i *)((const uint16_t *)rows[r - j] + i));
            __m128i b = _mm_loadu_si128((const __m128i *)((const uint16_t *)rows[r + j] + i));
            __m128i w = _mm_set1_epi32(wc[j] * 0x10001);
            lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), w));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(a, b), w));
        }
        lo = _mm_srli_epi32(_mm_add_epi32(lo, round), V_SHIFT);
        hi = _mm_srli_epi32(_mm_add_epi32(hi, round), V_SHIFT);
        p = _mm_packs_epi32(lo, hi);
        _mm_storel_epi64((__m128i *)(out + i), _mm_packus_epi16(p, p));
    }
    return i;
}
#else
#define HAVE_X86 0
#endif

void ip__gauss_h(const uint8_t *pad, size_t n, size_t step, const int32_t *wc, int r,
                 uint16_t *out)
{
    const uint8_t *centre = pad + (size_t)r * step;
    size_t i = 0;

#if HAVE_X86
    int level = ip__simd_level();
    if (level >= 2)
        i = gauss_h_avx2(centre, i, n, step, wc, r, out);
    if (level >= 1)
        i = gauss_h_sse2(centre, i, n, step, wc, r, out);
#endif
    /* centre + i - j*step, not centre[i - j*step]: i < j*step would wrap the
     * unsigned index (undefined pointer arithmetic, found by fuzz_pipeline). */
    for (; i < n; i++) {
        uint32_t acc = (uint32_t)wc[0] * centre[i];
        for (int j = 1; j <= r; j++)
            acc += (uint32_t)wc[j]
                   * (uint32_t)(*(centre + i - (size_t)j * step) + centre[i + (size_t)j * step]);
        out[i] = (uint16_t)((acc + (1u << (H_SHIFT - 1))) >> H_SHIFT);
    }
}

void ip__gauss_v(const void *const *rows, size_t n, const int32_t *wc, int r, uint8_t *out)
{
    const uint16_t *centre = rows[r];
    size_t i = 0;

#if HAVE_X86
    int level = ip__simd_level();
    if (level >= 2)
        i = gauss_v_avx2(rows, i, n, wc, r, out);
    if (level >= 1)
        i = gauss_v_sse2(rows, i, n, wc, r, out);
#endif
    for (; i < n; i++) {
        uint32_t acc = (uint32_t)wc[0] * centre[i];
        for (int j = 1; j <= r; j++)
            acc += (uint32_t)wc[j]
                   * ((uint32_t)((const uint16_t *)rows[r - j])[i] + ((const uint16_t *)rows[r + j])[i]);
        out[i] = (uint8_t)((acc + (1u << (V_SHIFT - 1))) >> V_SHIFT);
    }
}

void ip__premultiply(const uint8_t *in, size_t width, uint32_t channels, uint16_t *out)
{
    if (channels == 2) {
        for (size_t x = 0; x < width; x++) {
            uint16_t a = in[2 * x + 1];
            out[2 * x] = (uint16_t)(in[2 * x] * a);
            out[2 * x + 1] = a;
        }
    } else {
        for (size_t x = 0; x < width; x++) {
            uint16_t a = in[4 * x + 3];
            out[4 * x] = (uint16_t)(in[4 * x] * a);
            out[4 * x + 1] = (uint16_t)(in[4 * x + 1] * a);
            out[4 * x + 2] = (uint16_t)(in[4 * x + 2] * a);
            out[4 * x + 3] = a;
        }
    }
}

/* Alpha Gaussian in double precision. Premultiplied values (<= 65025) and
 * the sums of two of them are exact in double; the taps are the true
 * weights to double precision, so blur(c a) / blur(a) is within ~1e-13 of
 * the exact ratio even where the alpha in a window sits on tail taps
 * (sparse alpha), and blur(a) is zero exactly where every alpha is. Every
 * element is computed with the same operations in the same order on every
 * path (taps outer, elements inner; no FMA: -ffp-contract=off), so the AVX2
 * and baseline builds of the body below give the same bits. */
#define ALPHA_CHUNK 256

IP__KERNEL_BODY void gauss_h_alpha_body(const uint16_t *pad, size_t n, size_t step, const double *wc, int r,
                                        double *restrict out)
{
    const uint16_t *centre = pad + (size_t)r * step;

    for (size_t i0 = 0; i0 < n; i0 += ALPHA_CHUNK) {
        const size_t len = n - i0 < ALPHA_CHUNK ? n - i0 : ALPHA_CHUNK;
        const uint16_t *c = centre + i0;
        double *restrict acc = out + i0;

        for (size_t i = 0; i < len; i++)
            acc[i] = wc[0] * (double)c[i];
        for (int j = 1; j <= r; j++) {
            const uint16_t *a = c + (size_t)j * step, *b = c - (size_t)j * step;
            const double w = wc[j];
            for (size_t i = 0; i < len; i++)
                acc[i] += w * ((double)a[i] + (double)b[i]);
        }
    }
}

IP__TARGET_AVX2
static void gauss_h_alpha_avx2(const uint16_t *pad, size_t n, size_t step, const double *wc, int r,
                               double *restrict out)
{
    gauss_h_alpha_body(pad, n, step, wc, r, out);
}

static void gauss_h_alpha_base(const uint16_t *pad, size_t n, size_t step, const double *wc, int r,
                               double *restrict out)
{
    gauss_h_alpha_body(pad, n, step, wc, r, out);
}

void ip__gauss_h_alpha(const uint16_t *pad, size_t n, size_t step, const double *wc, int r, double *out)
{
    if (ip__simd_level() >= 2)
        gauss_h_alpha_avx2(pad, n, step, wc, r, out);
    else
        gauss_h_alpha_base(pad, n, step, wc, r, out);
}

/* round-half-up of v >= 0 (NaN-free by construction), clamped to 255. */
static inline uint8_t level_of(double v)
{
    uint32_t q = (uint32_t)(v + 0.5);
    return (uint8_t)(q > 255 ? 255 : q);
}

IP__KERNEL_BODY void gauss_v_alpha_body(const void *const *rows, size_t width, uint32_t channels,
                                        const double *wc, int r, uint8_t *restrict out)
{
    const size_t n = width * channels;
    const size_t chunk = ALPHA_CHUNK - ALPHA_CHUNK % channels;   /* whole pixels */
    double acc[ALPHA_CHUNK], den[ALPHA_CHUNK];

    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t len = n - i0 < chunk ? n - i0 : chunk;
        const double *c0 = (const double *)rows[r] + i0;

        for (size_t i = 0; i < len; i++)
            acc[i] = wc[0] * c0[i];
        for (int j = 1; j <= r; j++) {
            const double *a = (const double *)rows[r - j] + i0;
            const double *b = (const double *)rows[r + j] + i0;
            const double w = wc[j];
            for (size_t i = 0; i < len; i++)
                acc[i] += w * (a[i] + b[i]);
        }
        /* Each element over its divisor: the pixel's alpha sum for colour
         * (1 where it is 0: the colour sums are then 0 too), 1 for alpha.
         * Then one vectorisable loop of divisions and roundings. */
        if (channels == 2) {
            for (size_t i = 0; i < len; i += 2) {
                const double alpha = acc[i + 1];
                den[i] = alpha > 0 ? alpha : 1.0;
                den[i + 1] = 1.0;
            }
        } else {
            for (size_t i = 0; i < len; i += 4) {
                const double alpha = acc[i + 3], d = alpha > 0 ? alpha : 1.0;
                den[i] = d;
                den[i + 1] = d;
                den[i + 2] = d;
                den[i + 3] = 1.0;
            }
        }
        for (size_t i = 0; i < len; i++)
            out[i0 + i] = level_of(acc[i] / den[i]);
    }
}

IP__TARGET_AVX2
static void gauss_v_alpha_avx2(const void *const *rows, size_t width, uint32_t channels, const double *wc,
                               int r, uint8_t *restrict out)
{
    gauss_v_alpha_body(rows, width, channels, wc, r, out);
}

static void gauss_v_alpha_base(const void *const *rows, size_t width, uint32_t channels, const double *wc,
                               int r, uint8_t *restrict out)
{
    gauss_v_alpha_body(rows, width, channels, wc, r, out);
}

void ip__gauss_v_alpha(const void *const *rows, size_t width, uint32_t channels, const double *wc, int r,
                       uint8_t *out)
{
    if (ip__simd_level() >= 2)
        gauss_v_alpha_avx2(rows, width, channels, wc, r, out);
    else
        gauss_v_alpha_base(rows, width, channels, wc, r, out);
}

/* Colour channels of one pixel from premultiplied sums on a common scale:
 * round(colour / alpha) half up, 0 where alpha is 0. Needs colour <= 255 alpha
 * and alpha < 2^52 (box sums are below 2^36). One division per pixel: the quotient through a double
 * reciprocal is off by at most one, and an exact integer test corrects it. */
static void unpremultiply(const uint64_t *colour, uint32_t count, uint64_t alpha, uint8_t *out)
{
    uint64_t den = 2 * alpha;
    double inv;

    if (!alpha) {
        memset(out, 0, count);
        return;
    }
    inv = 1.0 / (double)den;
    for (uint32_t c = 0; c < count; c++) {
        uint64_t num = 2 * colour[c] + alpha;
        uint64_t q = (uint64_t)((double)num * inv);
        if (q * den > num)
            q--;
        else if ((q + 1) * den <= num)
            q++;
        out[c] = (uint8_t)q;
    }
}

/* Sliding window along the row, one running sum per channel; the body of
 * both element types (pixels, and premultiplied uint16 for alpha). */
#define BOX_H(pad, width, channels, r, out)                                       \
    do {                                                                          \
        const size_t span_ = (size_t)(2 * (r) + 1) * (channels);                  \
        for (uint32_t c_ = 0; c_ < (channels); c_++) {                            \
            uint32_t s_ = 0;                                                      \
            for (size_t t_ = c_; t_ < span_; t_ += (channels))                    \
                s_ += (pad)[t_];                                                  \
            (out)[c_] = s_;                                                       \
            for (size_t i_ = c_ + (channels); i_ < (width) * (channels); i_ += (channels)) { \
                s_ += (uint32_t)(pad)[i_ - (channels) + span_] - (pad)[i_ - (channels)]; \
                (out)[i_] = s_;                                                   \
            }                                                                     \
        }                                                                         \
    } while (0)

void ip__box_h(const uint8_t *pad, size_t width, uint32_t channels, int r, uint32_t *out)
{
    BOX_H(pad, width, channels, r, out);
}

void ip__box_h_alpha(const uint16_t *pad, size_t width, uint32_t channels, int r, uint32_t *out)
{
    BOX_H(pad, width, channels, r, out);
}

IP__KERNEL_BODY void box_v_step(uint32_t *restrict sum, const uint32_t *add,
                                const uint32_t *sub, size_t n)
{
    if (sub) {
        for (size_t i = 0; i < n; i++)
            sum[i] += add[i] - sub[i];
    } else {
        for (size_t i = 0; i < n; i++)
            sum[i] += add[i];
    }
}

IP__TARGET_AVX2
static void box_v_step_avx2(uint32_t *restrict sum, const uint32_t *add, const uint32_t *sub,
                            size_t n)
{
    box_v_step(sum, add, sub, n);
}

static void box_v_step_base(uint32_t *restrict sum, const uint32_t *add, const uint32_t *sub,
                            size_t n)
{
    box_v_step(sum, add, sub, n);
}

void ip__box_v_step(uint32_t *sum, const uint32_t *add, const uint32_t *sub, size_t n)
{
    if (ip__simd_level() >= 2)
        box_v_step_avx2(sum, add, sub, n);
    else
        box_v_step_base(sum, add, sub, n);
}

void ip__box_v_step_alpha(uint64_t *restrict sum, const uint32_t *add, const uint32_t *sub,
                          size_t n)
{
    if (sub) {
        for (size_t i = 0; i < n; i++)
            sum[i] += (uint64_t)add[i] - sub[i];
    } else {
        for (size_t i = 0; i < n; i++)
            sum[i] += add[i];
    }
}

/* Window sums are below (2*300+1)^2 * 255 < 2^27: they fit int32, which
 * converts to double in SIMD without help. */
IP__KERNEL_BODY void box_v_out(const uint32_t *sum, size_t n, int r, uint8_t *restrict out)
{
    const int32_t area = (2 * r + 1) * (2 * r + 1);
    const int32_t half = area / 2;
    const double inv = 1.0 / area, nudge = 0.5 / area;

    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(int32_t)((double)((int32_t)sum[i] + half) * inv + nudge);
}

IP__TARGET_AVX2
static void box_v_out_avx2(const uint32_t *sum, size_t n, int r, uint8_t *restrict out)
{
    box_v_out(sum, n, r, out);
}

static void box_v_out_base(const uint32_t *sum, size_t n, int r, uint8_t *restrict out)
{
    box_v_out(sum, n, r, out);
}

void ip__box_v_out(const uint32_t *sum, size_t n, int r, uint8_t *out)
{
    if (ip__simd_level() >= 2)
        box_v_out_avx2(sum, n, r, out);
    else
        box_v_out_base(sum, n, r, out);
}

void ip__box_v_out_alpha(const uint64_t *sum, size_t width, uint32_t channels, int r,
                         uint8_t *out)
{
    const uint64_t area = (uint64_t)(2 * r + 1) * (uint64_t)(2 * r + 1);

    for (size_t x = 0; x < width; x++) {
        const uint64_t *s = sum + x * channels;
        uint64_t alpha = s[channels - 1];
        unpremultiply(s, channels - 1, alpha, out + x * channels);
        out[x * channels + channels - 1] = (uint8_t)((alpha + area / 2) / area);
    }
}
