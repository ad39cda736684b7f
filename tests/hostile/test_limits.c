/* Limits and decoder routing, in-process.
 *
 * usage: test_limits SAMPLES CONFORMANCE
 *
 * - Decompression bombs (a tiny PNG or JPEG declaring 100000x100000 or
 *   60000x60000 pixels) fail with IP_ETOOBIG and the specific reason
 *   ("exceeds --max-dim 65535", "exceeds --max-pixels 268435456") before
 *   any pixel buffer is requested from the allocator, with either decoder.
 * - --max-pixels, --max-dim and --max-file-size are honoured exactly (one
 *   below the size refuses, the size itself passes), and ip_image_check's
 *   arithmetic cannot overflow (2^32-1 squared times 4 channels).
 * - A PNG whose zlib stream inflates to more than its IHDR declares fails.
 * - stb_image is built with STBI_MAX_DIMENSIONS: a BMP claiming 70000
 *   columns is refused by stb itself even with imgpar's limits raised.
 * - With the native decoder, PNG and JPEG never reach stb_image: the test
 *   is linked with -Wl,--wrap=ip__stb_decode,--wrap=ip__stb_probe, so every
 *   call into codec_stb.c is counted. Every PngSuite file (good and
 *   corrupt), every sample, prefixes and bombs: zero calls. The same files
 *   with IP_DECODER_STB, and a BMP, do reach it (the counter works). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec_internal.h"
#include "imgpar/codec.h"
#include "../unit/check.h"

static long stb_calls;

int __real_ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                          const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err);
int __wrap_ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                          const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err);
int __real_ip__stb_probe(const uint8_t *data, size_t len);
int __wrap_ip__stb_probe(const uint8_t *data, size_t len);

int __wrap_ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                          const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err)
{
    stb_calls++;
    return __real_ip__stb_decode(data, len, fmt, opts, out, err);
}

int __wrap_ip__stb_probe(const uint8_t *data, size_t len)
{
    stb_calls++;
    return __real_ip__stb_probe(data, len);
}

static long allocs;

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err)
{
    (void)ctx;
    allocs++;
    *pixels = malloc(shape->stride * shape->height);
    return *pixels ? 0 : ip_error_set(err, IP_ENOMEM, "out of memory");
}

static void count_free(void *ctx, uint8_t *pixels)
{
    (void)ctx;
    free(pixels);
}

static const struct ip_allocator counting = {count_alloc, count_free, NULL};

struct bytes {
    uint8_t *data;
    size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    b->data = realloc(b->data, b->len + n);
    if (!b->data)
        exit(99);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put32(struct bytes *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, q, 4);
}

static void chunk(struct bytes *b, const char *type, const uint8_t *data, uint32_t n)
{
    uLong crc = crc32(0, (const Bytef *)type, 4);

    if (n)
        crc = crc32(crc, data, n);
    put32(b, n);
    put(b, type, 4);
    if (n)
        put(b, data, n);
    put32(b, (uint32_t)crc);
}

/* An 8-bit PNG of colour type ct declaring w x h, whose IDAT holds the
 * zlib compression of raw_len bytes of filter-0 rows of value 0x80. */
static struct bytes png_file(uint32_t w, uint32_t h, uint8_t ct, size_t raw_len)
{
    struct bytes b = {NULL, 0};
    uint8_t ihdr[13] = {0};
    uint8_t *raw = calloc(raw_len ? raw_len : 1, 1);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen);

    if (!raw || !z)
        exit(99);
    memset(raw, 0x80, raw_len);
    for (uint32_t y = 0; y < h && (size_t)y * (w + 1) < raw_len; y++)
        raw[(size_t)y * (w + 1)] = 0;
    compress2(z, &zlen, raw, (uLong)raw_len, 9);
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[8] = 8;
    ihdr[9] = ct;
    chunk(&b, "IHDR", ihdr, 13);
    chunk(&b, "IDAT", z, (uint32_t)zlen);
    chunk(&b, "IEND", NULL, 0);
    free(raw);
    free(z);
    return b;
}

