/* Gaussian and box blur row kernels.
 *
 * DESIGN: pure per-row functions called by the band engine (filter.c), which
 * owns every buffer they read and write (pad rows, ring of horizontal rows,
 * running sums) and decides which rows they see; they run on whatever thread
 * or process runs the band and keep no state.
 *
 * Gaussian without alpha (the hot path):
 *   horizontal  h = (sum_j w_j p[x+j] + 2^5) >> 6        uint16, 8 fraction bits
 *   vertical    y = (sum_j w_j h[y+j] + 2^21) >> 22      back to 8 bits
 * Taps sum to 2^14, so h <= 255 * 2^8 and the vertical sum < 2^31: uint32 is
 * enough. Each loop works on chunks of CHUNK outputs whose accumulators stay
 * in L1, taps outer, pixels inner, so gcc vectorizes the inner loop; the
 * functions are built for AVX2 and the baseline and picked at load time.
 *
 * Alpha images are blurred premultiplied with exact integer sums (uint32
 * after the horizontal pass, uint64 after the vertical pass) and divided per
 * pixel: colour = round(blur(c a) / blur(a)), alpha = round(blur(a)). This is
 * scalar-speed code; alpha images are rare.
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

#define CHUNK 256

void ip__gauss_taps(double sigma, int *radius, int32_t *taps)
{
    double w[IP_BLUR_MAX_RADIUS + 1];
    double total = 0.0;
    int32_t side = 0;
    int r = (int)ceil(3.0 * sigma);

    if (r < 1)
        r = 1;
    if (r > IP_BLUR_MAX_RADIUS)
        r = IP_BLUR_MAX_RADIUS;
    for (int i = 0; i <= r; i++) {
        w[i] = exp(-(double)i * i / (2.0 * sigma * sigma));
        total += i ? 2.0 * w[i] : w[i];
    }
    for (int i = 1; i <= r; i++) {
        int32_t q = (int32_t)floor(w[i] / total * (1 << IP_GAUSS_SHIFT) + 0.5);
        taps[r - i] = taps[r + i] = q;
        side += 2 * q;
    }
    taps[r] = (1 << IP_GAUSS_SHIFT) - side;
    *radius = r;
}

/* GCC vector types: 8 lanes of 32 bits (two SSE registers on the baseline
 * path, one AVX2 register on the other). Loads go through memcpy, so they may
 * be unaligned. Macros, not functions, so that no 32-byte vector crosses a
 * call boundary on the baseline path. */
typedef uint8_t v8u8 __attribute__((vector_size(8)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));

#define LOAD_U8(dst, p)  do { v8u8 t_; memcpy(&t_, (p), sizeof t_); (dst) = __builtin_convertvector(t_, v8u32); } while (0)
#define LOAD_U16(dst, p) do { v8u16 t_; memcpy(&t_, (p), sizeof t_); (dst) = __builtin_convertvector(t_, v8u32); } while (0)

#define H_SHIFT (IP_GAUSS_SHIFT - IP__GAUSS_MID_BITS)
#define V_SHIFT (IP_GAUSS_SHIFT + IP__GAUSS_MID_BITS)

