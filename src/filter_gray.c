/* Luma kernel.
 *
 * DESIGN: a pure per-row function called by the band engine (filter.c) on
 * whatever thread or process runs the band; it owns nothing. The weights are
 * the exact decimal ones with half-up rounding:
 *   Rec.601  Y = (299 R + 587 G + 114 B + 500) / 1000
 *   Rec.709  Y = (2126 R + 7152 G + 722 B + 5000) / 10000
 * The divisions are by constants, which gcc turns into multiply-shift and
 * vectorizes; the loops are built twice (AVX2 and baseline) and picked per
 * call by ip__simd_level(). Integer results are the same on both paths. */
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

IP__TARGET_AVX2
static void gray_avx2(const uint8_t *restrict in, uint8_t *restrict out, size_t width,
                      uint32_t channels, enum ip_gray_weights weights)
{
    gray_rows(in, out, width, channels, weights);
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