static struct bytes read_file(const char *path)
{
    struct bytes b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    uint8_t buf[65536];
    size_t n;

    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        put(&b, buf, n);
    fclose(f);
    return b;
}

/* A copy of a baseline/progressive JPEG with its SOF dimensions replaced. */
static struct bytes jpeg_resized(const struct bytes *src, uint16_t w, uint16_t h)
{
    struct bytes b = {NULL, 0};

    put(&b, src->data, src->len);
    for (size_t i = 2; i + 9 < b.len; i++) {
        if (b.data[i] == 0xff && (b.data[i + 1] == 0xc0 || b.data[i + 1] == 0xc1 || b.data[i + 1] == 0xc2)) {
            b.data[i + 5] = (uint8_t)(h >> 8);
            b.data[i + 6] = (uint8_t)h;
            b.data[i + 7] = (uint8_t)(w >> 8);
            b.data[i + 8] = (uint8_t)w;
            return b;
        }
    }
    fprintf(stderr, "no SOF marker\n");
    exit(2);
}

/* Decodes and expects failure with code and a reason containing want,
 * without a single pixel allocation. */
static void expect_refused(const char *what, const struct bytes *b, enum ip_decoder dec,
                           const struct ip_limits *limits, int code, const char *want)
{
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    long before = allocs;
    int rc;

    ip_decode_opts_default(&opts);
    if (limits)
        opts.limits = *limits;
    opts.decoder = dec;
    opts.allocator = &counting;
    rc = ip_decode(b->data, b->len, &opts, &img, NULL, &err);
    if (rc != code || !strstr(err.msg, want) || allocs != before)
        fprintf(stderr, "%s (%s): rc %d '%s' (want %d '%s'), %ld allocations\n", what,
                dec == IP_DECODER_STB ? "stb" : "native", rc, err.msg, code, want, allocs - before);
    CHECK_EQ_INT(rc, code);
    CHECK(strstr(err.msg, want) != NULL);
    CHECK_EQ_INT(allocs - before, 0);
    CHECK(img.pixels == NULL);
}

static int decode_ok(const struct bytes *b, enum ip_decoder dec, const struct ip_limits *limits)
{
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    int rc;

    ip_decode_opts_default(&opts);
    if (limits)
        opts.limits = *limits;
    opts.decoder = dec;
    rc = ip_decode(b->data, b->len, &opts, &img, NULL, &err);
    ip_image_free(&img);
    return rc;
}

/* With the native decoder only, or with both. */
static void test_bombs(const char *samples, int decoders)
{
    char path[4096];
    struct bytes png_dim = png_file(100000, 100000, 0, 1000);
    struct bytes png_pix = png_file(60000, 60000, 2, 1000);
    struct bytes jpg, jpg_pix, prog, prog_pix;

    snprintf(path, sizeof path, "%s/photo.jpg", samples);
    jpg = read_file(path);
    jpg_pix = jpeg_resized(&jpg, 60000, 60000);
    snprintf(path, sizeof path, "%s/progressive.jpg", samples);
    prog = read_file(path);
    prog_pix = jpeg_resized(&prog, 65000, 65000);
    CHECK(png_dim.len < 200 && png_pix.len < 200);
    for (int d = 0; d < decoders; d++) {
        enum ip_decoder dec = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
        expect_refused("png 100000x100000", &png_dim, dec, NULL, IP_ETOOBIG,
                       "image 100000x100000 exceeds --max-dim 65535");
        expect_refused("png 60000x60000", &png_pix, dec, NULL, IP_ETOOBIG,
                       "image 60000x60000 exceeds --max-pixels 268435456");
        expect_refused("jpeg 60000x60000", &jpg_pix, dec, NULL, IP_ETOOBIG,
                       "image 60000x60000 exceeds --max-pixels 268435456");
        expect_refused("progressive jpeg 65000x65000", &prog_pix, dec, NULL, IP_ETOOBIG,
                       "image 65000x65000 exceeds --max-pixels 268435456");
    }
    free(png_dim.data);
    free(png_pix.data);
    free(jpg.data);
    free(jpg_pix.data);
    free(prog.data);
    free(prog_pix.data);
}

