/* The strip-parallel inflate of huge PNGs that imgpar wrote
 * (codec_png_fast.c, inflate_parallel), against the libpng path.
 *
 *   test_png_strips
 *
 * - PNGs written by ip__png_write with the strip threshold lowered, so
 *   that they are strip-encoded and carry an ipST chunk: gray, gray+alpha,
 *   RGB and RGBA; strips shorter than the 32 KiB window (a match may then
 *   reach two strips back) and longer; smooth colour with noise (many
 *   matches across strip starts), flat colour (long distance-1 runs),
 *   a short repeating pattern, pure noise (mostly literals).
 * - Each is decoded by the fast path with a runner that works the strips
 *   in order on one thread, in reverse order on one thread (every strip
 *   finishes before the one it needs) and on four threads: the pixels must
 *   be libpng's, byte for byte, the counters must show every strip
 *   inflated by the tasks (none left over, no layout given up) and every
 *   strip unfiltered by the tasks, and the runner's used callback (which
 *   --stats counts) must be called once. zlib's inflate of the written
 *   stream shows Sub as the filter of every strip's first row.
 * - The same written as earlier versions did (Up at strip starts:
 *   ip__png_strip_first_sub 0), and a tall narrow image (rows narrower in
 *   bytes than the last strip's first row number): libpng's pixels, the
 *   strips inflated by the tasks but unfiltered on one thread.
 * - With the records cap at 0, strips that need records are inflated again
 *   afterwards: same pixels, and the counters show them.
 * - Layouts that lie (an offset one byte off, two offsets swapped, rows
 *   per strip changed, a strip count that does not fit) or whose strips are
 *   over the size cap: same pixels, the layout given up or ignored, used
 *   not called.
 * - A stream damaged inside a middle strip (a bit flipped, the CRC made
 *   right): ip__png_decode with the runner gives exactly what ip_decode
 *   gives with the fast path off.
 * - A runner that fails (as a cancelled team does), on its first call
 *   (the inflate) or its second (the unfilter): the decode returns its
 *   code and holds no pixels. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "codec_internal.h"
#include "imgpar/codec.h"
#include "strip_pool.h"
#include "testutil.h"

/* ---- runners ---- */

enum order { IN_ORDER, REVERSED, THREADS };

struct runner_ctx {
    enum order order;
    int fail;                  /* 0, or return IP_EINTR without running anything on call `fail` (1: the first) */
    int used;                  /* times the decoder said it spread the work */
    int calls;                 /* run calls so far */
};

static void used(void *runner_ctx)
{
    ((struct runner_ctx *)runner_ctx)->used++;
}

static int run(void *runner_ctx, uint32_t n, ip__strip_fn fn, void *ctx, struct ip_error *err)
{
    struct runner_ctx *rc = runner_ctx;

    if (++rc->calls == rc->fail)
        return ip_error_set(err, IP_EINTR, "interrupted");
    switch (rc->order) {
    case IN_ORDER:
        for (uint32_t k = 0; k < n; k++)
            fn(ctx, k, err);
        break;
    case REVERSED:
        for (uint32_t k = n; k-- > 0;)
            fn(ctx, k, err);
        break;
    case THREADS:
        test_pool_run(n, fn, ctx, 4);
        break;
    }
    return 0;
}

/* ---- images ---- */

enum content { SMOOTH, FLAT, PATTERN, NOISE };

static uint32_t rng = 12345;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static struct ip_image make_image(uint32_t w, uint32_t h, uint32_t channels, enum content c)
{
    struct ip_image img;
    struct ip_error err;

    if (ip_image_alloc(&img, w, h, channels, NULL, &err) != 0)
        exit(99);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t ch = 0; ch < channels; ch++) {
                uint8_t *px = img.pixels + (size_t)y * img.stride + (size_t)x * channels + ch;

                switch (c) {
                case SMOOTH: *px = (uint8_t)((x * (ch + 1) + y * 2) / 7 + rnd() % 4); break;
                case FLAT: *px = (uint8_t)(60 + 40 * ch + (y / 97) % 2); break;
                case PATTERN: *px = (uint8_t)((x % 5) * 31 + ch * 7 + (y % 3)); break;
                case NOISE: *px = (uint8_t)rnd(); break;
                }
            }
    return img;
}

