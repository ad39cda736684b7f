/* libFuzzer target: the PNG decoder (libpng through codec_png.c, and the
 * IHDR pre-check in codec.c), strict and with allow_truncated. Inputs
 * without the PNG signature get it prepended. Each input is also decoded
 * as the pipeline's loader does (ip__decode_owned: several IDATs moved
 * together in place, and a strip runner, which a PNG with an ipST chunk
 * uses to inflate its strips apart: here they run on this thread, in
 * reverse order), which must give the same result, and leave the buffer
 * as it was when it fails. Seeds with ipST chunks: seeds/png. And once
 * more from a page-aligned copy that the decoder may give back as it reads
 * it (the runner's give_back, a page at a time here instead of a MiB): the
 * same result, or IP__EREREAD (only when the fast path fails without
 * giving back too: a page given back before it was read reads as zeros,
 * which would make it fail where it did not) and then, decoded again
 * without, the same result. */
#include <sys/mman.h>

#include "codec_internal.h"
#include "fuzz_common.h"

static int run_reversed(void *runner_ctx, uint32_t n, ip__strip_fn fn, void *ctx, struct ip_error *err)
{
    (void)runner_ctx;
    for (uint32_t k = n; k-- > 0;)
        fn(ctx, k, err);
    return 0;
}

/* ip__decode_owned of a page-aligned copy of buf[0..len) that it may give
 * back as it reads it. */
static int decode_giving_back(const uint8_t *buf, size_t len, const struct ip_decode_opts *opts,
                              struct ip_image *out)
{
    struct ip__strip_runner runner = {NULL, NULL, NULL, NULL, 1};
    struct ip_error err;
    uint8_t *copy = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int rc;

    if (copy == MAP_FAILED)
        return 1;
    memcpy(copy, buf, len);
    rc = ip__decode_owned(copy, len, opts, &runner, out, NULL, &err);
    munmap(copy, len);
    return rc;
}

/* The fast path alone on a writable copy, giving nothing back: 0 when it
 * decodes the file. */
static int fast_alone(const uint8_t *buf, size_t len, const struct ip_decode_opts *opts)
{
    struct ip_image img = {0};
    struct ip_error err;
    uint8_t *copy = malloc(len);
    int rc;

    if (!copy)
        return 1;
    memcpy(copy, buf, len);
    ip_error_clear(&err);
    rc = ip__png_decode_fast(copy, len, copy, opts, NULL, &img, &err);
    ip_image_free(&img);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_counts counts = {0};
    struct ip__strip_runner runner = {run_reversed, NULL, NULL, NULL, 0};
    struct ip_decode_opts opts;
    struct ip_image img;
    size_t len;
    uint8_t *buf;

    if (size > (1u << 20))
        return 0;
    buf = fuzz_with_magic(data, size, "\x89PNG\r\n\x1a\n", 8, &len);
    if (!buf)
        return 0;
    for (int allow = 0; allow < 2; allow++) {
        struct ip_image owned;
        struct ip_error err;
        uint8_t *copy = malloc(len);
        int rc, rc_owned;

        if (!copy)
            break;
        memcpy(copy, buf, len);
        fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
        rc = fuzz_decode(buf, len, &opts, &img, &counts);
        fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
        rc_owned = ip__decode_owned(copy, len, &opts, &runner, &owned, NULL, &err);
        FUZZ_ASSERT(rc_owned == rc);
        if (rc == 0)
            FUZZ_ASSERT(owned.width == img.width && owned.height == img.height &&
                        owned.channels == img.channels &&
                        memcmp(owned.pixels, img.pixels, img.stride * img.height) == 0);
        else
            FUZZ_ASSERT(memcmp(copy, buf, len) == 0);
        ip_image_free(&owned);
        free(copy);

        ip__png_give_back_step = 4096;
        fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
        rc_owned = decode_giving_back(buf, len, &opts, &owned);
        if (rc_owned == IP__EREREAD) {
            FUZZ_ASSERT(owned.pixels == NULL);
            fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
            FUZZ_ASSERT(fast_alone(buf, len, &opts) != 0);
            if ((copy = malloc(len)) != NULL) {
                struct ip__strip_runner plain = {NULL, NULL, NULL, NULL, 0};
                memcpy(copy, buf, len);
                fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
                rc_owned = ip__decode_owned(copy, len, &opts, &plain, &owned, NULL, &err);
                free(copy);
            } else {
                rc_owned = rc;   /* out of memory here: nothing to compare */
            }
        }
        if (rc_owned != 1) {   /* 1: no memory for the copy */
            FUZZ_ASSERT(rc_owned == rc);
            if (rc == 0)
                FUZZ_ASSERT(owned.width == img.width && owned.height == img.height &&
                            owned.channels == img.channels &&
                            memcmp(owned.pixels, img.pixels, img.stride * img.height) == 0);
        }
        ip_image_free(&owned);
        fuzz_image_free(&img, &counts);
    }
    free(buf);
    return 0;
}
