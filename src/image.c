/* Image limits, overflow-safe sizes, plain heap images. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/image.h"

void ip_limits_default(struct ip_limits *limits)
{
    limits->max_pixels = IP_DEFAULT_MAX_PIXELS;
    limits->max_dim = IP_DEFAULT_MAX_DIM;
    limits->max_file_size = IP_DEFAULT_MAX_FILE_SIZE;
}

int ip_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int ip_image_check(uint32_t width, uint32_t height, uint32_t channels,
                   const struct ip_limits *limits, size_t *bytes, struct ip_error *err)
{
    struct ip_limits def;
    size_t pixels, total;

    if (!limits) {
        ip_limits_default(&def);
        limits = &def;
    }
    if (width == 0 || height == 0)
        return ip_error_set(err, IP_ECORRUPT, "image has zero size %ux%u", width, height);
    if (channels < 1 || channels > 4)
        return ip_error_set(err, IP_EINVAL, "unsupported channel count %u", channels);
    if (width > limits->max_dim || height > limits->max_dim)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u exceeds --max-dim %u",
                            width, height, limits->max_dim);
    if (ip_mul_size(width, height, &pixels) != 0 || pixels > limits->max_pixels)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u exceeds --max-pixels %llu",
                            width, height, (unsigned long long)limits->max_pixels);
    if (ip_mul_size(pixels, channels, &total) != 0)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u too large for this machine", width, height);
    if (bytes)
        *bytes = total;
    return 0;
}

int ip_image_alloc(struct ip_image *img, uint32_t width, uint32_t height, uint32_t channels,
                   const struct ip_limits *limits, struct ip_error *err)
{
    size_t bytes = 0;
    int rc = ip_image_check(width, height, channels, limits, &bytes, err);

    memset(img, 0, sizeof *img);
    if (rc)
        return rc;
    img->pixels = malloc(bytes);
    if (!img->pixels)
        return ip_error_set(err, IP_ENOMEM, "out of memory for %ux%u image", width, height);
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->stride = (size_t)width * channels;
    return 0;
}

void ip_image_free(struct ip_image *img)
{
    if (img) {
        free(img->pixels);
        memset(img, 0, sizeof *img);
    }
}
