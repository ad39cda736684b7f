/* libFuzzer target: the JPEG decoder (libjpeg-turbo through
 * codec_jpeg.c), strict, with allow_truncated, and luma-only. Inputs
 * without the SOI marker get FF D8 FF prepended. */
#include "fuzz_common.h"

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
        fuzz_opts(&opts, IP_DECODER_NATIVE, mode == 1);
        opts.jpeg_luma_only = mode == 2;
        fuzz_decode(buf, len, &opts, &img, &counts);
        fuzz_image_free(&img, &counts);
    }
    free(buf);
    return 0;
}