static void test_exact_limits(const char *samples)
{
    static const char *const names[] = {"gray8.png", "rgba8.png", "palette.png", "photo.jpg",
                                        "progressive.jpg"};
    char path[4096], want[128];

    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct ip_image img;
        struct ip_error err;
        struct ip_limits lim;
        struct bytes b;
        uint32_t w, h;

        snprintf(path, sizeof path, "%s/%s", samples, names[i]);
        b = read_file(path);
        CHECK_EQ_INT(ip_decode(b.data, b.len, NULL, &img, NULL, &err), 0);
        w = img.width;
        h = img.height;
        ip_image_free(&img);
        for (int d = 0; d < 2; d++) {
            enum ip_decoder dec = d ? IP_DECODER_STB : IP_DECODER_NATIVE;

            ip_limits_default(&lim);
            lim.max_pixels = (uint64_t)w * h;
            CHECK_EQ_INT(decode_ok(&b, dec, &lim), 0);
            lim.max_pixels--;
            snprintf(want, sizeof want, "image %ux%u exceeds --max-pixels %llu", w, h,
                     (unsigned long long)lim.max_pixels);
            expect_refused(names[i], &b, dec, &lim, IP_ETOOBIG, want);

            ip_limits_default(&lim);
            lim.max_dim = w > h ? w : h;
            CHECK_EQ_INT(decode_ok(&b, dec, &lim), 0);
            lim.max_dim--;
            snprintf(want, sizeof want, "image %ux%u exceeds --max-dim %u", w, h, lim.max_dim);
            expect_refused(names[i], &b, dec, &lim, IP_ETOOBIG, want);
        }

        /* --max-file-size: the file's size passes, one byte less does not. */
        {
            struct ip_buf buf;
            char msg[128];

            CHECK_EQ_INT(ip_file_read(path, b.len, &buf, &err), 0);
            CHECK_EQ_INT(buf.len, b.len);
            ip_buf_free(&buf);
            CHECK_EQ_INT(ip_file_read(path, b.len - 1, &buf, &err), IP_ETOOBIG);
            snprintf(msg, sizeof msg, "file size %zu exceeds --max-file-size %zu", b.len, b.len - 1);
            CHECK(strcmp(err.msg, msg) == 0);
            CHECK(buf.data == NULL);
        }
        free(b.data);
    }
}

static void test_overflow(void)
{
    struct ip_limits lim = {UINT64_MAX, UINT32_MAX, UINT64_MAX};
    struct ip_error err;
    struct ip_image img;
    size_t bytes = 12345;

    /* (2^32-1)^2 fits in 64 bits, times 4 channels does not. */
    CHECK_EQ_INT(ip_image_check(UINT32_MAX, UINT32_MAX, 4, &lim, &bytes, &err), IP_ETOOBIG);
    CHECK(strstr(err.msg, "too large") != NULL);
    CHECK_EQ_INT(bytes, 12345);
    CHECK_EQ_INT(ip_image_alloc(&img, UINT32_MAX, UINT32_MAX, 4, &lim, &err), IP_ETOOBIG);
    CHECK(img.pixels == NULL);
    CHECK_EQ_INT(ip_image_check(0, 5, 1, &lim, &bytes, &err), IP_ECORRUPT);
    CHECK_EQ_INT(ip_image_check(5, 5, 5, &lim, &bytes, &err), IP_EINVAL);
}

static void test_zlib_overflow(void)
{
    /* 16x16 gray needs 16 * (1 + 16) = 272 bytes; give 50 times that. */
    struct bytes b = png_file(16, 16, 0, 272 * 50);
    struct bytes ok = png_file(16, 16, 0, 272);
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;

    CHECK_EQ_INT(decode_ok(&ok, IP_DECODER_NATIVE, NULL), 0);
    ip_decode_opts_default(&opts);
    CHECK_EQ_INT(ip_decode(b.data, b.len, &opts, &img, NULL, &err), IP_ECORRUPT);
    CHECK(strstr(err.msg, "Too much image data") != NULL || strstr(err.msg, "extra compressed data") != NULL);
    opts.allow_truncated = 1;
    CHECK_EQ_INT(ip_decode(b.data, b.len, &opts, &img, NULL, &err), IP_ECORRUPT);
    CHECK(img.pixels == NULL);
    free(b.data);
    free(ok.data);
}

