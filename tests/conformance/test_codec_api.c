/* The codec API contract beyond pixel values:
 * - limits: tiny max_pixels / max_dim on a valid PNG and JPEG (both
 *   decoders) give IP_ETOOBIG naming the dimensions; a PNG header declaring
 *   100000x100000 in a tiny file is refused before any allocation;
 * - custom allocators: called once with the final shape, undone on every
 *   later failure, refusals passed through;
 * - PNG stream errors: truncated data (IP_ETRUNC, or rows kept with
 *   allow_truncated), a zlib stream longer or shorter than the header
 *   declares, bad CRCs;
 * - detection, names and extensions, empty input, unknown formats;
 * - ip_encode argument checks; ip_file_read on directories, FIFOs,
 *   missing and oversized files.
 *
 *   test_codec_api CONFORMANCE_DIR SCRATCH_DIR */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgpar/codec.h"
#include "testutil.h"

static const char *conf_dir, *scratch_dir;

static uint8_t *load(const char *rel, size_t *len)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", conf_dir, rel);
    return test_read_file(path, len);
}

/* ---- counting allocator ---- */

struct counter {
    int allocs, frees;
    int refuse;                 /* nonzero: alloc fails with IP_ETOOBIG */
    struct ip_image shape;      /* shape passed to the last alloc */
    uint8_t *last;              /* last buffer handed out */
};

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels,
                       struct ip_error *err)
{
    struct counter *c = ctx;

    c->shape = *shape;
    if (c->refuse)
        return ip_error_set(err, IP_ETOOBIG, "slot too small for %ux%u", shape->width,
                            shape->height);
    /* One spare byte, poisoned, to catch overruns past stride*height. */
    *pixels = malloc(shape->stride * shape->height + 1);
    if (!*pixels)
        return ip_error_set(err, IP_ENOMEM, "test allocator out of memory");
    (*pixels)[shape->stride * shape->height] = 0xa5;
    c->allocs++;
    c->last = *pixels;
    return 0;
}

static void count_free(void *ctx, uint8_t *pixels)
{
    struct counter *c = ctx;

    CHECK(pixels == c->last, "freeing a buffer the allocator did not hand out last");
    c->frees++;
    free(pixels);
}

static int decode_opts(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                       struct ip_image *img, struct ip_error *err)
{
    memset(err, 0x55, sizeof *err);   /* must be overwritten */
    return ip_decode(data, len, opts, img, NULL, err);
}

/* ---- PNG crafting ---- */

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;

    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Rewrites the IHDR height of a PNG made by ip_encode and fixes its CRC. */
static void set_png_height(uint8_t *png, uint32_t height)
{
    put32(png + 20, height);
    put32(png + 29, crc32_png(png + 12, 17));
}

static struct ip_image noise_image(uint32_t w, uint32_t h, uint32_t c, uint32_t seed)
{
    struct ip_image img;
    struct ip_error err;
    size_t i;

    if (ip_image_alloc(&img, w, h, c, NULL, &err) != 0)
        exit(99);
    for (i = 0; i < img.stride * h; i++) {
        seed = seed * 1103515245u + 12345u;
        img.pixels[i] = (uint8_t)(seed >> 16);
    }
    return img;
}

static struct ip_buf encode(const struct ip_image *img, enum ip_format fmt, int level)
{
    struct ip_encode_opts eo;
    struct ip_buf buf = {0};
    struct ip_error err;
    int rc;

    ip_encode_opts_default(&eo);
    eo.png_level = level;
    rc = ip_encode(img, fmt, &eo, &buf, &err);
    if (rc) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        exit(99);
    }
    return buf;
}

