/* JPEG conformance against libjpeg-turbo's test images, plus JPEGs written
 * here with libjpeg to cover progressive, restart markers and CMYK/YCCK.
 *
 *   test_jpeg JPEG_DIR
 *
 * - testorig.jpg decodes within 3 levels of testorig.ppm everywhere.
 * - testimgint.jpg (Huffman) and testimgari.jpg (arithmetic) decode to the
 *   same pixels, close to testorig.ppm.
 * - monkey12.jpg (12-bit) is IP_EUNSUP with "12-bit" in the message.
 * - jpeg_luma_only gives the Y channel; truncated data is IP_ETRUNC unless
 *   allow_truncated; corrupt entropy data is an error.
 * - progressive == baseline with the same tables; restart markers decode;
 *   Adobe (inverted) CMYK, YCCK and plain CMYK convert to RGB. */
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "imgpar/codec.h"
#include "testutil.h"

#define W 227
#define H 149

static const char *jpeg_dir;

static uint8_t *load(const char *name, size_t *len)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", jpeg_dir, name);
    return test_read_file(path, len);
}

/* Minimal binary PPM (P6, maxval 255) reader. */
static uint8_t *read_ppm(const char *name, uint32_t *w, uint32_t *h)
{
    size_t len, pos = 2;
    uint8_t *data = load(name, &len), *pix;
    unsigned long vals[3];
    int k;

    if (len < 2 || data[0] != 'P' || data[1] != '6')
        exit(99);
    for (k = 0; k < 3; k++) {
        for (;;) {
            while (pos < len && strchr(" \t\r\n", data[pos]))
                pos++;
            if (pos < len && data[pos] == '#') {
                while (pos < len && data[pos] != '\n')
                    pos++;
                continue;
            }
            break;
        }
        vals[k] = 0;
        while (pos < len && data[pos] >= '0' && data[pos] <= '9')
            vals[k] = vals[k] * 10 + (unsigned long)(data[pos++] - '0');
    }
    pos++;   /* the single whitespace byte before the raster */
    if (vals[2] != 255 || len - pos < vals[0] * vals[1] * 3)
        exit(99);
    *w = (uint32_t)vals[0];
    *h = (uint32_t)vals[1];
    pix = malloc(vals[0] * vals[1] * 3);
    if (!pix)
        exit(99);
    memcpy(pix, data + pos, vals[0] * vals[1] * 3);
    free(data);
    return pix;
}

static int decode_with(const uint8_t *data, size_t len, enum ip_decoder decoder, int luma,
                       int allow_truncated, struct ip_image *img, struct ip_error *err)
{
    struct ip_decode_opts opts;
    enum ip_format fmt;
    int rc;

    ip_decode_opts_default(&opts);
    opts.decoder = decoder;
    opts.jpeg_luma_only = luma;
    opts.allow_truncated = allow_truncated;
    rc = ip_decode(data, len, &opts, img, &fmt, err);
    CHECK(fmt == IP_FORMAT_JPEG, "format %s", ip_format_name(fmt));
    return rc;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n, double *mean)
{
    size_t i;
    int worst = 0;
    double sum = 0;

    for (i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > worst)
            worst = d;
        sum += d;
    }
    if (mean)
        *mean = n ? sum / (double)n : 0;
    return worst;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    size_t i;

    for (i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 * (double)n / se);
}

