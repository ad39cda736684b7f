/* Pixel kernels and the filter chain.
 *
 * Kernels are pure functions over rows: ip_chain_run_rows computes any band
 * of output rows from the whole source image, reading only the rows it needs
 * (the halo), so an executor may cut an image into strips and get exactly
 * the bytes of a whole-image run. All arithmetic is integer, so the result
 * does not depend on strips, threads or the SIMD path taken. */
#ifndef IMGPAR_FILTER_H
#define IMGPAR_FILTER_H

#include <stdint.h>
#include "imgpar/error.h"
#include "imgpar/image.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ip_filter_kind {
    IP_FILTER_GRAY,   /* luma; alpha kept: RGB->gray, RGBA->gray+alpha, gray unchanged */
    IP_FILTER_GAUSS,  /* separable Gaussian blur, radius ceil(3*sigma) */
    IP_FILTER_BOX,    /* box blur of (2r+1)^2, exact rounding */
};

enum ip_gray_weights {
    IP_GRAY_601 = 601,  /* 0.299 R + 0.587 G + 0.114 B */
    IP_GRAY_709 = 709,  /* 0.2126 R + 0.7152 G + 0.0722 B */
};

#define IP_CHAIN_MAX 16
#define IP_BLUR_MAX_RADIUS 300   /* sigma up to 100 */
#define IP_GAUSS_SHIFT 14        /* Gaussian taps sum to 1 << IP_GAUSS_SHIFT */

struct ip_filter {
    enum ip_filter_kind kind;
    enum ip_gray_weights gray;      /* IP_FILTER_GRAY */
    double sigma;                   /* IP_FILTER_GAUSS */
    int radius;                     /* rows/columns each side the kernel reads */
    int32_t taps[2 * IP_BLUR_MAX_RADIUS + 1]; /* IP_FILTER_GAUSS: fixed-point weights, sum 1<<IP_GAUSS_SHIFT */
};

/* Filters applied in order. Plain data: safe to copy and to share with forked workers. */
struct ip_chain {
    int count;
    struct ip_filter filters[IP_CHAIN_MAX];
};

void ip_chain_init(struct ip_chain *chain);
int ip_chain_add_gray(struct ip_chain *chain, enum ip_gray_weights weights);
int ip_chain_add_gauss(struct ip_chain *chain, double sigma);   /* 0 < sigma <= 100 */
int ip_chain_add_box(struct ip_chain *chain, int radius);        /* 1 <= radius <= IP_BLUR_MAX_RADIUS */
/* The default chain: gray (Rec.601) then Gaussian sigma 2. */
void ip_chain_default(struct ip_chain *chain);

/* Channels of the chain's output for an input with in_channels. */
uint32_t ip_chain_out_channels(const struct ip_chain *chain, uint32_t in_channels);

/* Rows each side of a band that the whole chain reads (sum of radii). */
uint32_t ip_chain_halo(const struct ip_chain *chain);

/* Per-thread working memory for ip_chain_run_rows; reused across calls to
 * avoid allocation on the hot path. Owned by the caller. */
struct ip_scratch;
struct ip_scratch *ip_scratch_new(void);
void ip_scratch_free(struct ip_scratch *scratch);

/* Computes output rows [y0, y1) of the chain applied to src into the same rows
 * of dst (dst: same width and height, ip_chain_out_channels channels).
 * Reads only src, writes only dst rows y0..y1-1: bands may run concurrently.
 * Edges mirror without repeating the edge pixel (BORDER_REFLECT_101).
 * scratch may be NULL (allocated and freed inside). With an empty chain it copies. */
int ip_chain_run_rows(const struct ip_chain *chain, const struct ip_image *src,
                      struct ip_image *dst, uint32_t y0, uint32_t y1, struct ip_scratch *scratch);

/* Whole image: ip_chain_run_rows(chain, src, dst, 0, height, scratch). */
int ip_chain_run(const struct ip_chain *chain, const struct ip_image *src,
                 struct ip_image *dst, struct ip_scratch *scratch);

#ifdef __cplusplus
}
#endif
#endif