static void test_limits(void)
{
    static const enum ip_decoder decoders[] = {IP_DECODER_NATIVE, IP_DECODER_STB};
    static const char *files[] = {"pngsuite/png/basn2c08.png", "jpeg/testorig.jpg"};
    static const char *dims[] = {"32x32", "227x149"};
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    struct counter cnt;
    struct ip_allocator alloc = {count_alloc, count_free, &cnt};
    size_t f, d, len;
    int rc;

    for (f = 0; f < 2; f++) {
        uint8_t *data = load(files[f], &len);
        for (d = 0; d < 2; d++) {
            memset(&cnt, 0, sizeof cnt);
            ip_decode_opts_default(&opts);
            opts.decoder = decoders[d];
            opts.allocator = &alloc;
            opts.limits.max_pixels = 100;
            rc = decode_opts(data, len, &opts, &img, &err);
            CHECK(rc == IP_ETOOBIG && err.code == IP_ETOOBIG, "%s max_pixels: rc %d (%s)",
                  files[f], rc, err.msg);
            CHECK(strstr(err.msg, dims[f]) && strstr(err.msg, "max-pixels"),
                  "%s max_pixels message '%s'", files[f], err.msg);
            CHECK(cnt.allocs == 0 && img.pixels == NULL, "%s: allocated despite the limit",
                  files[f]);

            ip_decode_opts_default(&opts);
            opts.decoder = decoders[d];
            opts.limits.max_dim = 31;
            rc = decode_opts(data, len, &opts, &img, &err);
            CHECK(rc == IP_ETOOBIG && strstr(err.msg, dims[f]) && strstr(err.msg, "max-dim"),
                  "%s max_dim: rc %d (%s)", files[f], rc, err.msg);

            /* Exactly at the limit is fine. */
            ip_decode_opts_default(&opts);
            opts.decoder = decoders[d];
            opts.limits.max_pixels = f == 0 ? 32 * 32 : 227 * 149;
            rc = decode_opts(data, len, &opts, &img, &err);
            CHECK(rc == 0 && err.code == 0 && err.msg[0] == '\0', "%s at limit: rc %d (%s)",
                  files[f], rc, err.msg);
            ip_image_free(&img);
        }
        printf("%s: limits ok (%s)\n", files[f], dims[f]);
        free(data);
    }

    /* A bare 100000x100000 IHDR (and IEND) in 45 bytes: refused before
     * libpng or the allocator gets to allocate anything. */
    {
        uint8_t png[45];
        memcpy(png, "\x89PNG\r\n\x1a\n", 8);
        put32(png + 8, 13);
        memcpy(png + 12, "IHDR", 4);
        put32(png + 16, 100000);
        put32(png + 20, 100000);
        memcpy(png + 24, "\x08\x02\x00\x00\x00", 5);
        put32(png + 29, crc32_png(png + 12, 17));
        put32(png + 33, 0);
        memcpy(png + 37, "IEND", 4);
        put32(png + 41, crc32_png(png + 37, 4));
        for (d = 0; d < 2; d++) {
            memset(&cnt, 0, sizeof cnt);
            ip_decode_opts_default(&opts);
            opts.decoder = decoders[d];
            opts.allocator = &alloc;
            rc = decode_opts(png, sizeof png, &opts, &img, &err);
            CHECK(rc == IP_ETOOBIG, "100000x100000 (%s): rc %d (%s)", d ? "stb" : "libpng", rc,
                  err.msg);
            CHECK(strstr(err.msg, "100000x100000") != NULL, "100000x100000 message '%s'",
                  err.msg);
            CHECK(cnt.allocs == 0 && img.pixels == NULL, "100000x100000: allocated");
        }
        /* Even a huge max_pixels cannot pass the default 65535 max_dim. */
        ip_decode_opts_default(&opts);
        opts.limits.max_pixels = UINT64_MAX;
        rc = decode_opts(png, sizeof png, &opts, &img, &err);
        CHECK(rc == IP_ETOOBIG && strstr(err.msg, "max-dim"), "100000 dim: rc %d (%s)", rc,
              err.msg);
        printf("100000x100000 header: %s\n", err.msg);
    }
}

