/* Row kernels shared between filter.c (the band engine) and the per-filter
 * files. Every kernel is a pure function of its input rows; all arithmetic is
 * integer (or provably exact), except the alpha Gaussian, which is double
 * precision with a fixed order of operations; so SIMD and scalar paths give
 * identical bytes.
 *
 * Layout conventions:
 *  - A "pad" row holds width + 2r pixels: pixel x of the image row sits at
 *    pad[(x + r) * channels], the margins are REFLECT_101 copies.
 *  - wc points at the centre tap of a symmetric Gaussian kernel: wc[j] is the
 *    weight of offsets -j and +j, j = 0..r (wc = filter->taps + r).
 *  - rows[0..2r] are the 2r+1 rows (already reflected) a vertical pass reads,
 *    rows[r] is the centre row; their element type is the kernel's. */
#ifndef IMGPAR_FILTER_INTERNAL_H
#define IMGPAR_FILTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "imgpar/filter.h"

/* Fractional bits of the uint16 rows between the two Gaussian passes. */
#define IP__GAUSS_MID_BITS 7

/* BORDER_REFLECT_101 index into [0, n), applied repeatedly when i is further
 * than one period outside; n == 1 maps everything to 0. */
static inline uint32_t ip__reflect101(int64_t i, uint32_t n)
{
    int64_t period;

    if (n <= 1)
        return 0;
    period = 2 * ((int64_t)n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return (uint32_t)(i >= (int64_t)n ? period - i : i);
}

/* Run-time SIMD dispatch. Hot kernels come in an AVX2 build and a baseline
 * build of the same integer code (plus hand-written SSE2 for the Gaussian),
 * picked per call by ip__simd_level(): 2 AVX2, 1 SSE2 (x86-64 baseline),
 * 0 portable C. Dispatch is by hand rather than with target_clones because
 * ifunc resolvers run before the ThreadSanitizer runtime is up and crash a
 * -Db_sanitize=thread build at start-up.
 * ip__simd_limit caps the level, so tests can compare every path; it is not
 * meant to change while kernels run. */
void ip__simd_limit(int level);
int ip__simd_level(void);

/* Marks the shared body of a kernel that is built twice: inlined into an
 * AVX2 wrapper (IP__TARGET_AVX2) and a baseline one. Off x86 the "AVX2"
 * wrapper is a plain copy that ip__simd_level() never selects. */
#define IP__KERNEL_BODY static inline __attribute__((always_inline))
#if defined(__x86_64__) || defined(__i386__)
#define IP__TARGET_AVX2 __attribute__((target("avx2")))
#else
#define IP__TARGET_AVX2
#endif

/* filter_gray.c: luma of one row. channels 3 -> 1, 4 -> 2 (alpha kept). */
void ip__gray_row(const uint8_t *in, uint8_t *out, size_t width, uint32_t channels,
                  enum ip_gray_weights weights);

/* filter_blur.c: radius ceil(3 sigma), clamped to 1..IP_BLUR_MAX_RADIUS. */
int ip__gauss_radius(double sigma);
/* Gaussian taps for sigma (radius ceil(3 sigma), 2r+1 taps
 * summing to 1 << IP_GAUSS_SHIFT, rounding residue in the centre). */
void ip__gauss_taps(double sigma, int *radius, int32_t *taps);

/* Premultiplies a 2- or 4-channel row: colour c*a, alpha a. */
void ip__premultiply(const uint8_t *in, size_t width, uint32_t channels, uint16_t *out);

/* Gaussian, no alpha. Horizontal: n = width*channels outputs with
 * IP__GAUSS_MID_BITS fractional bits (< 2^15). Vertical: back to 8 bits.
 * Both pick AVX2, SSE2 or portable C at run time; the results are equal. */
void ip__gauss_h(const uint8_t *pad, size_t n, size_t step, const int32_t *wc, int r,
                 uint16_t *out);
void ip__gauss_v(const void *const *rows, size_t n, const int32_t *wc, int r, uint8_t *out);

/* The true half-kernel weights wc[0..r] of sigma (two-sided sum 1): the
 * alpha path's taps, and what ip__gauss_taps quantises. */
void ip__gauss_weights(double sigma, int r, double *wc);
/* Gaussian, premultiplied alpha, in double precision (see filter_blur.c)
 * with the weights above. Horizontal keeps the sums; vertical divides
 * colour by alpha. */
void ip__gauss_h_alpha(const uint16_t *pad, size_t n, size_t step, const double *wc, int r, double *out);
void ip__gauss_v_alpha(const void *const *rows, size_t width, uint32_t channels, const double *wc, int r,
                       uint8_t *out);
/* Box. Horizontal window sums of 2r+1 pixels from a pad row (uint8, or
 * premultiplied uint16 for alpha images). */
void ip__box_h(const uint8_t *pad, size_t width, uint32_t channels, int r, uint32_t *out);
void ip__box_h_alpha(const uint16_t *pad, size_t width, uint32_t channels, int r, uint32_t *out);
/* Running vertical sums: sum += add - sub (sub may be NULL). Modular
 * arithmetic, exact once the window is complete. */
void ip__box_v_step(uint32_t *sum, const uint32_t *add, const uint32_t *sub, size_t n);
void ip__box_v_step_alpha(uint64_t *sum, const uint32_t *add, const uint32_t *sub, size_t n);
/* Rounded means of the (2r+1)^2 window sums. */
void ip__box_v_out(const uint32_t *sum, size_t n, int r, uint8_t *out);
void ip__box_v_out_alpha(const uint64_t *sum, size_t width, uint32_t channels, int r,
                         uint8_t *out);

#endif