/* Writes img as a strip-encoded PNG: strips of about strip_min / 4 bytes. */
static struct ip_buf encode_strips(const struct ip_image *img, size_t strip_min)
{
    size_t saved = ip__png_strip_min;
    struct ip_buf out = {0};
    struct ip_error err;

    ip__png_strip_min = strip_min;
    ip_error_clear(&err);
    if (ip__png_strip_count(img) < 2 || ip__png_write(img, 6, NULL, 0, NULL, &out, &err) != 0) {
        fprintf(stderr, "cannot write a %ux%u strip PNG: %u strips, %s\n", img->width, img->height,
                ip__png_strip_count(img), err.msg);
        exit(99);
    }
    ip__png_strip_min = saved;
    return out;
}

/* The body of the ipST chunk, or NULL. */
static uint8_t *find_layout(const struct ip_buf *png, uint32_t *len)
{
    for (size_t pos = 8; pos + 12 <= png->len;) {
        uint32_t n = (uint32_t)png->data[pos] << 24 | (uint32_t)png->data[pos + 1] << 16 |
                     (uint32_t)png->data[pos + 2] << 8 | png->data[pos + 3];

        if (memcmp(png->data + pos + 4, "ipST", 4) == 0) {
            *len = n;
            return png->data + pos + 8;
        }
        pos += 12 + (size_t)n;
    }
    return NULL;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Makes the CRC of the chunk whose body is at body (len bytes) right. */
static void fix_crc(uint8_t *body, uint32_t len)
{
    put32(body + len, (uint32_t)crc32(0, body - 4, len + 4));
}

/* ---- decoding ---- */

static struct ip_image libpng_decode(const struct ip_buf *png)
{
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;

    ip_decode_opts_default(&opts);
    ip__png_fast_set_enabled(0);
    if (ip_decode(png->data, png->len, &opts, &img, NULL, &err) != 0) {
        fprintf(stderr, "libpng rejects a written PNG: %s\n", err.msg);
        exit(99);
    }
    ip__png_fast_set_enabled(1);
    return img;
}

struct counts {
    uint64_t parallel, deferred, declined, unfiltered;
    int used;                  /* the runner's used calls */
};

static struct counts counts_now(void)
{
    return (struct counts){atomic_load(&ip__png_strips_parallel), atomic_load(&ip__png_strips_deferred),
                           atomic_load(&ip__png_parallel_declined), atomic_load(&ip__png_strips_unfiltered), 0};
}

/* The fast path with a runner; *d gets the counters' changes. */
static int fast_decode(const struct ip_buf *png, enum order order, struct ip_image *img, struct counts *d)
{
    struct runner_ctx ctx = {order, 0, 0, 0};
    struct ip__strip_runner runner = {run, used, &ctx, NULL, 0};
    struct ip_decode_opts opts;
    struct ip_error err;
    struct counts before = counts_now(), after;
    int rc;

    ip_decode_opts_default(&opts);
    memset(img, 0, sizeof *img);
    rc = ip__png_decode_fast(png->data, png->len, NULL, &opts, &runner, img, &err);
    after = counts_now();
    d->parallel = after.parallel - before.parallel;
    d->deferred = after.deferred - before.deferred;
    d->declined = after.declined - before.declined;
    d->unfiltered = after.unfiltered - before.unfiltered;
    d->used = ctx.used;
    return rc;
}

static int same_pixels(const struct ip_image *a, const struct ip_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->pixels, b->pixels, a->stride * a->height) == 0;
}

static const char *order_name[] = {"in order", "reversed", "4 threads"};

/* Every runner: libpng's pixels, and the counters as wanted: every strip
 * inflated by the tasks or left over, want_deferred of them left over (-1:
 * at least one; -2: any number), want_unfiltered strips unfiltered by the
 * tasks. */
