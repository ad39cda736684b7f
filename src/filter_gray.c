/* Luma kernel.
 *
 * DESIGN: a pure per-row function called by the band engine (filter.c) on
 * whatever thread or process runs the band; it owns nothing. The weights are
 * the exact decimal ones with half-up rounding:
 *   Rec.601  Y = (299 R + 587 G + 114 B + 500) / 1000
 *   Rec.709  Y = (2126 R + 7152 G + 722 B + 5000) / 10000
 * The divisions are by constants, which gcc turns into multiply-shift and
 * vectorizes; each loop is built twice (AVX2 and baseline) and picked at
 * load time. Integer results are the same on both paths. */
#include <stddef.h>
#include <stdint.h>

#include "filter_internal.h"

#define Y601(r, g, b) ((299u * (r) + 587u * (g) + 114u * (b) + 500u) / 1000u)
#define Y709(r, g, b) ((2126u * (r) + 7152u * (g) + 722u * (b) + 5000u) / 10000u)

__attribute__((target_clones("avx2", "default")))
static void gray601_rgb(const uint8_t *restrict in, uint8_t *restrict out, size_t width)
{
    for (size_t x = 0; x < width; x++)
        out[x] = (uint8_t)Y601(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
}

__attribute__((target_clones("avx2", "default")))
static void gray709_rgb(const uint8_t *restrict in, uint8_t *restrict out, size_t width)
{
    for (size_t x = 0; x < width; x++)
        out[x] = (uint8_t)Y709(in[3 * x], in[3 * x + 1], in[3 * x + 2]);
}

__attribute__((target_clones("avx2", "default")))
static void gray601_rgba(const uint8_t *restrict in, uint8_t *restrict out, size_t width)
{
    for (size_t x = 0; x < width; x++) {
        out[2 * x] = (uint8_t)Y601(in[4 * x], in[4 * x + 1], in[4 * x + 2]);
        out[2 * x + 1] = in[4 * x + 3];
    }
}

__attribute__((target_clones("avx2", "default")))
static void gray709_rgba(const uint8_t *restrict in, uint8_t *restrict out, size_t width)
{
    for (size_t x = 0; x < width; x++) {
        out[2 * x] = (uint8_t)Y709(in[4 * x], in[4 * x + 1], in[4 * x + 2]);
        out[2 * x + 1] = in[4 * x + 3];
    }
}

void ip__gray_row(const uint8_t *in, uint8_t *out, size_t width, uint32_t channels,
                  enum ip_gray_weights weights)
{
    if (channels == 3) {
        if (weights == IP_GRAY_709)
            gray709_rgb(in, out, width);
        else
            gray601_rgb(in, out, width);
    } else if (channels == 4) {
        if (weights == IP_GRAY_709)
            gray709_rgba(in, out, width);
        else
            gray601_rgba(in, out, width);
    }
}
