/* Robustness on damaged input: deterministic mutations (bit flips, random
 * overwrites, huge length fields, truncation) of valid files are decoded
 * with both decoders, strict and with allow_truncated. The seeds are PngSuite
 * and libjpeg-turbo files plus files written here in every format stb_image
 * decodes (BMP, GIF, TGA RLE, PNM 8/16-bit, PSD RLE, run-length HDR,
 * progressive JPEG); several of the mutations hit bugs of stb_image 2.27
 * that codec_stb.c guards against (endless loop on a truncated HDR,
 * Huffman table overflow). Every
 * call must return cleanly: on success a sane image, on failure a negative
 * code equal to err.code, a message, and no pixels (checked with a counting
 * allocator: allocations and frees balance). Run under ASan/UBSan to catch
 * memory errors.
 *
 *   test_mutations CONFORMANCE_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "imgpar/codec.h"
#include "testutil.h"

#define MUTATIONS 300

static uint32_t rng_state = 12345;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

struct counter {
    long allocs, frees;
};

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels,
                       struct ip_error *err)
{
    struct counter *c = ctx;

    *pixels = malloc(shape->stride * shape->height);
    if (!*pixels)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    c->allocs++;
    return 0;
}

static void count_free(void *ctx, uint8_t *pixels)
{
    struct counter *c = ctx;

    c->frees++;
    free(pixels);
}


/* ---- seeds written here ---- */

struct seed {
    const char *name;
    uint8_t *data;
    size_t len;
};

struct growbuf {
    uint8_t *data;
    size_t len, cap;
};