static void check_runners(const struct ip_buf *png, const struct ip_image *ref, uint32_t strips,
                          long want_deferred, int want_declined, uint32_t want_unfiltered, const char *what)
{
    for (int o = IN_ORDER; o <= THREADS; o++) {
        struct ip_image img;
        struct counts d;
        int rc = fast_decode(png, (enum order)o, &img, &d);

        CHECK(rc == 0, "%s, %s: fast path rc %d", what, order_name[o], rc);
        if (rc == 0)
            CHECK(same_pixels(&img, ref), "%s, %s: pixels differ from libpng's", what, order_name[o]);
        CHECK(d.declined == (uint64_t)want_declined, "%s, %s: %llu layouts given up, expected %d", what,
              order_name[o], (unsigned long long)d.declined, want_declined);
        CHECK(d.used == !want_declined, "%s, %s: used called %d times", what, order_name[o], d.used);
        CHECK(d.unfiltered == want_unfiltered, "%s, %s: %llu strips unfiltered at once, expected %u", what,
              order_name[o], (unsigned long long)d.unfiltered, want_unfiltered);
        if (!want_declined) {
            CHECK(d.parallel + d.deferred == strips, "%s, %s: %llu + %llu strips, expected %u", what,
                  order_name[o], (unsigned long long)d.parallel, (unsigned long long)d.deferred, strips);
            if (want_deferred >= 0)
                CHECK(d.deferred == (uint64_t)want_deferred, "%s, %s: %llu strips left over, expected %ld",
                      what, order_name[o], (unsigned long long)d.deferred, want_deferred);
            else if (want_deferred == -1)
                CHECK(d.deferred > 0, "%s, %s: no strip left over", what, order_name[o]);
        }
        ip_image_free(&img);
    }
}

/* The filter byte of every strip's first row (k = 1..strips-1) in the
 * written stream, inflated by zlib: 1 when all are `want`, else 0. */
static int strip_filters_are(const struct ip_buf *png, const struct ip_image *img, uint32_t rows,
                             uint32_t strips, int want)
{
    size_t fb = (size_t)img->width * img->channels + 1, raw_len = fb * img->height, z_len = 0;
    uint8_t *z = malloc(png->len), *raw = malloc(raw_len);
    uLongf got = (uLongf)raw_len;
    int ok = z && raw;

    for (size_t pos = 8; ok && pos + 12 <= png->len;) {
        uint32_t n = get32(png->data + pos);

        if (memcmp(png->data + pos + 4, "IDAT", 4) == 0) {
            memcpy(z + z_len, png->data + pos + 8, n);
            z_len += n;
        }
        pos += 12 + (size_t)n;
    }
    ok = ok && uncompress(raw, &got, z, (uLong)z_len) == Z_OK && got == raw_len;
    for (uint32_t k = 1; ok && k < strips; k++)
        ok = raw[(size_t)k * rows * fb] == want;
    free(z);
    free(raw);
    return ok;
}

