/* 16-bit PNG reduction, exhaustively: PNGs holding every 16-bit sample
 * value (written here with libpng) must decode, with libpng and with
 * stb_image, to round(v * 255 / 65535) = (v * 255 + 32767) / 65535 for every
 * v, and tRNS on 16-bit RGB must compare the full 16-bit colour. */
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"
#include "testutil.h"

struct membuf {
    uint8_t *data;
    size_t len, cap;
};

static void write_cb(png_structp png, png_bytep bytes, size_t n)
{
    struct membuf *b = png_get_io_ptr(png);

    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            exit(99);
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void flush_cb(png_structp png)
{
    (void)png;
}

/* Writes a 16-bit PNG whose samples, in order, are sample(i) for
 * i = 0 .. w*h*channels-1. trns (3 values) adds a tRNS chunk for RGB. */
static struct membuf write_png16(uint32_t w, uint32_t h, int color_type, int channels,
                                 uint16_t (*sample)(size_t), const uint16_t *trns)
{
    struct membuf buf = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *row = malloc((size_t)w * channels * 2);
    uint32_t x, y;

    if (!png || !info || !row || setjmp(png_jmpbuf(png)))
        exit(99);
    png_set_write_fn(png, &buf, write_cb, flush_cb);
    png_set_IHDR(png, info, w, h, 16, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (trns) {
        png_color_16 c;
        memset(&c, 0, sizeof c);
        c.red = trns[0];
        c.green = trns[1];
        c.blue = trns[2];
        png_set_tRNS(png, info, NULL, 0, &c);
    }
    png_write_info(png, info);
    for (y = 0; y < h; y++) {
        for (x = 0; x < w * (uint32_t)channels; x++) {
            uint16_t v = sample((size_t)y * w * channels + x);
            row[2 * x] = (uint8_t)(v >> 8);
            row[2 * x + 1] = (uint8_t)v;
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return buf;
}

static uint16_t identity(size_t i)
{
    return (uint16_t)i;
}

/* Every value, scrambled so that neighbours differ (exercises filters). */
static uint16_t scrambled(size_t i)
{
    return (uint16_t)(i * 40503u);
}

static unsigned expect8(uint16_t v)
{
    return ((unsigned)v * 255u + 32767u) / 65535u;
}

static void check_all_values(const char *label, const struct membuf *png, uint32_t channels,
                             uint16_t (*sample)(size_t))
{
    static const enum ip_decoder decoders[] = {IP_DECODER_NATIVE, IP_DECODER_STB};
    size_t d, i;

    for (d = 0; d < 2; d++) {
        struct ip_image img;
        struct ip_error err;
        int rc = test_decode(png->data, png->len, decoders[d], &img, &err);
        size_t bad = 0, n;

        CHECK(rc == 0, "%s/%s: %s", label, d ? "stb" : "libpng", err.msg);
        if (rc)
            continue;
        CHECK(img.channels == channels, "%s: %u channels", label, img.channels);
        n = img.stride * img.height;
        CHECK(n == 65536, "%s: %zu samples", label, n);
        for (i = 0; i < n && n == 65536; i++) {
            if (img.pixels[i] != expect8(sample(i)) && bad++ < 3)
                fprintf(stderr, "%s/%s: v=%u got %u want %u\n", label, d ? "stb" : "libpng",
                        sample(i), img.pixels[i], expect8(sample(i)));
        }
        CHECK(bad == 0, "%s/%s: %zu samples wrong", label, d ? "stb" : "libpng", bad);
        ip_image_free(&img);
    }
}

static uint16_t rgb_trns_sample(size_t i)
{
    /* Pixel p is (p*7, 1000, 0x1234) except that pixel 5 and every 16th
     * equal the tRNS colour (1000, 1000, 0x1234) and pixel 6 differs from it
     * only in the low byte of blue. */
    size_t p = i / 3, c = i % 3;
    if (c == 0)
        return (uint16_t)((p % 16 == 0 || p == 5) ? 1000 : p * 7 + 1);
    if (c == 1)
        return 1000;
    return p == 6 ? 0x1235 : 0x1234;
}

static void check_rgb_trns(void)
{
    static const uint16_t trns[3] = {1000, 1000, 0x1234};
    static const enum ip_decoder decoders[] = {IP_DECODER_NATIVE, IP_DECODER_STB};
    struct membuf png = write_png16(64, 4, PNG_COLOR_TYPE_RGB, 3, rgb_trns_sample, trns);
    size_t d, p;

    for (d = 0; d < 2; d++) {
        struct ip_image img;
        struct ip_error err;
        int rc = test_decode(png.data, png.len, decoders[d], &img, &err);
        size_t bad = 0, transparent = 0;

        CHECK(rc == 0, "rgb16+tRNS: %s", err.msg);
        if (rc)
            continue;
        CHECK(img.channels == 4, "rgb16+tRNS: %u channels", img.channels);
        for (p = 0; p < 256 && img.channels == 4; p++) {
            int is_key = p % 16 == 0 || p == 5;
            const uint8_t *px = img.pixels + p * 4;
            unsigned want_b = expect8(rgb_trns_sample(p * 3 + 2));
            if (px[3] != (is_key ? 0 : 255) || px[0] != expect8(rgb_trns_sample(p * 3)) ||
                px[1] != expect8(1000) || px[2] != want_b)
                bad++;
            transparent += px[3] == 0;
        }
        CHECK(bad == 0, "rgb16+tRNS/%s: %zu pixels wrong", d ? "stb" : "libpng", bad);
        CHECK(transparent == 17, "rgb16+tRNS/%s: %zu transparent pixels", d ? "stb" : "libpng",
              transparent);
        ip_image_free(&img);
    }
    free(png.data);
}

int main(void)
{
    struct membuf gray = write_png16(256, 256, PNG_COLOR_TYPE_GRAY, 1, identity, NULL);
    struct membuf rgba = write_png16(128, 128, PNG_COLOR_TYPE_RGBA, 4, scrambled, NULL);
    struct membuf ga = write_png16(256, 128, PNG_COLOR_TYPE_GRAY_ALPHA, 2, scrambled, NULL);

    check_all_values("gray16", &gray, 1, identity);
    check_all_values("rgba16", &rgba, 4, scrambled);
    check_all_values("graya16", &ga, 2, scrambled);
    check_rgb_trns();
    free(gray.data);
    free(rgba.data);
    free(ga.data);
    return test_finish("png16_scale");
}