static void test_testorig(const uint8_t *ref)
{
    struct ip_image img, y;
    struct ip_error err;
    size_t len, i;
    uint8_t *data = load("testorig.jpg", &len);
    int rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 0, &img, &err);

    CHECK(rc == 0, "testorig: %s", err.msg);
    if (rc == 0) {
        double mean;
        int worst;
        CHECK(img.width == W && img.height == H && img.channels == 3 && img.stride == W * 3,
              "testorig: %ux%ux%u stride %zu", img.width, img.height, img.channels, img.stride);
        worst = max_diff(img.pixels, ref, (size_t)W * H * 3, &mean);
        CHECK(worst <= 3, "testorig: max diff %d", worst);
        printf("testorig: max diff %d, mean %.3f, PSNR %.2f dB\n", worst, mean,
               psnr(img.pixels, ref, (size_t)W * H * 3));

        /* Luma only: 1 channel, the Y of the colour decode within rounding
         * and chroma-upsampling error (larger only where RGB clipped). */
        rc = decode_with(data, len, IP_DECODER_NATIVE, 1, 0, &y, &err);
        CHECK(rc == 0, "testorig luma: %s", err.msg);
        if (rc == 0) {
            double sum = 0;
            size_t far = 0;
            CHECK(y.channels == 1 && y.width == W && y.height == H, "luma: %ux%ux%u", y.width,
                  y.height, y.channels);
            for (i = 0; i < (size_t)W * H && y.channels == 1; i++) {
                const uint8_t *p = img.pixels + i * 3;
                double d = fabs(y.pixels[i] - (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
                sum += d;
                far += d > 2.0;
            }
            CHECK(sum / ((double)W * H) < 0.6 && far < (size_t)W * H / 100,
                  "luma: mean %.3f, %zu pixels off by more than 2", sum / ((double)W * H), far);
            ip_image_free(&y);
        }

        /* stb_image decodes the same file with its own IDCT and upsampler. */
        {
            struct ip_image s;
            rc = decode_with(data, len, IP_DECODER_STB, 0, 0, &s, &err);
            CHECK(rc == 0, "testorig stb: %s", err.msg);
            if (rc == 0) {
                CHECK(s.width == W && s.height == H && s.channels == 3, "stb shape");
                if (s.channels == 3 && s.width == W && s.height == H) {
                    max_diff(s.pixels, ref, (size_t)W * H * 3, &mean);
                    CHECK(mean < 2.0, "testorig stb: mean diff %.3f", mean);
                }
                ip_image_free(&s);
            }
        }
        ip_image_free(&img);
    }
    free(data);
}

static void test_int_ari(const uint8_t *ref)
{
    struct ip_image a, b;
    struct ip_error ea, eb;
    size_t la, lb;
    uint8_t *da = load("testimgint.jpg", &la), *db = load("testimgari.jpg", &lb);
    int ra = decode_with(da, la, IP_DECODER_NATIVE, 0, 0, &a, &ea);
    int rb = decode_with(db, lb, IP_DECODER_NATIVE, 0, 0, &b, &eb);

    CHECK(ra == 0, "testimgint: %s", ea.msg);
    CHECK(rb == 0, "testimgari: %s", eb.msg);
    if (ra == 0 && rb == 0) {
        CHECK(a.width == W && a.height == H && a.channels == 3, "int shape %ux%ux%u", a.width,
              a.height, a.channels);
        CHECK(b.width == W && b.height == H && b.channels == 3, "ari shape %ux%ux%u", b.width,
              b.height, b.channels);
        if (a.width == W && a.height == H && a.channels == 3 && b.width == W && b.height == H &&
            b.channels == 3) {
            double p = psnr(a.pixels, ref, (size_t)W * H * 3);
            CHECK(memcmp(a.pixels, b.pixels, (size_t)W * H * 3) == 0,
                  "Huffman and arithmetic decodes differ");
            CHECK(p > 45.0, "testimgint PSNR %.2f dB", p);
            printf("testimgint == testimgari, PSNR %.2f dB\n", p);
        }
    }
    ip_image_free(&a);
    ip_image_free(&b);
    free(da);
    free(db);
}

static void test_12bit(void)
{
    struct ip_image img;
    struct ip_error err;
    size_t len;
    uint8_t *data = load("monkey12.jpg", &len);
    int rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 0, &img, &err);

    CHECK(rc == IP_EUNSUP, "monkey12: rc %d (%s)", rc, err.msg);
    CHECK(err.code == rc, "monkey12: err.code %d", err.code);
    CHECK(strstr(err.msg, "12-bit") != NULL, "monkey12: message '%s'", err.msg);
    CHECK(img.pixels == NULL, "monkey12: pixels left");
    printf("monkey12: %d %s\n", rc, err.msg);
    free(data);
}