static void plain_cases(void)
{
    static const struct {
        uint32_t w, h, channels;
        enum content content;
        size_t strip_min;
    } cases[] = {
        {300, 200, 3, SMOOTH, 100000},    /* strips of ~25 KB: the window spans two */
        {300, 200, 4, FLAT, 100000},
        {257, 190, 1, PATTERN, 40000},
        {301, 190, 2, NOISE, 100000},
        {700, 500, 3, SMOOTH, 400000},    /* strips of ~100 KB */
        {640, 480, 4, PATTERN, 400000},
        {999, 333, 1, SMOOTH, 200000},
        {500, 401, 3, NOISE, 400000},
        {40, 3000, 1, SMOOTH, 40000},     /* rows of 40 bytes: unfiltered on one thread */
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int first_sub = 1; first_sub >= 0; first_sub--) {
            struct ip_image src = make_image(cases[i].w, cases[i].h, cases[i].channels, cases[i].content);
            struct ip_buf png;
            struct ip_image ref;
            uint32_t layout_len, strips, rows, unfiltered;
            uint8_t *layout;
            char what[112];

            /* first_sub: the default, which must be Sub at strip starts */
            int saved = ip__png_strip_first_sub;

            if (!first_sub)
                ip__png_strip_first_sub = 0;
            png = encode_strips(&src, cases[i].strip_min);
            ip__png_strip_first_sub = saved;
            ref = libpng_decode(&png);
            layout = find_layout(&png, &layout_len);
            snprintf(what, sizeof what, "%ux%u x%u content %d%s", cases[i].w, cases[i].h, cases[i].channels,
                     (int)cases[i].content, first_sub ? "" : ", Up at strip starts");
            CHECK(layout != NULL, "%s: no ipST chunk", what);
            if (!layout) {
                ip_image_free(&ref);
                ip_image_free(&src);
                ip_buf_free(&png);
                continue;
            }
            rows = get32(layout);
            strips = get32(layout + 4);
            CHECK(same_pixels(&ref, &src), "%s: libpng does not give the written pixels", what);
            CHECK(strip_filters_are(&png, &src, rows, strips, first_sub ? 1 : 2),
                  "%s: a strip's first row is not filtered with %s", what, first_sub ? "Sub" : "Up");
            /* Unfiltered by the tasks: Sub at strip starts, and rows wider
             * in bytes than the last strip's first row number. */
            unfiltered = first_sub && (uint64_t)(strips - 1) * rows < (uint64_t)cases[i].w * cases[i].channels
                             ? strips : 0;
            CHECK(cases[i].w != 40 || unfiltered == 0, "%s: the narrow case would be unfiltered at once", what);
            CHECK(cases[i].w == 40 || !first_sub || unfiltered == strips, "%s: not a case for the tasks", what);
            check_runners(&png, &ref, strips, 0, 0, unfiltered, what);

            /* No room for records: the strips that need them are inflated
             * again (noise may have no match across a strip start). */
            ip__png_records_max = 0;
            check_runners(&png, &ref, strips, cases[i].content == NOISE ? -2 : -1, 0, unfiltered, what);
            ip__png_records_max = (size_t)32 << 20;

            ip_image_free(&ref);
            ip_image_free(&src);
            ip_buf_free(&png);
        }
    }
}

/* Layouts that lie cost time, never bytes. */
static void lying_layouts(void)
{
    struct ip_image src = make_image(600, 300, 3, SMOOTH);
    struct ip_buf png = encode_strips(&src, 100000);
    struct ip_image ref = libpng_decode(&png);
    uint32_t len, n;
    uint8_t *layout = find_layout(&png, &len), saved[4096];

    if (!layout || len > sizeof saved)
        exit(99);
    n = get32(layout + 4);
    memcpy(saved, layout, len);
    for (int edit = 0; edit < 6; edit++) {
        int declined = 1;
        char what[64];

        memcpy(layout, saved, len);
        switch (edit) {
        case 0:   /* strip 2 starts a byte later */
            put32(layout + 8 * 2 + 4, get32(layout + 8 * 2 + 4) + 1);
            break;
        case 1:   /* strip 2 starts a byte earlier */
            put32(layout + 8 * 2 + 4, get32(layout + 8 * 2 + 4) - 1);
            break;
        case 2:   /* strips 2 and 3 swapped: not increasing, so the chunk is ignored */
            memcpy(layout + 16, saved + 24, 8);
            memcpy(layout + 24, saved + 16, 8);
            declined = 0;
            break;
        case 3:   /* one row more per strip: the strips' bytes do not match (or,
                   * when the count no longer fits the rows, the chunk is ignored) */
            put32(layout, get32(layout) + 1);
            declined = (uint64_t)(n - 1) * get32(layout) < src.height;
            break;
        case 4:   /* a count that does not fit the rows: ignored */
            put32(layout + 4, n + 1);
            declined = 0;
            break;
        case 5:   /* the chunk as written, but strips over the size cap: ignored */
            ip__png_strip_bytes_max = 1000;
            declined = 0;
            break;
        }
        fix_crc(layout, len);
        snprintf(what, sizeof what, "layout edit %d", edit);
        for (int o = IN_ORDER; o <= THREADS; o++) {
            struct ip_image img;
            struct counts d;
            int rc = fast_decode(&png, (enum order)o, &img, &d);

            CHECK(rc == 0, "%s, %s: rc %d", what, order_name[o], rc);
            if (rc == 0)
                CHECK(same_pixels(&img, &ref), "%s, %s: pixels differ", what, order_name[o]);
            CHECK(d.declined == (uint64_t)declined, "%s, %s: %llu layouts given up, expected %d", what,
                  order_name[o], (unsigned long long)d.declined, declined);
            CHECK(declined || d.parallel + d.deferred == 0, "%s, %s: an ignored layout was used", what,
                  order_name[o]);
            CHECK(d.used == 0, "%s, %s: used called for a layout that lied", what, order_name[o]);
            ip_image_free(&img);
        }
        ip__png_strip_bytes_max = (size_t)16 << 20;
    }
    ip_image_free(&ref);
    ip_image_free(&src);
    ip_buf_free(&png);
}