static void test_allocator(void)
{
    static const char *files[] = {"pngsuite/png/basn2c08.png", "pngsuite/png/basi6a08.png",
                                  "jpeg/testorig.jpg", "pngsuite/png/tbrn2c08.png"};
    struct ip_decode_opts opts;
    struct ip_image img, ref;
    struct ip_error err;
    struct counter cnt;
    struct ip_allocator alloc = {count_alloc, count_free, &cnt};
    size_t f, len;
    int rc, d;

    for (f = 0; f < 4; f++) {
        uint8_t *data = load(files[f], &len);
        for (d = 0; d < 2; d++) {
            memset(&cnt, 0, sizeof cnt);
            ip_decode_opts_default(&opts);
            opts.decoder = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
            rc = decode_opts(data, len, &opts, &ref, &err);
            CHECK(rc == 0, "%s: %s", files[f], err.msg);
            opts.allocator = &alloc;
            rc = decode_opts(data, len, &opts, &img, &err);
            CHECK(rc == 0, "%s with allocator: %s", files[f], err.msg);
            CHECK(cnt.allocs == 1 && cnt.frees == 0, "%s: %d allocs %d frees", files[f],
                  cnt.allocs, cnt.frees);
            if (rc == 0 && ref.pixels) {
                CHECK(img.pixels == cnt.last, "%s: pixels not from the allocator", files[f]);
                /* The stride asked for is the image's, or one more byte per
                 * row where the PNG fast path inflates into the buffer
                 * (8-bit direct colour with the native decoder: the first file). */
                size_t room = (size_t)img.width * img.channels + (f == 0 && d == 0);
                CHECK(cnt.shape.width == img.width && cnt.shape.height == img.height &&
                      cnt.shape.channels == img.channels && cnt.shape.stride == room &&
                      img.stride == (size_t)img.width * img.channels,
                      "%s: shape passed to alloc (stride %zu) differs from result (stride %zu)",
                      files[f], cnt.shape.stride, img.stride);
                CHECK(img.channels == ref.channels && img.stride == ref.stride &&
                      memcmp(img.pixels, ref.pixels, ref.stride * ref.height) == 0,
                      "%s: allocator decode differs", files[f]);
                CHECK(img.pixels[cnt.shape.stride * img.height] == 0xa5, "%s: wrote past the buffer",
                      files[f]);
                alloc.free(alloc.ctx, img.pixels);
            }
            ip_image_free(&ref);

            /* A refusing allocator: its code and message come back. */
            memset(&cnt, 0, sizeof cnt);
            cnt.refuse = 1;
            rc = decode_opts(data, len, &opts, &img, &err);
            CHECK(rc == IP_ETOOBIG && strstr(err.msg, "slot too small"),
                  "%s refused: rc %d (%s)", files[f], rc, err.msg);
            CHECK(img.pixels == NULL && cnt.frees == 0, "%s refused: state", files[f]);

            /* Failures after allocation undo it: cut the file short. */
            if (d == 0) {
                memset(&cnt, 0, sizeof cnt);
                rc = decode_opts(data, len * 3 / 4, &opts, &img, &err);
                CHECK(rc == IP_ETRUNC, "%s cut: rc %d (%s)", files[f], rc, err.msg);
                CHECK(cnt.allocs == cnt.frees && img.pixels == NULL,
                      "%s cut: %d allocs, %d frees", files[f], cnt.allocs, cnt.frees);
            }
        }
        free(data);
    }
}

