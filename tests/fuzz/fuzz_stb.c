/* libFuzzer target: everything that goes through stb_image (codec_stb.c):
 * BMP, GIF, PNM, PSD, TGA, HDR, and PNG/JPEG with --decoder=stb, strict
 * and with allow_truncated. The input is used as it is: format detection
 * by magic bytes (and the TGA probe) is part of what is fuzzed. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_counts counts = {0};
    struct ip_decode_opts opts;
    struct ip_image img;
    uint8_t *buf;

    if (size > (1u << 20))
        return 0;
    /* An exact-size copy: libFuzzer's buffer is exact too, but this keeps
     * the targets alike. */
    buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    for (int allow = 0; allow < 2; allow++) {
        fuzz_opts(&opts, IP_DECODER_STB, allow);
        fuzz_decode(buf, size, &opts, &img, &counts);
        fuzz_image_free(&img, &counts);
    }
    free(buf);
    return 0;
}
