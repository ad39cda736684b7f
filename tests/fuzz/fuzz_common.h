/* Shared by the libFuzzer targets: a decode with a counting allocator and
 * the invariants every ip_decode call must keep, whatever the input.
 *
 * On success: a sane shape, err.code 0, pixels from our allocator. On
 * failure: a negative code equal to err.code, a non-empty reason, a zeroed
 * image and no pixel buffer left. Any violation aborts, which libFuzzer
 * records as a crash (ASan and UBSan catch memory errors and undefined
 * behaviour; LeakSanitizer checks every input for leaks). */
#ifndef IMGPAR_FUZZ_COMMON_H
#define IMGPAR_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"

/* Small limits keep each input fast and bounded (the fuzzer's RSS limit
 * is 2 GiB): 4 Mpixels, 4096 per side, 1 MiB of input. */
#define FUZZ_MAX_PIXELS (4u << 20)
#define FUZZ_MAX_DIM 4096u

/* Under ASan, every allocation is filled with 0xbe (ASan's default fill
 * covers only the first 4 KiB), so that code reading uninitialised heap
 * memory fails the same way on every run instead of depending on what an
 * earlier input left there. ASAN_OPTIONS still overrides it. Included by
 * exactly one file of each target. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_malloc_fill_size=268435456";
}

#define FUZZ_ASSERT(cond)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                               \
        }                                                                          \
    } while (0)

struct fuzz_counts {
    long live;
};

static inline int fuzz_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err)
{
    struct fuzz_counts *c = ctx;

    FUZZ_ASSERT(shape->width > 0 && shape->height > 0);
    FUZZ_ASSERT(shape->width <= FUZZ_MAX_DIM && shape->height <= FUZZ_MAX_DIM);
    FUZZ_ASSERT((uint64_t)shape->width * shape->height <= FUZZ_MAX_PIXELS);
    FUZZ_ASSERT(shape->channels >= 1 && shape->channels <= 4);
    /* The image's stride, or one more byte per row where the PNG fast path
     * inflates into the buffer (the decoded image's stride is checked below). */
    FUZZ_ASSERT(shape->stride == (size_t)shape->width * shape->channels ||
                shape->stride == (size_t)shape->width * shape->channels + 1);
    *pixels = malloc(shape->stride * shape->height);
    if (!*pixels)
        return ip_error_set(err, IP_ENOMEM, "fuzz allocator: out of memory");
    c->live++;
    return 0;
}

static inline void fuzz_free(void *ctx, uint8_t *pixels)
{
    struct fuzz_counts *c = ctx;

    free(pixels);
    c->live--;
}

static inline void fuzz_opts(struct ip_decode_opts *opts, enum ip_decoder decoder, int allow_truncated)
{
    ip_decode_opts_default(opts);
    opts->limits.max_pixels = FUZZ_MAX_PIXELS;
    opts->limits.max_dim = FUZZ_MAX_DIM;
    opts->limits.max_file_size = 1u << 20;
    opts->decoder = decoder;
    opts->allow_truncated = allow_truncated;
}

/* Decodes with a counting allocator and checks the contract. Returns rc;
 * on success *img holds pixels the caller frees with fuzz_image_free. */
static inline int fuzz_decode(const uint8_t *data, size_t len, struct ip_decode_opts *opts,
                       struct ip_image *img, struct fuzz_counts *counts)
{
    struct ip_allocator alloc;
    struct ip_error err;
    enum ip_format fmt;
    int rc;

    alloc.alloc = fuzz_alloc;
    alloc.free = fuzz_free;
    alloc.ctx = counts;
    opts->allocator = &alloc;
    rc = ip_decode(data, len, opts, img, &fmt, &err);
    if (rc == 0) {
        FUZZ_ASSERT(err.code == 0);
        FUZZ_ASSERT(img->pixels != NULL);
        FUZZ_ASSERT(counts->live == 1);
        FUZZ_ASSERT(img->width > 0 && img->height > 0);
        FUZZ_ASSERT(img->channels >= 1 && img->channels <= 4);
        FUZZ_ASSERT(img->stride == (size_t)img->width * img->channels);
        /* A warning only when truncation was allowed. */
        FUZZ_ASSERT(err.msg[0] == '\0' || opts->allow_truncated);
        /* Touch every byte: an uninitialised or short buffer shows up under ASan/MSan. */
        {
            volatile uint8_t sink = 0;
            size_t n = img->stride * img->height;
            for (size_t i = 0; i < n; i += 61)
                sink ^= img->pixels[i];
            sink ^= img->pixels[n - 1];
            (void)sink;
        }
    } else {
        FUZZ_ASSERT(rc < 0);
        FUZZ_ASSERT(err.code == rc);
        FUZZ_ASSERT(err.msg[0] != '\0');
        FUZZ_ASSERT(strchr(err.msg, '\n') == NULL);
        FUZZ_ASSERT(img->pixels == NULL && img->width == 0 && img->height == 0);
        FUZZ_ASSERT(counts->live == 0);
    }
    return rc;
}

static inline void fuzz_image_free(struct ip_image *img, struct fuzz_counts *counts)
{
    if (img->pixels)
        fuzz_free(counts, img->pixels);
    memset(img, 0, sizeof *img);
    FUZZ_ASSERT(counts->live == 0);
}

/* Copies data behind a fixed signature (so the fuzzer stays in one format)
 * into a fresh exactly-sized buffer (so ASan sees any read past the end). */
static inline uint8_t *fuzz_with_magic(const uint8_t *data, size_t len, const char *magic, size_t mlen,
                                size_t *out_len)
{
    uint8_t *buf;

    if (len >= mlen && memcmp(data, magic, mlen) == 0) {
        buf = malloc(len ? len : 1);
        if (buf && len)
            memcpy(buf, data, len);
        *out_len = len;
        return buf;
    }
    buf = malloc(len + mlen);
    if (!buf)
        return NULL;
    memcpy(buf, magic, mlen);
    if (len)
        memcpy(buf + mlen, data, len);
    *out_len = len + mlen;
    return buf;
}

#endif
