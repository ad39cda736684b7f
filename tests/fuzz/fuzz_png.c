/* libFuzzer target: the PNG decoder (libpng through codec_png.c, and the
 * IHDR pre-check in codec.c), strict and with allow_truncated. Inputs
 * without the PNG signature get it prepended. */
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
    buf = fuzz_with_magic(data, size, "\x89PNG\r\n\x1a\n", 8, &len);
    if (!buf)
        return 0;
    for (int allow = 0; allow < 2; allow++) {
        fuzz_opts(&opts, IP_DECODER_NATIVE, allow);
        fuzz_decode(buf, len, &opts, &img, &counts);
        fuzz_image_free(&img, &counts);
    }
    free(buf);
    return 0;
}