static void test_png_streams(void)
{
    struct ip_decode_opts opts;
    struct ip_image src = noise_image(64, 40, 3, 7), img;
    struct ip_error err;
    struct ip_buf png = encode(&src, IP_FORMAT_PNG, 0);
    struct counter cnt;
    struct ip_allocator alloc = {count_alloc, count_free, &cnt};
    size_t cut = png.len * 6 / 10, y, rows_ok = 0, rows_zero = 0;
    uint8_t *copy;
    int rc;

    /* Truncated: error by default... */
    ip_decode_opts_default(&opts);
    rc = decode_opts(png.data, cut, &opts, &img, &err);
    CHECK(rc == IP_ETRUNC && strcmp(err.msg, "truncated PNG data") == 0,
          "truncated PNG: rc %d (%s)", rc, err.msg);
    CHECK(img.pixels == NULL, "truncated PNG: pixels left");

    /* ... rows kept with allow_truncated (level 0: ~60% of the rows). */
    opts.allow_truncated = 1;
    opts.allocator = &alloc;
    memset(&cnt, 0, sizeof cnt);
    rc = decode_opts(png.data, cut, &opts, &img, &err);
    CHECK(rc == 0 && err.code == 0 && strstr(err.msg, "truncated PNG data"),
          "allow_truncated PNG: rc %d code %d (%s)", rc, err.code, err.msg);
    if (rc == 0) {
        for (y = 0; y < 40; y++) {
            const uint8_t *row = img.pixels + y * img.stride;
            size_t x, zero = 1;
            if (memcmp(row, src.pixels + y * src.stride, src.stride) == 0 && rows_zero == 0)
                rows_ok++;
            for (x = 0; x < img.stride; x++)
                zero &= row[x] == 0;
            rows_zero += zero;
        }
        CHECK(rows_ok >= 20 && rows_ok < 40 && rows_ok + rows_zero == 40,
              "allow_truncated PNG: %zu rows intact, %zu zero", rows_ok, rows_zero);
        alloc.free(alloc.ctx, img.pixels);
        printf("allow_truncated PNG: %s\n", err.msg);
    }

    /* Interlaced and truncated: no crash, deterministic partial image. */
    {
        size_t len;
        uint8_t *data = load("pngsuite/png/basi2c08.png", &len);
        memset(&cnt, 0, sizeof cnt);
        rc = decode_opts(data, len - 200, &opts, &img, &err);
        CHECK(rc == 0 && strstr(err.msg, "pass"), "interlaced truncated: rc %d (%s)", rc,
              err.msg);
        if (rc == 0)
            alloc.free(alloc.ctx, img.pixels);
        opts.allow_truncated = 0;
        rc = decode_opts(data, len - 200, &opts, &img, &err);
        CHECK(rc == IP_ETRUNC && cnt.allocs == cnt.frees, "interlaced truncated strict: rc %d",
              rc);
        free(data);
    }

    /* The zlib stream holds 40 rows: declaring 39 leaves extra data, 41 too
     * little. Both are errors, not silent success. */
    copy = malloc(png.len);
    if (!copy)
        exit(99);
    memcpy(copy, png.data, png.len);
    set_png_height(copy, 39);
    ip_decode_opts_default(&opts);
    rc = decode_opts(copy, png.len, &opts, &img, &err);
    CHECK(rc == IP_ECORRUPT && img.pixels == NULL, "stream longer than declared: rc %d (%s)",
          rc, err.msg);
    printf("stream longer than declared: %s\n", err.msg);
    set_png_height(copy, 41);
    rc = decode_opts(copy, png.len, &opts, &img, &err);
    CHECK(rc == IP_ECORRUPT && img.pixels == NULL, "stream shorter than declared: rc %d (%s)",
          rc, err.msg);
    printf("stream shorter than declared: %s\n", err.msg);
    set_png_height(copy, 40);
    rc = decode_opts(copy, png.len, &opts, &img, &err);
    CHECK(rc == 0, "restored height: %s", err.msg);
    ip_image_free(&img);

    /* A flipped bit in IDAT data (zlib's check or the CRC catches it), and
     * a flipped bit in the IDAT CRC itself. */
    copy[60] ^= 0x10;
    rc = decode_opts(copy, png.len, &opts, &img, &err);
    CHECK(rc == IP_ECORRUPT && img.pixels == NULL && err.msg[0],
          "IDAT bit flip: rc %d (%s)", rc, err.msg);
    copy[60] ^= 0x10;
    copy[png.len - 13] ^= 0x01;   /* last byte of the IDAT CRC, before IEND */
    rc = decode_opts(copy, png.len, &opts, &img, &err);
    CHECK(rc == IP_ECORRUPT && strcmp(err.msg, "PNG: IDAT: CRC error") == 0,
          "IDAT CRC flip: rc %d (%s)", rc, err.msg);
    free(copy);
    ip_buf_free(&png);
    ip_image_free(&src);

    /* Ancillary chunks are skipped unparsed, but their CRC still counts. */
    {
        size_t len, i;
        uint8_t *data = load("pngsuite/png/ct1n0g04.png", &len);
        for (i = 12; i + 4 < len && memcmp(data + i, "tEXt", 4) != 0; i++)
            ;
        CHECK(i + 4 < len, "no tEXt chunk in ct1n0g04");
        rc = decode_opts(data, len, &opts, &img, &err);
        CHECK(rc == 0, "ct1n0g04: %s", err.msg);
        ip_image_free(&img);
        data[i + 6] ^= 1;
        rc = decode_opts(data, len, &opts, &img, &err);
        CHECK(rc == IP_ECORRUPT && strcmp(err.msg, "PNG: tEXt: CRC error") == 0,
              "tEXt CRC: rc %d (%s)", rc, err.msg);
        free(data);
    }
}