/* 16 outputs per block, accumulators in registers, taps inner. */
__attribute__((target_clones("avx2", "default")))
void ip__gauss_h(const uint8_t *pad, size_t n, size_t step, const int32_t *wc, int r,
                 uint16_t *restrict out)
{
    const uint8_t *centre = pad + (size_t)r * step;
    const uint32_t w0 = (uint32_t)wc[0];
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        v8u32 acc0, acc1, x0, x1, y0, y1;
        LOAD_U8(x0, centre + i);
        LOAD_U8(x1, centre + i + 8);
        acc0 = w0 * x0;
        acc1 = w0 * x1;
        for (int j = 1; j <= r; j++) {
            const uint8_t *a = centre + i - (size_t)j * step, *b = centre + i + (size_t)j * step;
            const uint32_t wj = (uint32_t)wc[j];
            LOAD_U8(x0, a);
            LOAD_U8(x1, a + 8);
            LOAD_U8(y0, b);
            LOAD_U8(y1, b + 8);
            acc0 += wj * (x0 + y0);
            acc1 += wj * (x1 + y1);
        }
        acc0 = (acc0 + (1u << (H_SHIFT - 1))) >> H_SHIFT;
        acc1 = (acc1 + (1u << (H_SHIFT - 1))) >> H_SHIFT;
        {
            v8u16 o0 = __builtin_convertvector(acc0, v8u16);
            v8u16 o1 = __builtin_convertvector(acc1, v8u16);
            memcpy(out + i, &o0, sizeof o0);
            memcpy(out + i + 8, &o1, sizeof o1);
        }
    }
    for (; i < n; i++) {
        uint32_t acc = w0 * centre[i];
        for (int j = 1; j <= r; j++)
            acc += (uint32_t)wc[j] * (uint32_t)(centre[i - (size_t)j * step] + centre[i + (size_t)j * step]);
        out[i] = (uint16_t)((acc + (1u << (H_SHIFT - 1))) >> H_SHIFT);
    }
}

__attribute__((target_clones("avx2", "default")))
void ip__gauss_v(const void *const *rows, size_t n, const int32_t *wc, int r,
                 uint8_t *restrict out)
{
    const uint16_t *centre = rows[r];
    const uint32_t w0 = (uint32_t)wc[0];
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        v8u32 acc0, acc1, x0, x1, y0, y1;
        LOAD_U16(x0, centre + i);
        LOAD_U16(x1, centre + i + 8);
        acc0 = w0 * x0;
        acc1 = w0 * x1;
        for (int j = 1; j <= r; j++) {
            const uint16_t *a = (const uint16_t *)rows[r - j] + i;
            const uint16_t *b = (const uint16_t *)rows[r + j] + i;
            const uint32_t wj = (uint32_t)wc[j];
            LOAD_U16(x0, a);
            LOAD_U16(x1, a + 8);
            LOAD_U16(y0, b);
            LOAD_U16(y1, b + 8);
            acc0 += wj * (x0 + y0);
            acc1 += wj * (x1 + y1);
        }
        acc0 = (acc0 + (1u << (V_SHIFT - 1))) >> V_SHIFT;
        acc1 = (acc1 + (1u << (V_SHIFT - 1))) >> V_SHIFT;
        {
            v8u8 o0 = __builtin_convertvector(acc0, v8u8);
            v8u8 o1 = __builtin_convertvector(acc1, v8u8);
            memcpy(out + i, &o0, sizeof o0);
            memcpy(out + i + 8, &o1, sizeof o1);
        }
    }
    for (; i < n; i++) {
        uint32_t acc = w0 * centre[i];
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

/* Premultiplied values are <= 255*255 and the taps sum to 2^14: sums < 2^30. */
__attribute__((target_clones("avx2", "default")))
void ip__gauss_h_alpha(const uint16_t *pad, size_t n, size_t step, const int32_t *wc, int r,
                       uint32_t *restrict out)
{
    const uint16_t *centre = pad + (size_t)r * step;

    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        const uint16_t *c0 = centre + i0;
        uint32_t acc[CHUNK];
        uint32_t w0 = (uint32_t)wc[0];

        for (size_t i = 0; i < len; i++)
            acc[i] = w0 * c0[i];
        for (int j = 1; j <= r; j++) {
            const uint16_t *a = c0 - (size_t)j * step, *b = c0 + (size_t)j * step;
            uint32_t wj = (uint32_t)wc[j];
            for (size_t i = 0; i < len; i++)
                acc[i] += wj * ((uint32_t)a[i] + b[i]);
        }
        for (size_t i = 0; i < len; i++)
            out[i0 + i] = acc[i];
    }
}

/* colour = round(p / a) half up, 0 where a == 0; p <= 255 a, so no clamp. */
static inline uint8_t unpremultiply(uint64_t p, uint64_t a)
{
    return a ? (uint8_t)((2 * p + a) / (2 * a)) : 0;
}