static void test_truncated(void)
{
    static const enum ip_decoder decoders[] = {IP_DECODER_NATIVE, IP_DECODER_STB};
    struct ip_image full, img;
    struct ip_error err;
    size_t len, cut, d;
    uint8_t *data = load("testorig.jpg", &len);
    int rc;

    rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 0, &full, &err);
    CHECK(rc == 0, "full decode: %s", err.msg);
    cut = len / 2;
    for (d = 0; d < 2; d++) {
        const char *dn = d ? "stb" : "libjpeg";

        rc = decode_with(data, cut, decoders[d], 0, 0, &img, &err);
        CHECK(rc == IP_ETRUNC, "%s truncated: rc %d (%s)", dn, rc, err.msg);
        CHECK(strcmp(err.msg, "truncated JPEG data") == 0, "%s truncated: '%s'", dn, err.msg);
        CHECK(img.pixels == NULL, "%s truncated: pixels left", dn);

        rc = decode_with(data, cut, decoders[d], 0, 1, &img, &err);
        CHECK(rc == 0, "%s allow_truncated: rc %d (%s)", dn, rc, err.msg);
        CHECK(err.code == 0 && strstr(err.msg, "truncated") != NULL,
              "%s allow_truncated: warning '%s' code %d", dn, err.msg, err.code);
        if (rc == 0 && full.pixels) {
            CHECK(img.width == W && img.height == H && img.channels == 3, "%s: shape", dn);
            /* The rows before the cut are complete. */
            if (d == 0 && img.width == W && img.channels == 3)
                CHECK(memcmp(img.pixels, full.pixels, (size_t)W * 3 * 32) == 0,
                      "first rows differ from the full decode");
            ip_image_free(&img);
        }
    }
    ip_image_free(&full);

    /* Only the SOI marker and a bit more. */
    rc = decode_with(data, 4, IP_DECODER_NATIVE, 0, 0, &img, &err);
    CHECK(rc == IP_ETRUNC || rc == IP_ECORRUPT, "4-byte JPEG: rc %d (%s)", rc, err.msg);
    CHECK(err.msg[0] != '\0' && img.pixels == NULL, "4-byte JPEG: msg/pixels");
    free(data);
}

/* Offset just past the SOS segment header (the start of entropy data). */
static size_t scan_start(const uint8_t *data, size_t len)
{
    size_t i;

    for (i = 0; i + 3 < len; i++)
        if (data[i] == 0xff && data[i + 1] == 0xda)
            return i + 2 + ((size_t)data[i + 2] << 8 | data[i + 3]);
    return 0;
}

static void test_corrupt(void)
{
    struct ip_image img;
    struct ip_error err;
    size_t len, start, i;
    uint8_t *data = load("testorig.jpg", &len);
    int rc;

    start = scan_start(data, len);
    CHECK(start > 0 && start + 400 < len, "no scan found");
    /* 100 stuffed 0xFF bytes: a run of 800 one-bits is no Huffman code. */
    for (i = 0; i < 200; i += 2) {
        data[start + 100 + i] = 0xff;
        data[start + 101 + i] = 0x00;
    }
    rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 0, &img, &err);
    CHECK(rc == IP_ECORRUPT, "corrupt scan: rc %d (%s)", rc, err.msg);
    CHECK(img.pixels == NULL, "corrupt scan: pixels left");
    printf("corrupt scan: %d %s\n", rc, err.msg);
    /* Corruption is not truncation: allow_truncated does not excuse it. */
    rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 1, &img, &err);
    CHECK(rc == IP_ECORRUPT && img.pixels == NULL, "corrupt scan, allow_truncated: rc %d (%s)",
          rc, err.msg);

    /* Garbage after the JPEG magic. */
    memset(data + 3, 0x42, 64);
    rc = decode_with(data, len, IP_DECODER_NATIVE, 0, 0, &img, &err);
    CHECK(rc < 0 && err.msg[0] != '\0', "garbage header: rc %d", rc);
    free(data);
}

/* ---- JPEGs written here ---- */

struct jpeg_out {
    unsigned char *data;
    unsigned long len;
};

enum variant { BASELINE, PROGRESSIVE, RESTART, CMYK_ADOBE, YCCK_ADOBE, CMYK_PLAIN };