static void test_detect(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        enum ip_format fmt;
        const char *name;
    } cases[] = {
        {"\x89PNG\r\n\x1a\n", 8, IP_FORMAT_PNG, "png"},
        {"\xff\xd8\xff\xe0", 4, IP_FORMAT_JPEG, "jpeg"},
        {"BM\x36\x00", 4, IP_FORMAT_BMP, "bmp"},
        {"GIF87a", 6, IP_FORMAT_GIF, "gif"},
        {"GIF89a", 6, IP_FORMAT_GIF, "gif"},
        {"P5\n1 1\n255\n\x00", 12, IP_FORMAT_PNM, "pnm"},
        {"P6\n", 3, IP_FORMAT_PNM, "pnm"},
        {"8BPS\x00\x01", 6, IP_FORMAT_PSD, "psd"},
        {"#?RADIANCE\n", 11, IP_FORMAT_HDR, "hdr"},
        {"#?RGBE\n", 7, IP_FORMAT_HDR, "hdr"},
        /* 2x1 uncompressed 24-bit TGA */
        {"\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x00\x18\x00"
         "\x01\x02\x03\x04\x05\x06", 24, IP_FORMAT_TGA, "tga"},
        {"hello, world\n", 13, IP_FORMAT_UNKNOWN, "unknown"},
        {"\x89PNG", 4, IP_FORMAT_UNKNOWN, "unknown"},
        {"GIF88a", 6, IP_FORMAT_UNKNOWN, "unknown"},
    };
    struct ip_image img;
    struct ip_error err;
    enum ip_format fmt;
    size_t i;
    int rc;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum ip_format got = ip_format_detect((const uint8_t *)cases[i].bytes, cases[i].len);
        CHECK(got == cases[i].fmt, "case %zu: detected %s, want %s", i, ip_format_name(got),
              cases[i].name);
        CHECK(strcmp(ip_format_name(cases[i].fmt), cases[i].name) == 0, "name of %s",
              cases[i].name);
    }
    CHECK(strcmp(ip_format_ext(IP_FORMAT_PNG), "png") == 0, "png ext");
    CHECK(strcmp(ip_format_ext(IP_FORMAT_JPEG), "jpg") == 0, "jpeg ext");
    CHECK(strcmp(ip_format_ext(IP_FORMAT_GIF), "png") == 0, "gif ext (written as png)");
    CHECK(strcmp(ip_format_ext(IP_FORMAT_TGA), "png") == 0, "tga ext (written as png)");

    /* The TGA decodes: BGR on disk, bottom-up. */
    rc = ip_decode((const uint8_t *)cases[10].bytes, cases[10].len, NULL, &img, &fmt, &err);
    CHECK(rc == 0 && fmt == IP_FORMAT_TGA, "tga decode: rc %d (%s)", rc, err.msg);
    if (rc == 0) {
        CHECK(img.width == 2 && img.height == 1 && img.channels == 3 &&
              memcmp(img.pixels, "\x03\x02\x01\x06\x05\x04", 6) == 0, "tga pixels");
        ip_image_free(&img);
    }

    rc = ip_decode((const uint8_t *)"hello, world\n", 13, NULL, &img, &fmt, &err);
    CHECK(rc == IP_EFORMAT && strcmp(err.msg, "not a recognized image format") == 0,
          "unknown: rc %d (%s)", rc, err.msg);
    rc = ip_decode((const uint8_t *)"", 0, NULL, &img, &fmt, &err);
    CHECK(rc == IP_ETRUNC && strcmp(err.msg, "empty file") == 0, "empty: rc %d (%s)", rc,
          err.msg);
    rc = ip_decode(NULL, 0, NULL, &img, &fmt, &err);
    CHECK(rc == IP_ETRUNC && strcmp(err.msg, "empty file") == 0, "NULL empty: rc %d", rc);
    /* Corrupt data in a format stb decodes. */
    rc = ip_decode((const uint8_t *)"GIF89a\x01\x00", 8, NULL, &img, &fmt, &err);
    CHECK(rc < 0 && err.msg[0] && img.pixels == NULL && fmt == IP_FORMAT_GIF,
          "short gif: rc %d (%s)", rc, err.msg);
}

