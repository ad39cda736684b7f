/* libFuzzer target: the whole per-image path of the pipeline, in-process:
 * ip_decode (any format, either decoder) -> ip_chain_run (a chain chosen
 * by the input) -> ip_encode (PNG or JPEG) -> ip_decode of the result,
 * with small limits. The PNG round trip must give back exactly the
 * filtered pixels; the JPEG one the same shape.
 *
 * The last byte of the input picks the settings (and is not part of the
 * image): bit 0 decoder, bit 1 allow_truncated, bits 2-3 the chain, bit 4
 * the output format, bits 5-7 the JPEG quality / PNG level. */
#include "fuzz_common.h"
#include "imgpar/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_counts counts = {0}, counts2 = {0};
    struct ip_decode_opts opts;
    struct ip_encode_opts eopts;
    struct ip_image src, dst, back;
    struct ip_chain chain;
    struct ip_buf enc = {0};
    struct ip_error err;
    enum ip_format out_fmt;
    uint8_t ctl, *buf;
    size_t len, bytes;
    int rc;

    if (size < 2 || size > (1u << 20))
        return 0;
    ctl = data[size - 1];
    len = size - 1;
    buf = malloc(len);
    if (!buf)
        return 0;
    memcpy(buf, data, len);
    fuzz_opts(&opts, (ctl & 1) ? IP_DECODER_STB : IP_DECODER_NATIVE, (ctl >> 1) & 1);
    /* The filters cost O(pixels * radius): keep images small here. */
    opts.limits.max_pixels = 1u << 18;
    rc = fuzz_decode(buf, len, &opts, &src, &counts);
    free(buf);
    if (rc)
        return 0;

    ip_chain_init(&chain);
    switch ((ctl >> 2) & 3) {
    case 0: ip_chain_default(&chain); break;
    case 1: FUZZ_ASSERT(ip_chain_add_gray(&chain, IP_GRAY_709) == 0); break;
    case 2: FUZZ_ASSERT(ip_chain_add_box(&chain, 1 + (ctl >> 5)) == 0); break;
    case 3:
        FUZZ_ASSERT(ip_chain_add_gauss(&chain, 0.5 + (ctl >> 5)) == 0);
        FUZZ_ASSERT(ip_chain_add_gray(&chain, IP_GRAY_601) == 0);
        break;
    }
    FUZZ_ASSERT(ip_image_alloc(&dst, src.width, src.height, ip_chain_out_channels(&chain, src.channels),
                               &opts.limits, &err) == 0);
    FUZZ_ASSERT(ip_chain_run(&chain, &src, &dst, NULL) == 0);
    fuzz_image_free(&src, &counts);

    out_fmt = (ctl >> 4) & 1 ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
    ip_encode_opts_default(&eopts);
    eopts.jpeg_quality = 30 + 10 * (ctl >> 5);
    eopts.png_level = ctl >> 5;
    rc = ip_encode(&dst, out_fmt, &eopts, &enc, &err);
    FUZZ_ASSERT(rc == 0);
    FUZZ_ASSERT(enc.len > 0);

    fuzz_opts(&opts, IP_DECODER_NATIVE, 0);
    FUZZ_ASSERT(fuzz_decode(enc.data, enc.len, &opts, &back, &counts2) == 0);
    FUZZ_ASSERT(back.width == dst.width && back.height == dst.height);
    if (out_fmt == IP_FORMAT_PNG) {
        FUZZ_ASSERT(back.channels == dst.channels);
        bytes = dst.stride * dst.height;
        FUZZ_ASSERT(memcmp(back.pixels, dst.pixels, bytes) == 0);
    } else {
        FUZZ_ASSERT(back.channels == (dst.channels <= 2 ? 1u : 3u));
    }
    fuzz_image_free(&back, &counts2);
    ip_image_free(&dst);
    ip_buf_free(&enc);
    return 0;
}