static void put(struct growbuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            exit(99);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put8(struct growbuf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put16le(struct growbuf *b, unsigned v)
{
    put8(b, v);
    put8(b, v >> 8);
}

static void put32le(struct growbuf *b, uint32_t v)
{
    put16le(b, v & 0xffff);
    put16le(b, v >> 16);
}

static void put16be(struct growbuf *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v);
}

static void put32be(struct growbuf *b, uint32_t v)
{
    put16be(b, v >> 16);
    put16be(b, v & 0xffff);
}

#define SW 37
#define SH 23

/* Smooth test pattern, channel k of pixel (x, y). */
static unsigned px(int x, int y, int k)
{
    return (unsigned)((x * 7 + y * 11 + k * 80 + (x / 9) * 40) & 255);
}

static struct seed bmp8(void)
{
    struct growbuf b = {0};
    int x, y, i, stride = (SW + 3) & ~3;

    put(&b, "BM", 2);
    put32le(&b, 14 + 40 + 1024 + (uint32_t)(stride * SH));
    put32le(&b, 0);
    put32le(&b, 14 + 40 + 1024);
    put32le(&b, 40);
    put32le(&b, SW);
    put32le(&b, SH);
    put16le(&b, 1);
    put16le(&b, 8);
    put32le(&b, 0);
    put32le(&b, (uint32_t)(stride * SH));
    put32le(&b, 2835);
    put32le(&b, 2835);
    put32le(&b, 256);
    put32le(&b, 0);
    for (i = 0; i < 256; i++) {
        put8(&b, i);
        put8(&b, 255 - i);
        put8(&b, i / 2);
        put8(&b, 0);
    }
    for (y = 0; y < SH; y++)
        for (x = 0; x < stride; x++)
            put8(&b, x < SW ? px(x, y, 0) : 0);
    return (struct seed){"palette.bmp", b.data, b.len};
}

/* Run-length TGA: alternating run and raw packets. */
static struct seed tga_rle(void)
{
    struct growbuf b = {0};
    static const uint8_t head[12] = {0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int y, x;

    put(&b, head, sizeof head);
    put16le(&b, SW);
    put16le(&b, SH);
    put8(&b, 32);
    put8(&b, 8);
    for (y = 0; y < SH; y++) {
        for (x = 0; x < SW;) {
            int n = SW - x < 5 ? SW - x : 5, i, k;
            if ((x / 5 + y) % 2) {
                put8(&b, 0x80 | (n - 1));
                for (k = 0; k < 4; k++)
                    put8(&b, px(x, y, k));
            } else {
                put8(&b, n - 1);
                for (i = 0; i < n; i++)
                    for (k = 0; k < 4; k++)
                        put8(&b, px(x + i, y, k));
            }
            x += n;
        }
    }
    return (struct seed){"rle.tga", b.data, b.len};
}

static struct seed pnm(int sixteen)
{
    struct growbuf b = {0};
    char head[64];
    int x, y, k;

    snprintf(head, sizeof head, "%s\n# seed\n%d %d\n%d\n", sixteen ? "P5" : "P6", SW, SH,
             sixteen ? 65535 : 255);
    put(&b, head, strlen(head));
    for (y = 0; y < SH; y++)
        for (x = 0; x < SW; x++)
            for (k = 0; k < (sixteen ? 1 : 3); k++) {
                if (sixteen)
                    put16be(&b, px(x, y, k) * 257 + (unsigned)x);
                else
                    put8(&b, px(x, y, k));
            }
    return (struct seed){sixteen ? "16bit.pgm" : "rgb.ppm", b.data, b.len};
}

/* PSD, RGB 8-bit, PackBits-compressed rows (runs and literals). */
static struct seed psd_rle(void)
{
    struct growbuf b = {0}, rows = {0};
    uint16_t counts[3 * SH];
    int k, y, x;

    for (k = 0; k < 3; k++)
        for (y = 0; y < SH; y++) {
            size_t before = rows.len;
            for (x = 0; x < SW;) {
                int n = SW - x < 6 ? SW - x : 6, i;
                if (x % 12 == 0) {
                    put8(&rows, 257 - n);   /* run of n */
                    put8(&rows, px(x, y, k));
                } else {
                    put8(&rows, n - 1);     /* n literals */
                    for (i = 0; i < n; i++)
                        put8(&rows, px(x + i, y, k));
                }
                x += n;
            }
            counts[k * SH + y] = (uint16_t)(rows.len - before);
        }
    put(&b, "8BPS", 4);
    put16be(&b, 1);
    put(&b, "\0\0\0\0\0\0", 6);
    put16be(&b, 3);
    put32be(&b, SH);
    put32be(&b, SW);
    put16be(&b, 8);
    put16be(&b, 3);
    put32be(&b, 0);
    put32be(&b, 0);
    put32be(&b, 0);
    put16be(&b, 1);
    for (k = 0; k < 3 * SH; k++)
        put16be(&b, counts[k]);
    put(&b, rows.data, rows.len);
    free(rows.data);
    return (struct seed){"rle.psd", b.data, b.len};
}

/* Radiance HDR with run-length scanlines (width >= 8). */
static struct seed hdr_rle(void)
{
    struct growbuf b = {0};
    char head[96];
    int y, k, x;

    snprintf(head, sizeof head, "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n", SH, SW);
    put(&b, head, strlen(head));
    for (y = 0; y < SH; y++) {
        put8(&b, 2);
        put8(&b, 2);
        put16be(&b, SW);
        for (k = 0; k < 4; k++) {
            for (x = 0; x < SW;) {
                int n = SW - x < 8 ? SW - x : 8, i;
                if (k == 3 || (x / 8) % 2) {
                    put8(&b, 128 + n);      /* run */
                    put8(&b, k == 3 ? 128u + (unsigned)(y % 4) : px(x, y, k));
                } else {
                    put8(&b, n);            /* literals */
                    for (i = 0; i < n; i++)
                        put8(&b, px(x + i, y, k));
                }
                x += n;
            }
        }
    }
    return (struct seed){"rle.hdr", b.data, b.len};
}

/* Two-frame interlaced GIF written by Pillow (9x6, 16 colours). */
static struct seed gif(void)
{
    static const char bytes[] =
        "\x47\x49\x46\x38\x39\x61\x09\x00\x06\x00\x83\x00\x00\xc4\xc8\x00\xc4\xa0\x00"
        "\x7e\xb4\x00\xa8\x78\x50\x38\xc8\x00\x38\xa0\x00\x00\xb4\x00\xa8\x50\x50\xc4"
        "\x28\x00\xc4\x00\x00\x7e\x14\x00\x38\x28\x00\x38\x00\x00\x00\x14\x00\x00\x00"
        "\x00\x00\x00\x00\x21\xff\x0b\x4e\x45\x54\x53\x43\x41\x50\x45\x32\x2e\x30\x03"
        "\x01\x00\x00\x00\x21\xf9\x04\x00\x05\x00\x00\x00\x2c\x00\x00\x00\x00\x09\x00"
        "\x06\x00\x00\x08\x2d\x00\x1b\x30\x18\xa8\x40\x41\x82\x83\x0d\x16\x28\x2c\x88"
        "\xa0\x61\xc2\x05\x07\x22\x36\x44\x60\xa0\x40\x81\x01\x18\x03\x68\xac\x68\x51"
        "\x80\x00\x8d\x01\x0c\x10\x18\xe9\x11\x80\xc9\x80\x00\x21\xf9\x04\x00\x05\x00"
        "\x00\x00\x2c\x00\x00\x00\x00\x09\x00\x06\x00\x83\xc4\xc8\x00\xc4\xa0\x00\x7e"
        "\xb4\x00\xa8\x78\x50\x38\xc8\x00\x38\xa0\x00\x00\xb4\x00\xa8\x50\x50\xc4\x28"
        "\x00\xc4\x00\x00\x7e\x14\x00\x38\x28\x00\x38\x00\x00\x00\x14\x00\x00\x00\x00"
        "\x00\x00\x00\x08\x2d\x00\x0d\x10\x18\x28\x40\x00\x80\x83\x06\x0a\x28\x2c\x18"
        "\xa0\x61\xc2\x02\x03\x22\x36\x0c\xd0\x60\xc1\x82\x03\x18\x11\x68\xac\x68\x51"
        "\x81\x02\x8d\x08\x1a\x30\x18\xe9\x31\x81\xc9\x80\x00\x3b";
    struct seed s = {"anim.gif", malloc(sizeof bytes - 1), sizeof bytes - 1};

    if (!s.data)
        exit(99);
    memcpy(s.data, bytes, s.len);
    return s;
}

/* Progressive 4:2:0 JPEG with restart markers, written with libjpeg. */
static struct seed jpeg_progressive(void)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long len = 0;
    uint8_t row[SW * 3];
    JSAMPROW rp = row;
    struct seed s;
    int x, y, k;

    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = SW;
    c.image_height = SH;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 80, TRUE);
    jpeg_simple_progression(&c);
    c.restart_interval = 2;
    jpeg_start_compress(&c, TRUE);
    for (y = 0; y < SH; y++) {
        for (x = 0; x < SW; x++)
            for (k = 0; k < 3; k++)
                row[x * 3 + k] = (uint8_t)px(x, y, k);
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    s.name = "progressive.jpg";
    s.data = malloc(len);
    if (!s.data)
        exit(99);
    memcpy(s.data, out, len);
    s.len = len;
    free(out);
    return s;
}

static void mutate(uint8_t *buf, size_t *len, const uint8_t *orig, size_t orig_len)
{
    size_t i, n;

    memcpy(buf, orig, orig_len);
    *len = orig_len;
    switch (rnd() % 4) {
    case 0:   /* 1-4 bit flips */
        n = 1 + rnd() % 4;
        for (i = 0; i < n; i++)
            buf[rnd() % orig_len] ^= (uint8_t)(1u << (rnd() % 8));
        break;
    case 1:   /* a random run overwritten */
        n = 1 + rnd() % 16;
        i = rnd() % orig_len;
        for (; n > 0 && i < orig_len; n--, i++)
            buf[i] = (uint8_t)rnd();
        break;
    case 2: { /* a 32-bit field made huge (lengths, dimensions) */
        static const uint8_t huge[2][4] = {{0xff, 0xff, 0xff, 0xff}, {0x7f, 0xff, 0xff, 0xff}};
        i = rnd() % (orig_len - 4);
        memcpy(buf + i, huge[rnd() % 2], 4);
        break;
    }
    default:  /* truncation */
        *len = rnd() % orig_len;
        break;
    }
}

static long decodes, ok_count;

/* Decodes MUTATIONS damaged copies of one seed with both decoders and
 * checks the invariants. */
static void fuzz_seed(const char *name, const uint8_t *orig, size_t orig_len,
                      const struct ip_allocator *alloc)
{
    uint8_t *buf = malloc(orig_len);
    size_t len;
    int m, d, clean_ok = 0;

    if (!buf || orig_len < 8)
        exit(99);
    /* The undamaged seed decodes (with stb at least). */
    for (d = 0; d < 2; d++) {
        struct ip_decode_opts opts;
        struct ip_image img;
        struct ip_error err;
        ip_decode_opts_default(&opts);
        opts.decoder = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
        if (ip_decode(orig, orig_len, &opts, &img, NULL, &err) == 0) {
            clean_ok++;
            ip_image_free(&img);
        } else if (d == 1) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
        }
    }
    CHECK(clean_ok == 2, "%s: undamaged seed does not decode", name);
    for (m = 0; m < MUTATIONS; m++) {
        mutate(buf, &len, orig, orig_len);
        for (d = 0; d < 2; d++) {
            struct ip_decode_opts opts;
            struct ip_image img;
            struct ip_error err;
            int rc;

            ip_decode_opts_default(&opts);
            opts.decoder = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
            opts.allow_truncated = m % 2;
            opts.limits.max_pixels = 1u << 22;
            opts.allocator = m % 3 == 0 ? alloc : NULL;
            rc = ip_decode(buf, len, &opts, &img, NULL, &err);
            decodes++;
            if (rc == 0) {
                ok_count++;
                CHECK(img.pixels && img.width && img.height && img.channels >= 1 &&
                      img.channels <= 4 && img.stride == (size_t)img.width * img.channels,
                      "%s mutation %d: bad image", name, m);
                CHECK(err.code == 0, "%s mutation %d: success with code %d", name, m, err.code);
                if (opts.allocator)
                    alloc->free(alloc->ctx, img.pixels);
                else
                    ip_image_free(&img);
            } else {
                CHECK(rc < 0 && rc == err.code && err.msg[0] && !img.pixels,
                      "%s mutation %d (%s): rc %d code %d msg '%s'", name, m,
                      d ? "stb" : "native", rc, err.code, err.msg);
            }
        }
    }
    free(buf);
}