void ip__gauss_v_alpha(const void *const *rows, size_t width, uint32_t channels,
                       const int32_t *wc, int r, uint8_t *out)
{
    const int shift = 2 * IP_GAUSS_SHIFT;
    const size_t n = width * channels;
    const size_t chunk = CHUNK - CHUNK % channels; /* whole pixels per chunk */

    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t len = n - i0 < chunk ? n - i0 : chunk;
        const uint32_t *c0 = (const uint32_t *)rows[r] + i0;
        uint64_t acc[CHUNK];
        uint64_t w0 = (uint64_t)wc[0];

        for (size_t i = 0; i < len; i++)
            acc[i] = w0 * c0[i];
        for (int j = 1; j <= r; j++) {
            const uint32_t *a = (const uint32_t *)rows[r - j] + i0;
            const uint32_t *b = (const uint32_t *)rows[r + j] + i0;
            uint64_t wj = (uint64_t)wc[j];
            for (size_t i = 0; i < len; i++)
                acc[i] += wj * ((uint64_t)a[i] + b[i]);
        }
        for (size_t i = 0; i < len; i += channels) {
            uint64_t alpha = acc[i + channels - 1];
            for (uint32_t c = 0; c + 1 < channels; c++)
                out[i0 + i + c] = unpremultiply(acc[i + c], alpha);
            out[i0 + i + channels - 1] = (uint8_t)((alpha + (1ull << (shift - 1))) >> shift);
        }
    }
}

/* Sliding window along the row, one running sum per channel. */
void ip__box_h(const uint8_t *pad, size_t width, uint32_t channels, int r, uint32_t *out)
{
    const size_t span = (size_t)(2 * r + 1) * channels;

    for (uint32_t c = 0; c < channels; c++) {
        uint32_t s = 0;
        for (size_t t = c; t < span; t += channels)
            s += pad[t];
        out[c] = s;
        for (size_t i = c + channels; i < width * channels; i += channels) {
            s += (uint32_t)pad[i - channels + span] - pad[i - channels];
            out[i] = s;
        }
    }
}

void ip__box_h_alpha(const uint16_t *pad, size_t width, uint32_t channels, int r, uint32_t *out)
{
    const size_t span = (size_t)(2 * r + 1) * channels;

    for (uint32_t c = 0; c < channels; c++) {
        uint32_t s = 0;
        for (size_t t = c; t < span; t += channels)
            s += pad[t];
        out[c] = s;
        for (size_t i = c + channels; i < width * channels; i += channels) {
            s += (uint32_t)pad[i - channels + span] - pad[i - channels];
            out[i] = s;
        }
    }
}

__attribute__((target_clones("avx2", "default")))
void ip__box_v_step(uint32_t *restrict sum, const uint32_t *add, const uint32_t *sub, size_t n)
{
    if (sub) {
        for (size_t i = 0; i < n; i++)
            sum[i] += add[i] - sub[i];
    } else {
        for (size_t i = 0; i < n; i++)
            sum[i] += add[i];
    }
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
__attribute__((target_clones("avx2", "default")))
void ip__box_v_out(const uint32_t *sum, size_t n, int r, uint8_t *restrict out)
{
    const int32_t area = (2 * r + 1) * (2 * r + 1);
    const int32_t half = area / 2;
    const double inv = 1.0 / area, nudge = 0.5 / area;

    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(int32_t)((double)((int32_t)sum[i] + half) * inv + nudge);
}

void ip__box_v_out_alpha(const uint64_t *sum, size_t width, uint32_t channels, int r,
                         uint8_t *out)
{
    const uint64_t area = (uint64_t)(2 * r + 1) * (uint64_t)(2 * r + 1);

    for (size_t x = 0; x < width; x++) {
        const uint64_t *s = sum + x * channels;
        uint8_t *o = out + x * channels;
        uint64_t alpha = s[channels - 1];
        for (uint32_t c = 0; c + 1 < channels; c++)
            o[c] = unpremultiply(s[c], alpha);
        o[channels - 1] = (uint8_t)((alpha + area / 2) / area);
    }
}