static void test_encode_args(void)
{
    struct ip_image img = noise_image(5, 3, 3, 1), bad;
    struct ip_encode_opts eo;
    struct ip_buf buf = {0};
    struct ip_error err;
    int rc;

    ip_encode_opts_default(&eo);
    CHECK(eo.png_level == 6 && eo.jpeg_quality == 90, "encode defaults %d %d", eo.png_level,
          eo.jpeg_quality);
    eo.png_level = 10;
    rc = ip_encode(&img, IP_FORMAT_PNG, &eo, &buf, &err);
    CHECK(rc == IP_EINVAL && buf.len == 0, "png level 10: rc %d", rc);
    eo.png_level = 6;
    eo.jpeg_quality = 0;
    rc = ip_encode(&img, IP_FORMAT_JPEG, &eo, &buf, &err);
    CHECK(rc == IP_EINVAL && buf.len == 0, "jpeg quality 0: rc %d", rc);
    rc = ip_encode(&img, IP_FORMAT_GIF, NULL, &buf, &err);
    CHECK(rc == IP_EINVAL && strstr(err.msg, "gif"), "encode gif: rc %d (%s)", rc, err.msg);
    bad = img;
    bad.channels = 5;
    rc = ip_encode(&bad, IP_FORMAT_PNG, NULL, &buf, &err);
    CHECK(rc == IP_EINVAL, "5 channels: rc %d", rc);
    bad = img;
    bad.stride = 14;
    rc = ip_encode(&bad, IP_FORMAT_PNG, NULL, &buf, &err);
    CHECK(rc == IP_EINVAL, "short stride: rc %d", rc);

    /* A padded stride is honoured. */
    {
        struct ip_image wide = noise_image(8, 3, 3, 2), view = wide, back;
        uint32_t y;
        view.width = 5;   /* 5 pixels of each 8-pixel row */
        rc = ip_encode(&view, IP_FORMAT_PNG, NULL, &buf, &err);
        CHECK(rc == 0, "strided encode: %s", err.msg);
        rc = ip_decode(buf.data, buf.len, NULL, &back, NULL, &err);
        CHECK(rc == 0 && back.width == 5 && back.stride == 15, "strided decode: %s", err.msg);
        for (y = 0; y < 3 && rc == 0; y++)
            CHECK(memcmp(back.pixels + y * 15, wide.pixels + y * wide.stride, 15) == 0,
                  "strided row %u", y);
        ip_image_free(&back);
        ip_image_free(&wide);
        ip_buf_free(&buf);
    }
    ip_image_free(&img);
}