static void test_stb_max_dimensions(void)
{
    /* BITMAPINFOHEADER, 24-bit, 70000 x 1, with 16 bytes of pixels. */
    struct bytes b = {NULL, 0};
    struct ip_limits lim = {1ull << 40, 1u << 24, 1ull << 30};
    uint8_t h[54] = {'B', 'M'};
    uint32_t w = 70000;

    h[10] = 54;
    h[14] = 40;
    h[18] = (uint8_t)w;
    h[19] = (uint8_t)(w >> 8);
    h[20] = (uint8_t)(w >> 16);
    h[22] = 1;
    h[26] = 1;
    h[28] = 24;
    put(&b, h, sizeof h);
    put(&b, "0123456789abcdef", 16);
    expect_refused("bmp 70000x1, limits raised", &b, IP_DECODER_NATIVE, &lim, IP_ECORRUPT,
                   "too large");
    free(b.data);
}

/* Native decodes of PNG and JPEG (good, corrupt, cut, bombs) never call stb. */
static void test_no_stb(const char *samples, const char *conformance)
{
    char dir[4096], path[8192];
    struct dirent *de;
    long files = 0;
    DIR *d;

    stb_calls = 0;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 0)
            snprintf(dir, sizeof dir, "%s/pngsuite/png", conformance);
        else if (pass == 1)
            snprintf(dir, sizeof dir, "%s/jpeg", conformance);
        else
            snprintf(dir, sizeof dir, "%s", samples);
        d = opendir(dir);
        CHECK(d != NULL);
        if (!d)
            continue;
        while ((de = readdir(d)) != NULL) {
            struct bytes b;
            long before;

            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (!strstr(de->d_name, ".png") && !strstr(de->d_name, ".jpg"))
                continue;
            b = read_file(path);
            /* By magic here: ip_format_detect would probe stb for TGA. */
            if (!(b.len >= 8 && memcmp(b.data, "\x89PNG\r\n\x1a\n", 8) == 0) &&
                !(b.len >= 3 && memcmp(b.data, "\xff\xd8\xff", 3) == 0)) {
                free(b.data);   /* PngSuite's x-files with a mangled signature */
                continue;
            }
            files++;
            before = stb_calls;
            (void)decode_ok(&b, IP_DECODER_NATIVE, NULL);
            if (stb_calls != before)
                fprintf(stderr, "%s: reached stb_image with the native decoder\n", path);
            for (size_t cut = 8; cut < b.len; cut += b.len / 7 + 1) {
                struct bytes c = {b.data, cut};
                CHECK(decode_ok(&c, IP_DECODER_NATIVE, NULL) != 0);
            }
            free(b.data);
        }
        closedir(d);
    }
    test_bombs(samples, 1);
    printf("native decodes of %ld PNG/JPEG files, prefixes and bombs: %ld calls into stb_image\n",
           files, stb_calls);
    CHECK(files > 150);
    CHECK_EQ_INT(stb_calls, 0);

    /* The counter sees stb when it is used. */
    snprintf(path, sizeof path, "%s/gray8.png", samples);
    {
        struct bytes b = read_file(path);
        CHECK_EQ_INT(decode_ok(&b, IP_DECODER_STB, NULL), 0);
        free(b.data);
    }
    CHECK(stb_calls > 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SAMPLES CONFORMANCE\n", argv[0]);
        return 2;
    }
    test_no_stb(argv[1], argv[2]);
    test_bombs(argv[1], 2);
    test_exact_limits(argv[1]);
    test_overflow();
    test_zlib_overflow();
    test_stb_max_dimensions();
    return check_exit("limits");
}