static struct jpeg_out write_jpeg(const uint8_t *pix, uint32_t w, uint32_t h, int comps,
                                  enum variant v, int quality)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    struct jpeg_out out = {NULL, 0};
    uint32_t y;

    c.err = jpeg_std_error(&jerr);   /* a failure here is a test bug: exit is fine */
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out.data, &out.len);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (v == PROGRESSIVE)
        jpeg_simple_progression(&c);
    if (v == RESTART)
        c.restart_interval = 3;
    if (v == YCCK_ADOBE) {
        /* No chroma subsampling: the test card has sharp colour edges. */
        int k;
        jpeg_set_colorspace(&c, JCS_YCCK);
        for (k = 0; k < 4; k++)
            c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
    }
    if (v == CMYK_PLAIN)
        c.write_Adobe_marker = FALSE;
    jpeg_start_compress(&c, TRUE);
    for (y = 0; y < h; y++) {
        JSAMPROW row = (JSAMPROW)(uintptr_t)(pix + (size_t)y * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

static void test_written(const uint8_t *ref)
{
    struct jpeg_out base = write_jpeg(ref, W, H, 3, BASELINE, 85);
    struct jpeg_out prog = write_jpeg(ref, W, H, 3, PROGRESSIVE, 85);
    struct jpeg_out rst = write_jpeg(ref, W, H, 3, RESTART, 85);
    struct ip_image a, b, r;
    struct ip_error err;
    int rc;
    size_t i;

    CHECK(base.len > 0 && prog.len > 0 && rst.len > 0, "libjpeg wrote nothing");
    {
        int markers = 0;
        for (i = 0; i + 1 < rst.len; i++)
            markers += rst.data[i] == 0xff && rst.data[i + 1] >= 0xd0 && rst.data[i + 1] <= 0xd7;
        CHECK(markers > 10, "only %d restart markers written", markers);
    }
    rc = decode_with(base.data, base.len, IP_DECODER_NATIVE, 0, 0, &a, &err);
    CHECK(rc == 0, "baseline: %s", err.msg);
    rc = decode_with(prog.data, prog.len, IP_DECODER_NATIVE, 0, 0, &b, &err);
    CHECK(rc == 0, "progressive: %s", err.msg);
    rc = decode_with(rst.data, rst.len, IP_DECODER_NATIVE, 0, 0, &r, &err);
    CHECK(rc == 0, "restart: %s", err.msg);
    if (a.pixels && b.pixels && r.pixels) {
        CHECK(memcmp(a.pixels, b.pixels, (size_t)W * H * 3) == 0,
              "progressive decode differs from baseline");
        CHECK(memcmp(a.pixels, r.pixels, (size_t)W * H * 3) == 0,
              "restart-marker decode differs from baseline");
        CHECK(psnr(a.pixels, ref, (size_t)W * H * 3) > 35, "baseline q85 PSNR too low");
    }
    ip_image_free(&a);
    ip_image_free(&b);
    ip_image_free(&r);
    free(base.data);
    free(prog.data);
    free(rst.data);
}

/* Gray encodes (ip_encode takes libjpeg's raw-data path for 1 and 2
 * channels) are byte-identical to libjpeg's scanline path with imgpar's
 * settings (baseline, ISLOW, no optimisation), at every width and height
 * remainder modulo 8, with and without an alpha channel to drop. */
static void test_gray_encode(const uint8_t *ref)
{
    static const uint32_t sizes[][2] = {{1, 1}, {7, 9}, {8, 8}, {9, 7}, {16, 17}, {33, 15}, {227, 149}};
    unsigned cases = 0;

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint32_t w = sizes[s][0], h = sizes[s][1];
        uint8_t *g = malloc((size_t)w * h), *ga = malloc((size_t)w * h * 2);

        if (!g || !ga)
            exit(99);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                const uint8_t *p = ref + ((size_t)(y % H) * W + x % W) * 3;   /* testorig's photo */
                g[(size_t)y * w + x] = (uint8_t)((p[0] + 2 * p[1] + p[2]) / 4);
                ga[((size_t)y * w + x) * 2] = g[(size_t)y * w + x];
                ga[((size_t)y * w + x) * 2 + 1] = (uint8_t)(x * 13 + y);
            }
        for (int q = 10; q <= 100; q += 45) {
            struct jpeg_compress_struct c;
            struct jpeg_error_mgr jerr;
            struct jpeg_out want = {NULL, 0};

            c.err = jpeg_std_error(&jerr);
            jpeg_create_compress(&c);
            jpeg_mem_dest(&c, &want.data, &want.len);
            c.image_width = w;
            c.image_height = h;
            c.input_components = 1;
            c.in_color_space = JCS_GRAYSCALE;
            jpeg_set_defaults(&c);
            jpeg_set_quality(&c, q, TRUE);
            c.dct_method = JDCT_ISLOW;
            c.optimize_coding = FALSE;
            jpeg_start_compress(&c, TRUE);
            for (uint32_t y = 0; y < h; y++) {
                JSAMPROW row = g + (size_t)y * w;
                jpeg_write_scanlines(&c, &row, 1);
            }
            jpeg_finish_compress(&c);
            jpeg_destroy_compress(&c);
            for (uint32_t ch = 1; ch <= 2; ch++) {
                struct ip_image img = {w, h, ch, (size_t)w * ch, ch == 1 ? g : ga};
                struct ip_encode_opts opts;
                struct ip_buf out = {0};
                struct ip_error err;

                ip_encode_opts_default(&opts);
                opts.jpeg_quality = q;
                CHECK(ip_encode(&img, IP_FORMAT_JPEG, &opts, &out, &err) == 0, "%ux%u q%d: %s", w, h, q,
                      err.msg);
                CHECK(out.len == want.len && memcmp(out.data, want.data, want.len) == 0,
                      "%ux%ux%u q%d: %zu bytes, libjpeg's scanline path %lu", w, h, ch, q, out.len, want.len);
                ip_buf_free(&out);
                cases++;
            }
            free(want.data);
        }
        free(g);
        free(ga);
    }
    CHECK(cases == 42, "%u gray encodes compared", cases);
}

