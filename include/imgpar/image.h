/* The image model: 8-bit samples, 1 to 4 interleaved channels
 * (gray, gray+alpha, RGB, RGBA), rows `stride` bytes apart. */
#ifndef IMGPAR_IMAGE_H
#define IMGPAR_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "imgpar/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IP_DEFAULT_MAX_PIXELS (1ull << 28)
#define IP_DEFAULT_MAX_DIM 65535u
#define IP_DEFAULT_MAX_FILE_SIZE (1ull << 30)

/* Caps checked before any allocation. */
struct ip_limits {
    uint64_t max_pixels;     /* width * height */
    uint32_t max_dim;        /* width and height each */
    uint64_t max_file_size;  /* bytes of an input file */
};

struct ip_image {
    uint32_t width, height;
    uint32_t channels;       /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    size_t stride;           /* bytes from one row to the next, >= width * channels */
    uint8_t *pixels;         /* owner: whoever allocated it (see ip_image_alloc) */
};

void ip_limits_default(struct ip_limits *limits);

/* Validates dimensions against limits and computes the tight byte size
 * width*height*channels with overflow checks. Returns 0, or IP_ETOOBIG /
 * IP_EINVAL with a specific reason in err. */
int ip_image_check(uint32_t width, uint32_t height, uint32_t channels,
                   const struct ip_limits *limits, size_t *bytes, struct ip_error *err);

/* Allocates a tight image (stride = width*channels) with malloc after
 * ip_image_check. The caller owns img->pixels and frees it with ip_image_free. */
int ip_image_alloc(struct ip_image *img, uint32_t width, uint32_t height, uint32_t channels,
                   const struct ip_limits *limits, struct ip_error *err);

/* Frees pixels allocated by ip_image_alloc (or by ip_decode with the default
 * allocator) and clears the struct. Safe on a zeroed struct. */
void ip_image_free(struct ip_image *img);

/* Overflow-safe a*b; returns 0 and sets *out, or -1 on overflow. */
int ip_mul_size(size_t a, size_t b, size_t *out);

#ifdef __cplusplus
}
#endif
#endif
