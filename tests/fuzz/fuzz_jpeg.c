/* libFuzzer target: the JPEG decoder (libjpeg-turbo through
 * codec_jpeg.c), strict, with allow_truncated, and luma-only. Inputs
 * without the SOI marker get FF D8 FF prepended.
 *
 * Differential check of the strip decoder (codec_jpeg_strips.c), with the
 * size threshold at zero so that every file with a plan is decoded by
 * strips, one restart segment each (or, without restart markers, strips
 * whose starts speculative decoding found in chunks of 2 KiB): whenever
 * all strips decode, the whole decode (strict, same options) must have
 * succeeded with the same pixels.
 *
 * Differential check of the progressive fast path (codec_jpeg_prog.c):
 * whenever it decoded the image, libjpeg alone, and the fast path with its
 * portable block decoders instead of the BMI2 ones, must give the same
 * result and pixels.
 *
 * Decoding straight to gray (opts.gray) must give the colour decode's
 * result, and its gray, whole and by strips. */
#include <stdio.h>

#include <jpeglib.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "fuzz_common.h"

static void check_prog(const uint8_t *buf, size_t len, struct ip_decode_opts *opts, int fast_rc,
                       const struct ip_image *fast)
{
    /* libjpeg alone (0), then the fast path's portable block decoders (2). */
    for (int mode = 0; mode <= 2; mode += 2) {
        struct fuzz_counts counts = {0};
        struct ip_image img;
        int rc;

        ip__jpeg_prog_set_enabled(mode);
        rc = fuzz_decode(buf, len, opts, &img, &counts);
        ip__jpeg_prog_set_enabled(1);
        FUZZ_ASSERT(rc == fast_rc);
        if (rc == 0) {
            FUZZ_ASSERT(img.width == fast->width && img.height == fast->height &&
                        img.channels == fast->channels);
            FUZZ_ASSERT(memcmp(img.pixels, fast->pixels, img.stride * img.height) == 0);
        }
        fuzz_image_free(&img, &counts);
    }
}

static void check_strips(const uint8_t *buf, size_t len, const struct ip_decode_opts *opts, int whole_rc,
                         const struct ip_image *whole)
{
    struct ip__jpeg_plan *plan;
    struct ip_image img;
    struct ip_error err;
    int ok = 1;

    ip__png_strip_min = 0;
    plan = ip__jpeg_plan_strips(buf, len, opts);
    if (!plan)
        return;
    img = ip__jpeg_plan_shape(plan);
    FUZZ_ASSERT(img.width > 0 && img.height > 0 && img.channels >= 1 && img.channels <= 3);
    if ((uint64_t)img.width * img.height > FUZZ_MAX_PIXELS || img.width > FUZZ_MAX_DIM ||
        img.height > FUZZ_MAX_DIM) {
        ip__jpeg_plan_free(plan);
        return;
    }
    /* Without restart markers: the strips' starts found by speculative
     * decoding, in chunks small enough that most inputs have several. */
    ip__jpeg_seq_chunk = 2048;
    ok = ip__jpeg_plan_prepare(plan) == 0;
    img.stride = (size_t)img.width * img.channels;
    img.pixels = malloc(img.stride * img.height);
    FUZZ_ASSERT(img.pixels != NULL);
    for (uint32_t k = ip__jpeg_plan_count(plan); k-- > 0 && ok;)
        ok = ip__jpeg_plan_decode(plan, k, &img, &err) == 0;
    if (ok) {
        FUZZ_ASSERT(whole_rc == 0);
        FUZZ_ASSERT(whole->width == img.width && whole->height == img.height && whole->channels == img.channels);
        FUZZ_ASSERT(memcmp(whole->pixels, img.pixels, img.stride * img.height) == 0);
    }
    free(img.pixels);
    ip__jpeg_plan_free(plan);
}

/* Decoding straight to gray (opts.gray = 601): the same result as the
 * colour decode, and the pixels its Rec.601 gray (formula written out). */
static void check_gray(const uint8_t *buf, size_t len, int colour_rc, const struct ip_image *colour)
{
    struct fuzz_counts counts = {0};
    struct ip_decode_opts opts;
    struct ip_image img;
    int rc;

    fuzz_opts(&opts, IP_DECODER_NATIVE, 0);
    opts.gray = 601;
    rc = fuzz_decode(buf, len, &opts, &img, &counts);
    FUZZ_ASSERT(rc == colour_rc);
    if (rc == 0) {
        FUZZ_ASSERT(img.channels == 1 && img.width == colour->width && img.height == colour->height);
        for (uint32_t y = 0; y < img.height; y++) {
            const uint8_t *in = colour->pixels + (size_t)y * colour->stride;
            const uint8_t *out = img.pixels + (size_t)y * img.stride;

            for (uint32_t x = 0; x < img.width; x++) {
                unsigned want = colour->channels == 1 ? in[x]
                                : (299u * in[3 * x] + 587u * in[3 * x + 1] + 114u * in[3 * x + 2] + 500u) / 1000u;

                FUZZ_ASSERT(out[x] == want);
            }
        }
        check_strips(buf, len, &opts, rc, &img);
    }
    fuzz_image_free(&img, &counts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_counts counts = {0};
    struct ip_decode_opts opts;
    struct ip_image img;
    size_t len;
    uint8_t *buf;

    if (size > (1u << 20))
        return 0;
    buf = fuzz_with_magic(data, size, "\xff\xd8\xff", 3, &len);
    if (!buf)
        return 0;
    for (int mode = 0; mode < 3; mode++) {
        int rc;

        fuzz_opts(&opts, IP_DECODER_NATIVE, mode == 1);
        opts.jpeg_luma_only = mode == 2;
        unsigned long fast_before = ip__jpeg_prog_images();

        rc = fuzz_decode(buf, len, &opts, &img, &counts);
        if (ip__jpeg_prog_images() != fast_before)
            check_prog(buf, len, &opts, rc, &img);
        if (mode != 1)
            check_strips(buf, len, &opts, rc, &img);
        if (mode == 0)
            check_gray(buf, len, rc, &img);
        fuzz_image_free(&img, &counts);
    }
    free(buf);
    return 0;
}