/* A damaged stream: the same outcome as without the fast path. */
static void damaged_stream(void)
{
    struct ip_image src = make_image(600, 300, 3, SMOOTH);
    struct ip_buf png = encode_strips(&src, 100000);
    uint32_t len, idat_len;
    uint8_t *layout = find_layout(&png, &len), *idat;

    if (!layout)
        exit(99);
    idat = layout + len + 4;   /* the IDAT chunk follows: length, name, body */
    idat_len = get32(idat);
    if (memcmp(idat + 4, "IDAT", 4) != 0)
        exit(99);
    for (int at = 0; at < 3; at++) {
        /* A bit in strip 3's data, in strip 1's, and in the last strip's. */
        uint32_t strip = at == 0 ? 3 : at == 1 ? 1 : get32(layout + 4) - 1;
        size_t off = (size_t)get32(layout + 8 * strip + 4) + 40;
        struct runner_ctx ctx = {THREADS, 0, 0, 0};
        struct ip__strip_runner runner = {run, used, &ctx, NULL, 0};
        struct ip_decode_opts opts;
        struct ip_image a, b;
        struct ip_error ea, eb;
        int ra, rb;

        if (off >= idat_len)
            exit(99);
        idat[8 + off] ^= 0x10;
        fix_crc(idat + 8, idat_len);
        ip_decode_opts_default(&opts);
        memset(&a, 0, sizeof a);
        ip_error_clear(&ea);
        ra = ip__png_decode(png.data, png.len, NULL, &opts, &runner, &a, &ea);
        ip__png_fast_set_enabled(0);
        rb = ip_decode(png.data, png.len, &opts, &b, NULL, &eb);
        ip__png_fast_set_enabled(1);
        CHECK(ra == rb && strcmp(ea.msg, eb.msg) == 0, "damaged strip %u: %d \"%s\" vs libpng %d \"%s\"", strip,
              ra, ea.msg, rb, eb.msg);
        CHECK(ra != 0 || (rb == 0 && same_pixels(&a, &b)), "damaged strip %u: pixels differ", strip);
        CHECK(ctx.used == 0, "damaged strip %u: used called", strip);
        ip_image_free(&a);
        ip_image_free(&b);
        idat[8 + off] ^= 0x10;
        fix_crc(idat + 8, idat_len);
    }
    ip_image_free(&src);
    ip_buf_free(&png);
}

/* A runner that fails, on its first call (the inflate) or its second (the
 * unfilter): its code, no pixels. */
static void failing_runner(void)
{
    struct ip_image src = make_image(300, 200, 3, SMOOTH);
    struct ip_buf png = encode_strips(&src, 100000);

    for (int call = 1; call <= 2; call++) {
        struct runner_ctx ctx = {IN_ORDER, call, 0, 0};
        struct ip__strip_runner runner = {run, used, &ctx, NULL, 0};
        struct ip_decode_opts opts;
        struct ip_image img;
        struct ip_error err;
        int rc;

        ip_decode_opts_default(&opts);
        memset(&img, 0, sizeof img);
        ip_error_clear(&err);
        rc = ip__png_decode_fast(png.data, png.len, NULL, &opts, &runner, &img, &err);
        CHECK(rc == IP_EINTR && err.code == IP_EINTR, "runner failing on call %d: rc %d, code %d", call, rc,
              err.code);
        CHECK(img.pixels == NULL && ctx.calls == call, "runner failing on call %d: pixels kept, or %d calls",
              call, ctx.calls);
        CHECK(ctx.used == call - 1, "runner failing on call %d: used called %d times", call, ctx.used);
    }
    ip_image_free(&src);
    ip_buf_free(&png);
}

int main(void)
{
    plain_cases();
    lying_layouts();
    damaged_stream();
    failing_runner();
    return test_finish("test_png_strips");
}
