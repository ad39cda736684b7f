/* Test helper driven by the Python tests.
 *
 *   codec_tool decode [--stb] [--allow-truncated] [--luma] FILE OUT.raw
 *       decodes FILE, writes its tight pixels to OUT.raw and prints
 *       "W H C FORMAT" (and "warning: MSG" when the decoder left one);
 *       on failure prints "error CODE MSG" and exits 1.
 *   codec_tool encode IN.raw W H C png|jpeg LEVEL_OR_QUALITY OUT
 *       encodes raw tight pixels; same error convention.
 * Exit status: 0 ok, 1 codec error, 2 usage, 3 output write failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"

static int write_all(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (!f) {
        perror(path);
        return 3;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok) {
        perror(path);
        return 3;
    }
    return 0;
}

static int fail(const struct ip_error *err)
{
    printf("error %d %s\n", err->code, err->msg);
    return 1;
}

static int decode(int argc, char **argv)
{
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    struct ip_buf in;
    enum ip_format fmt;
    int i, rc;

    ip_decode_opts_default(&opts);
    for (i = 2; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--stb") == 0)
            opts.decoder = IP_DECODER_STB;
        else if (strcmp(argv[i], "--allow-truncated") == 0)
            opts.allow_truncated = 1;
        else if (strcmp(argv[i], "--luma") == 0)
            opts.jpeg_luma_only = 1;
        else
            return 2;
    }
    if (argc - i != 2)
        return 2;
    if (ip_file_read(argv[i], opts.limits.max_file_size, &in, &err) != 0)
        return fail(&err);
    rc = ip_decode(in.data, in.len, &opts, &img, &fmt, &err);
    ip_buf_free(&in);
    if (rc)
        return fail(&err);
    printf("%u %u %u %s\n", img.width, img.height, img.channels, ip_format_name(fmt));
    if (err.msg[0])
        printf("warning: %s\n", err.msg);
    rc = write_all(argv[i + 1], img.pixels, img.stride * img.height);
    ip_image_free(&img);
    return rc;
}

static int encode(int argc, char **argv)
{
    struct ip_encode_opts opts;
    struct ip_image img;
    struct ip_error err;
    struct ip_buf in, out = {0};
    enum ip_format fmt;
    int rc;

    if (argc != 9)
        return 2;
    if (ip_file_read(argv[2], IP_DEFAULT_MAX_FILE_SIZE, &in, &err) != 0)
        return fail(&err);
    memset(&img, 0, sizeof img);
    img.width = (uint32_t)strtoul(argv[3], NULL, 10);
    img.height = (uint32_t)strtoul(argv[4], NULL, 10);
    img.channels = (uint32_t)strtoul(argv[5], NULL, 10);
    img.stride = (size_t)img.width * img.channels;
    img.pixels = in.data;
    if (in.len != img.stride * img.height) {
        fprintf(stderr, "raw size %zu does not match %ux%ux%u\n", in.len, img.width,
                img.height, img.channels);
        ip_buf_free(&in);
        return 2;
    }
    fmt = strcmp(argv[6], "jpeg") == 0 ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
    ip_encode_opts_default(&opts);
    opts.png_level = opts.jpeg_quality = atoi(argv[7]);
    rc = ip_encode(&img, fmt, &opts, &out, &err);
    ip_buf_free(&in);
    if (rc)
        return fail(&err);
    rc = write_all(argv[8], out.data, out.len);
    ip_buf_free(&out);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 2;

    if (argc >= 2 && strcmp(argv[1], "decode") == 0)
        rc = decode(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "encode") == 0)
        rc = encode(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: codec_tool decode [--stb] [--allow-truncated] [--luma] FILE "
                        "OUT.raw | encode IN.raw W H C png|jpeg PARAM OUT\n");
    return rc;
}