static void test_file_read(void)
{
    char path[4096], fifo[4096], empty[4096];
    struct ip_buf buf;
    struct ip_error err;
    struct ip_image img;
    size_t len;
    uint8_t *ref;
    int rc;
    FILE *f;

    snprintf(path, sizeof path, "%s/jpeg/testorig.jpg", conf_dir);
    ref = test_read_file(path, &len);
    rc = ip_file_read(path, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
    CHECK(rc == 0 && buf.len == len && memcmp(buf.data, ref, len) == 0, "read: rc %d (%s)", rc,
          err.msg);
    ip_buf_free(&buf);
    CHECK(buf.data == NULL && buf.len == 0, "ip_buf_free clears");

    rc = ip_file_read(path, len, &buf, &err);
    CHECK(rc == 0, "exactly max size: rc %d", rc);
    ip_buf_free(&buf);
    rc = ip_file_read(path, len - 1, &buf, &err);
    {
        char want[128];
        snprintf(want, sizeof want, "file size %zu exceeds --max-file-size %zu", len, len - 1);
        CHECK(rc == IP_ETOOBIG && strcmp(err.msg, want) == 0 && buf.data == NULL,
              "too big: rc %d (%s)", rc, err.msg);
    }
    free(ref);

    rc = ip_file_read(conf_dir, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
    CHECK(rc == IP_EIO && strcmp(err.msg, "is a directory") == 0, "directory: rc %d (%s)", rc,
          err.msg);

    snprintf(path, sizeof path, "%s/no-such-file.png", scratch_dir);
    rc = ip_file_read(path, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
    CHECK(rc == IP_EIO && strcmp(err.msg, strerror(ENOENT)) == 0, "missing: rc %d (%s)", rc,
          err.msg);

    snprintf(fifo, sizeof fifo, "%s/codec-api-fifo-%ld", scratch_dir, (long)getpid());
    unlink(fifo);
    if (mkfifo(fifo, 0600) == 0) {
        rc = ip_file_read(fifo, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
        CHECK(rc == IP_EIO && strcmp(err.msg, "not a regular file") == 0, "fifo: rc %d (%s)",
              rc, err.msg);
        unlink(fifo);
    } else {
        CHECK(0, "mkfifo %s: %s", fifo, strerror(errno));
    }

    snprintf(empty, sizeof empty, "%s/codec-api-empty-%ld", scratch_dir, (long)getpid());
    f = fopen(empty, "wb");
    CHECK(f != NULL, "create %s", empty);
    if (f) {
        fclose(f);
        rc = ip_file_read(empty, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
        CHECK(rc == 0 && buf.len == 0, "empty file read: rc %d", rc);
        rc = ip_decode(buf.data, buf.len, NULL, &img, NULL, &err);
        CHECK(rc == IP_ETRUNC && strcmp(err.msg, "empty file") == 0, "empty decode: %s",
              err.msg);
        ip_buf_free(&buf);
        if (geteuid() != 0) {
            chmod(empty, 0);
            rc = ip_file_read(empty, IP_DEFAULT_MAX_FILE_SIZE, &buf, &err);
            CHECK(rc == IP_EIO && strcmp(err.msg, strerror(EACCES)) == 0,
                  "unreadable: rc %d (%s)", rc, err.msg);
        } else {
            printf("running as root: permission check not possible\n");
        }
        unlink(empty);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFORMANCE_DIR SCRATCH_DIR\n", argv[0]);
        return 99;
    }
    conf_dir = argv[1];
    scratch_dir = argv[2];
    test_limits();
    test_allocator();
    test_png_streams();
    test_detect();
    test_encode_args();
    test_file_read();
    return test_finish("codec_api");
}