/* CMYK test card: 16x16 blocks of constant ink so that quality-100 JPEG
 * error stays tiny; values are stored as the writer is told. */
static void test_cmyk(void)
{
    enum { CW = 64, CH = 48 };
    static const enum variant variants[] = {CMYK_ADOBE, YCCK_ADOBE, CMYK_PLAIN};
    static const char *names[] = {"Adobe CMYK", "Adobe YCCK", "plain CMYK"};
    uint8_t *cmyk = malloc(CW * CH * 4);
    size_t v, i;

    if (!cmyk)
        exit(99);
    for (i = 0; i < CW * CH; i++) {
        size_t bx = (i % CW) / 16, by = (i / CW) / 16;
        cmyk[i * 4 + 0] = (uint8_t)(bx * 80);
        cmyk[i * 4 + 1] = (uint8_t)(255 - by * 100);
        cmyk[i * 4 + 2] = (uint8_t)(60 + bx * 40 + by * 20);
        cmyk[i * 4 + 3] = (uint8_t)(by == 1 ? 128 : 250 - bx * 30);
    }
    for (v = 0; v < 3; v++) {
        struct jpeg_out j = write_jpeg(cmyk, CW, CH, 4, variants[v], 100);
        struct ip_image img;
        struct ip_error err;
        int rc = decode_with(j.data, j.len, IP_DECODER_NATIVE, 0, 0, &img, &err);
        int worst = 0;

        CHECK(rc == 0, "%s: %s", names[v], err.msg);
        if (rc == 0) {
            CHECK(img.channels == 3 && img.width == CW && img.height == CH, "%s: %ux%ux%u",
                  names[v], img.width, img.height, img.channels);
            for (i = 0; i < CW * CH && img.channels == 3; i++) {
                int k, d;
                for (k = 0; k < 3; k++) {
                    int ink = cmyk[i * 4 + k], black = cmyk[i * 4 + 3], want;
                    if (variants[v] == CMYK_PLAIN) {
                        ink = 255 - ink;
                        black = 255 - black;
                    }
                    want = (ink * black + 127) / 255;
                    d = abs(img.pixels[i * 3 + k] - want);
                    if (d > worst)
                        worst = d;
                }
            }
            CHECK(worst <= 4, "%s: max diff %d", names[v], worst);
            printf("%s: max diff %d\n", names[v], worst);
            /* luma_only is ignored for CMYK. */
            ip_image_free(&img);
            rc = decode_with(j.data, j.len, IP_DECODER_NATIVE, 1, 0, &img, &err);
            CHECK(rc == 0 && img.channels == 3, "%s luma_only: rc %d, %u channels", names[v], rc,
                  img.channels);
            ip_image_free(&img);
        }
        free(j.data);
    }
    free(cmyk);
}

int main(int argc, char **argv)
{
    uint32_t w, h;
    uint8_t *ref;

    if (argc != 2) {
        fprintf(stderr, "usage: %s JPEG_DIR\n", argv[0]);
        return 99;
    }
    jpeg_dir = argv[1];
    ref = read_ppm("testorig.ppm", &w, &h);
    CHECK(w == W && h == H, "testorig.ppm is %ux%u", w, h);
    if (w == W && h == H) {
        test_testorig(ref);
        test_int_ari(ref);
        test_written(ref);
        test_gray_encode(ref);
    }
    test_12bit();
    test_truncated();
    test_corrupt();
    test_cmyk();
    free(ref);
    return test_finish("jpeg");
}