int main(int argc, char **argv)
{
    static const char *files[] = {
        "pngsuite/png/basn2c08.png", "pngsuite/png/basi6a16.png", "pngsuite/png/tbrn2c08.png",
        "pngsuite/png/basn3p04.png", "pngsuite/png/basi0g01.png", "pngsuite/png/tp1n3p08.png",
        "jpeg/testorig.jpg",         "jpeg/testimgint.jpg",
    };
    struct counter cnt = {0, 0};
    struct ip_allocator alloc = {count_alloc, count_free, &cnt};
    struct seed made[8];
    size_t f, nfiles = sizeof files / sizeof files[0], nmade = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFORMANCE_DIR\n", argv[0]);
        return 99;
    }
    for (f = 0; f < nfiles; f++) {
        char path[4096];
        size_t len;
        uint8_t *data;

        snprintf(path, sizeof path, "%s/%s", argv[1], files[f]);
        data = test_read_file(path, &len);
        fuzz_seed(files[f], data, len, &alloc);
        free(data);
    }
    made[nmade++] = bmp8();
    made[nmade++] = tga_rle();
    made[nmade++] = pnm(0);
    made[nmade++] = pnm(1);
    made[nmade++] = psd_rle();
    made[nmade++] = hdr_rle();
    made[nmade++] = gif();
    made[nmade++] = jpeg_progressive();
    for (f = 0; f < nmade; f++) {
        fuzz_seed(made[f].name, made[f].data, made[f].len, &alloc);
        free(made[f].data);
    }
    CHECK(cnt.allocs == cnt.frees, "allocator: %ld allocs, %ld frees", cnt.allocs, cnt.frees);
    CHECK(decodes == (long)(nfiles + nmade) * MUTATIONS * 2, "%ld decodes", decodes);
    printf("%ld decodes of damaged files, %ld succeeded, %ld allocator round trips\n", decodes,
           ok_count, cnt.allocs);
    return test_finish("mutations");
}
