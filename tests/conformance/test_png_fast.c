/* The fast PNG path (codec_png_fast.c) against the libpng path.
 *
 *   test_png_fast corpus CONFORMANCE_DIR SAMPLES_DIR
 *       every valid PngSuite file, every PNG in samples/ and ~3000 generated
 *       PNGs (every filter type forced, widths 1..70, every colour type at
 *       8 bits and 16, palettes with and without tRNS, many IDATs, zlib
 *       levels 0-9, fixed-Huffman / Huffman-only / RLE strategies, small
 *       windows, ancillary chunks, data after IEND): the fast path either
 *       declines or gives exactly the libpng path's channels and bytes (and
 *       libpng's bytes are the generator's pixels); it accepts exactly the
 *       expected files (so it cannot silently decline everything).
 *   test_png_fast crafted
 *       zlib streams that zlib rejects and libdeflate accepts (length
 *       symbols 286/287, distance symbols 30/31, too many code lengths,
 *       overrunning repeats, a used invalid codeword of an incomplete
 *       code, a used empty distance code, too-far distances in a small
 *       window): the fast path declines them and the libpng path rejects
 *       them. Chunk insertions and removals, and libpng's chunk-size
 *       limits on both sides: the fast path agrees with libpng. Custom
 *       allocators: one call, refusals passed through unchanged.
 *   test_png_fast mutations CONFORMANCE_DIR
 *       every x*.png is declined; damaged copies of valid files (the
 *       decode_mutations damage, with and without the CRCs repaired, and
 *       IDAT bit flips with the CRC and, via libdeflate, the Adler-32
 *       repaired): whenever the fast path accepts, libpng accepts with the
 *       same bytes, and ip_decode gives the same result with the fast path
 *       on and off.
 *   test_png_fast truncation CONFORMANCE_DIR SAMPLES_DIR
 *       prefixes of several PNGs at many lengths, strict and with
 *       allow_truncated: ip_decode gives the same code, message and pixels
 *       with the fast path on and off.
 *   test_png_fast give_back
 *       the loader's pages given back while a 3-12 MB PNG is inflated
 *       (ip__decode_owned with the runner's give_back): one IDAT and many,
 *       direct colour, palette and 16 bits; the pixels are libpng's, and
 *       mincore finds the pages read gone (all there without give_back). A
 *       stream damaged late (CRC repaired) returns IP__EREREAD with nothing
 *       allocated; decoded again without give_back it gives ip_decode's
 *       code and message.
 *
 * Every fast-path decode runs twice, with every instruction set the CPU has
 * and with SSE2 only (ip__png_fast_set_enabled(2)), and must agree. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libdeflate.h>
#include <zlib.h>

#include "codec_internal.h"
#include "imgpar/codec.h"
#include "testutil.h"

/* ---- decoding both ways ---- */

struct outcome {
    int rc;
    struct ip_error err;
    struct ip_image img;
};

static void outcome_free(struct outcome *o)
{
    ip_image_free(&o->img);
}

/* ip_decode with the fast path on or off. */
static struct outcome decode_with(const uint8_t *data, size_t len, int fast, int allow_truncated)
{
    struct ip_decode_opts opts;
    struct outcome o;

    ip_decode_opts_default(&opts);
    opts.allow_truncated = allow_truncated;
    ip__png_fast_set_enabled(fast);
    o.rc = ip_decode(data, len, &opts, &o.img, NULL, &o.err);
    ip__png_fast_set_enabled(1);
    return o;
}

static int same_image(const struct ip_image *a, const struct ip_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           a->stride == b->stride &&
           memcmp(a->pixels, b->pixels, a->stride * a->height) == 0;
}

/* Same return, code, message and pixels. */
static int same_outcome(const struct outcome *a, const struct outcome *b)
{
    if (a->rc != b->rc || a->err.code != b->err.code || strcmp(a->err.msg, b->err.msg) != 0)
        return 0;
    if (a->rc == 0)
        return same_image(&a->img, &b->img);
    return a->img.pixels == NULL && b->img.pixels == NULL;
}

static long fast_accepted, fast_declined;

/* The fast path alone, in mode 1 (every instruction set the CPU has) or 2
 * (SSE2 only). */
static int fast_once(const uint8_t *data, size_t len, int mode, struct ip_image *img,
                     struct ip_error *err)
{
    struct ip_decode_opts opts;
    int rc;

    ip_decode_opts_default(&opts);
    ip__png_fast_set_enabled(mode);
    memset(img, 0, sizeof *img);
    ip_error_clear(err);
    rc = ip__png_decode_fast(data, len, NULL, &opts, NULL, img, err);
    ip__png_fast_set_enabled(1);
    return rc;
}

/* The fast path on a writable copy of data (several IDATs are then moved
 * together in place). *copy_ok: the copy is byte for byte the file again
 * (it must be whenever the fast path did not finish). */
static int fast_writable(const uint8_t *data, size_t len, struct ip_image *img, struct ip_error *err,
                         int *copy_ok)
{
    struct ip_decode_opts opts;
    uint8_t *copy = malloc(len + 1);
    int rc;

    if (!copy)
        exit(99);
    memcpy(copy, data, len);
    ip_decode_opts_default(&opts);
    memset(img, 0, sizeof *img);
    ip_error_clear(err);
    rc = ip__png_decode_fast(copy, len, copy, &opts, NULL, img, err);
    *copy_ok = memcmp(copy, data, len) == 0;
    free(copy);
    return rc;
}

static long writable_moved;

/* The fast path alone: 0 accepted (then libpng must give the same), 1
 * declined (then *out zeroed, err untouched). Both modes must agree, and
 * so must a decode of a writable copy, which must leave the copy as it was
 * unless it succeeded. Returns the fast rc. */
static int check_fast(const uint8_t *data, size_t len, const char *what)
{
    struct ip_image img, img2, img3;
    struct ip_error err, err2, err3;
    int rc = fast_once(data, len, 1, &img, &err);
    int rc2 = fast_once(data, len, 2, &img2, &err2);
    int copy_ok, rc3 = fast_writable(data, len, &img3, &err3, &copy_ok);

    CHECK(rc == rc2 && (rc != 0 || same_image(&img, &img2)),
          "%s: the SSE2-only fast path differs (%d, %d)", what, rc, rc2);
    ip_image_free(&img2);
    CHECK(rc == rc3 && (rc != 0 || same_image(&img, &img3)),
          "%s: the fast path on a writable buffer differs (%d, %d)", what, rc, rc3);
    CHECK(rc3 == 0 || copy_ok, "%s: the fast path failed (%d) and left the writable buffer changed", what,
          rc3);
    writable_moved += rc3 == 0 && !copy_ok;
    ip_image_free(&img3);
    if (rc == 0) {
        struct outcome ref = decode_with(data, len, 0, 0);
        fast_accepted++;
        CHECK(ref.rc == 0, "%s: fast path accepted, libpng rejects: %s", what, ref.err.msg);
        if (ref.rc == 0)
            CHECK(same_image(&img, &ref.img), "%s: fast %ux%ux%u differs from libpng %ux%ux%u",
                  what, img.width, img.height, img.channels, ref.img.width, ref.img.height,
                  ref.img.channels);
        CHECK(err.code == 0 && err.msg[0] == '\0', "%s: success with an error set", what);
        outcome_free(&ref);
        ip_image_free(&img);
    } else if (rc == 1) {
        fast_declined++;
        CHECK(img.pixels == NULL && img.width == 0 && img.height == 0 && img.channels == 0 &&
              img.stride == 0, "%s: declined but the image is not zeroed", what);
        CHECK(err.code == 0 && err.msg[0] == '\0', "%s: declined with an error set: %s", what,
              err.msg);
    } else {
        CHECK(0, "%s: fast path returned %d (%s)", what, rc, err.msg);
        ip_image_free(&img);
    }
    return rc;
}

/* ip_decode with the fast path on and off agree, strict and tolerant. */
static void check_integrated(const uint8_t *data, size_t len, const char *what)
{
    int allow;

    for (allow = 0; allow < 2; allow++) {
        struct outcome on = decode_with(data, len, 1, allow);
        struct outcome off = decode_with(data, len, 0, allow);
        CHECK(same_outcome(&on, &off), "%s (allow_truncated %d): fast on: %d '%s', off: %d '%s'",
              what, allow, on.rc, on.err.msg, off.rc, off.err.msg);
        outcome_free(&on);
        outcome_free(&off);
    }
}

/* ---- a PNG writer with every knob ---- */

struct buf {
    uint8_t *data;
    size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
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

static void put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static void put_chunk(struct buf *b, const char *name, const void *body, size_t n)
{
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)name, 4);

    crc = (uint32_t)crc32(crc, (const Bytef *)body, (uInt)n);
    put32(b, (uint32_t)n);
    put(b, name, 4);
    put(b, body, n);
    put32(b, crc);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

struct gen {
    uint32_t w, h;
    int color, depth;
    int filter;        /* 0-4 every row; 5 cycling; 6 random per row */
    int level;         /* zlib level */
    int wbits;         /* zlib windowBits 9..15 */
    int strategy;      /* zlib strategy */
    size_t idat_max;   /* largest IDAT payload; 0: one IDAT */
    int npal;          /* palette entries (colour type 3) */
    int trns;          /* palette: tRNS entries (0: none) */
    int plte;          /* RGB/RGBA: add a suggested PLTE */
    int ancillary;     /* tEXt, gAMA and an unknown ancillary chunk around the data */
    int trailing;      /* junk bytes after IEND */
    int content;       /* 0 smooth + noise, 1 flat runs (long matches), 2 noise */
    uint32_t seed;
};

static unsigned channels_of(int color)
{
    switch (color) {
    case 0: return 1;
    case 2: return 3;
    case 3: return 1;
    case 4: return 2;
    default: return 4;
    }
}

static uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);

    if (pa <= pb && pa <= pc)
        return (uint8_t)a;
    return (uint8_t)(pb <= pc ? b : c);
}

/* Writes the PNG for g; *pixels gets the decoded 8-bit image libpng should
 * produce (w * h * out_channels) and *out_channels its channel count. */
static struct buf make_png(const struct gen *g, uint8_t **pixels, unsigned *out_channels)
{
    unsigned ch = channels_of(g->color), bps = (unsigned)g->depth / 8, bpp = ch * bps;
    size_t rowbytes = (size_t)g->w * bpp, x;
    uint8_t *raw = calloc((size_t)g->h * rowbytes + 1, 1);
    uint8_t *filt = malloc((size_t)g->h * (rowbytes + 1) + 1);
    uint8_t pal[256][4];
    uint8_t ihdr[13];
    unsigned oc = g->color == 3 ? (g->trns ? 4u : 3u) : ch;
    uint8_t *px = malloc((size_t)g->w * g->h * oc + 1);
    struct buf b = {0};
    z_stream zs;
    uint8_t *z;
    size_t zlen, zcap, off;
    uint32_t y;
    int i;

    if (!raw || !filt || !px)
        exit(99);
    rng_state = g->seed;
    for (i = 0; i < 256; i++) {
        pal[i][0] = (uint8_t)rnd();
        pal[i][1] = (uint8_t)rnd();
        pal[i][2] = (uint8_t)rnd();
        pal[i][3] = i < g->trns ? (uint8_t)rnd() : 255;
    }
    for (y = 0; y < g->h; y++) {
        for (x = 0; x < rowbytes; x++) {
            unsigned v;
            if (g->content == 1)
                v = (unsigned)((x / (bpp * 5) + y / 3) * 37) & 0xff;
            else if (g->content == 2)
                v = rnd() & 0xff;
            else
                v = (unsigned)(x * 3 + y * 5 + (x / bpp) % 7) + (rnd() % 9);
            if (g->color == 3)
                v %= (unsigned)g->npal;
            raw[y * rowbytes + x] = (uint8_t)v;
        }
    }
    /* Expected output. */
    for (y = 0; y < g->h; y++) {
        for (x = 0; x < g->w; x++) {
            const uint8_t *s = raw + y * rowbytes + x * bpp;
            uint8_t *d = px + ((size_t)y * g->w + x) * oc;
            unsigned k;
            if (g->color == 3) {
                memcpy(d, pal[s[0]], oc);
            } else if (g->depth == 16) {
                for (k = 0; k < ch; k++)
                    d[k] = ip__scale_16_to_8((uint16_t)(s[2 * k] << 8 | s[2 * k + 1]));
            } else {
                memcpy(d, s, ch);
            }
        }
    }
    /* Filtering. */
    for (y = 0; y < g->h; y++) {
        const uint8_t *cur = raw + y * rowbytes, *up = y ? cur - rowbytes : NULL;
        uint8_t *f = filt + y * (rowbytes + 1);
        int type = g->filter <= 4 ? g->filter : g->filter == 5 ? (int)(y % 5) : (int)(rnd() % 5);
        f[0] = (uint8_t)type;
        for (x = 0; x < rowbytes; x++) {
            int a = x >= bpp ? cur[x - bpp] : 0, bb = up ? up[x] : 0;
            int c = up && x >= bpp ? up[x - bpp] : 0, pred;
            switch (type) {
            case 1: pred = a; break;
            case 2: pred = bb; break;
            case 3: pred = (a + bb) / 2; break;
            case 4: pred = paeth(a, bb, c); break;
            default: pred = 0; break;
            }
            f[1 + x] = (uint8_t)(cur[x] - pred);
        }
    }
    /* zlib. */
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, g->level, Z_DEFLATED, g->wbits, 8, g->strategy) != Z_OK)
        exit(99);
    zcap = deflateBound(&zs, (uLong)(g->h * (rowbytes + 1))) + 64;
    z = malloc(zcap);
    if (!z)
        exit(99);
    zs.next_in = filt;
    zs.avail_in = (uInt)(g->h * (rowbytes + 1));
    zs.next_out = z;
    zs.avail_out = (uInt)zcap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        exit(99);
    zlen = zs.total_out;
    deflateEnd(&zs);

    put(&b, "\x89PNG\r\n\x1a\n", 8);
    ihdr[0] = (uint8_t)(g->w >> 24);
    ihdr[1] = (uint8_t)(g->w >> 16);
    ihdr[2] = (uint8_t)(g->w >> 8);
    ihdr[3] = (uint8_t)g->w;
    ihdr[4] = (uint8_t)(g->h >> 24);
    ihdr[5] = (uint8_t)(g->h >> 16);
    ihdr[6] = (uint8_t)(g->h >> 8);
    ihdr[7] = (uint8_t)g->h;
    ihdr[8] = (uint8_t)g->depth;
    ihdr[9] = (uint8_t)g->color;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    put_chunk(&b, "IHDR", ihdr, 13);
    if (g->ancillary) {
        put_chunk(&b, "gAMA", "\0\0\xb1\x8f", 4);
        put_chunk(&b, "tEXt", "Comment\0fast path", 17);
        put_chunk(&b, "prVt", "private", 7);
    }
    if (g->color == 3 || g->plte) {
        uint8_t rgb[768];
        int np = g->color == 3 ? g->npal : 16;
        for (i = 0; i < np; i++)
            memcpy(rgb + 3 * i, pal[i], 3);
        put_chunk(&b, "PLTE", rgb, (size_t)np * 3);
    }
    if (g->color == 3 && g->trns) {
        uint8_t a[256];
        for (i = 0; i < g->trns; i++)
            a[i] = pal[i][3];
        put_chunk(&b, "tRNS", a, (size_t)g->trns);
    }
    for (off = 0; off < zlen;) {
        size_t n = g->idat_max && zlen - off > g->idat_max ? g->idat_max : zlen - off;
        put_chunk(&b, "IDAT", z + off, n);
        off += n;
    }
    if (g->ancillary)
        put_chunk(&b, "tEXt", "After\0the data", 14);
    put_chunk(&b, "IEND", "", 0);
    for (i = 0; i < g->trailing; i++) {
        uint8_t c = (uint8_t)rnd();
        put(&b, &c, 1);
    }
    free(z);
    free(raw);
    free(filt);
    *pixels = px;
    *out_channels = oc;
    return b;
}

/* Whether the fast path should take a generated file: everything the
 * writer makes except a small zlib window with more data than it holds. */
static int expect_fast(const struct gen *g)
{
    unsigned ch = channels_of(g->color) * (unsigned)g->depth / 8;
    size_t raw = (size_t)g->h * ((size_t)g->w * ch + 1);
    int wbits = g->wbits < 9 ? 9 : g->wbits;

    return wbits == 15 || raw <= ((size_t)1 << wbits);
}

static long generated, generated_expected;

static void run_gen(const struct gen *g)
{
    char what[256];
    uint8_t *px;
    unsigned oc;
    struct buf b = make_png(g, &px, &oc);
    struct outcome ref;
    int rc;

    snprintf(what, sizeof what,
             "gen %ux%u color %d depth %d filter %d level %d wbits %d strategy %d idat %zu "
             "npal %d trns %d plte %d anc %d trailing %d content %d seed %u",
             g->w, g->h, g->color, g->depth, g->filter, g->level, g->wbits, g->strategy,
             g->idat_max, g->npal, g->trns, g->plte, g->ancillary, g->trailing, g->content,
             g->seed);
    ref = decode_with(b.data, b.len, 0, 0);
    CHECK(ref.rc == 0, "%s: libpng fails: %s", what, ref.err.msg);
    if (ref.rc == 0)
        CHECK(ref.img.channels == oc &&
              memcmp(ref.img.pixels, px, (size_t)g->w * g->h * oc) == 0,
              "%s: libpng does not give the written pixels (generator bug?)", what);
    outcome_free(&ref);
    rc = check_fast(b.data, b.len, what);
    generated++;
    if (expect_fast(g)) {
        generated_expected++;
        CHECK(rc == 0, "%s: fast path declined a file it should take", what);
    } else {
        CHECK(rc == 1, "%s: fast path took a small-window file", what);
    }
    free(px);
    free(b.data);
}

static void generated_corpus(void)
{
    static const int colors[5] = {0, 2, 3, 4, 6};
    struct gen g;
    uint32_t w;
    int c, f, i;

    /* Every filter type forced, widths 1..70, every colour type at 8 bits. */
    for (f = 0; f < 7; f++)
        for (w = 1; w <= 70; w++)
            for (c = 0; c < 5; c++) {
                memset(&g, 0, sizeof g);
                g.w = w;
                g.h = 1 + (w * 3 + (uint32_t)f) % 9;
                g.color = colors[c];
                g.depth = 8;
                g.filter = f;
                g.level = (int)(w % 10);
                g.wbits = 15;
                g.strategy = Z_DEFAULT_STRATEGY;
                g.idat_max = w % 3 == 0 ? 1 + w % 17 : 0;
                g.npal = 1 + (int)((w * 7) % 256);
                g.trns = colors[c] == 3 && w % 2 ? 1 + (int)(w % (uint32_t)g.npal) : 0;
                g.plte = (colors[c] == 2 || colors[c] == 6) && w % 5 == 0;
                g.ancillary = w % 4 == 1;
                g.trailing = w % 11 == 0 ? 5 : 0;
                g.content = (int)(w % 3);
                g.seed = w * 131 + (uint32_t)f * 7 + (uint32_t)c;
                run_gen(&g);
            }
    /* 16 bits. */
    for (f = 0; f < 7; f++)
        for (w = 1; w <= 24; w++)
            for (c = 0; c < 5; c++) {
                if (colors[c] == 3)
                    continue;
                memset(&g, 0, sizeof g);
                g.w = w;
                g.h = 1 + w % 6;
                g.color = colors[c];
                g.depth = 16;
                g.filter = f;
                g.level = 6;
                g.wbits = 15;
                g.strategy = Z_DEFAULT_STRATEGY;
                g.idat_max = w % 2 ? 0 : 9;
                g.content = (int)(w % 3);
                g.seed = 9000 + w;
                run_gen(&g);
            }
    /* zlib variations on bigger images: levels, strategies (fixed Huffman
     * blocks, Huffman only, RLE), windows, IDAT sizes. */
    for (i = 0; i < 120; i++) {
        static const int strategies[5] = {Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE,
                                          Z_FILTERED};
        static const int wbits[6] = {15, 9, 10, 12, 14, 15};
        memset(&g, 0, sizeof g);
        g.w = 40 + (uint32_t)(i * 37) % 260;
        g.h = 3 + (uint32_t)(i * 13) % 90;
        g.color = colors[i % 5];
        g.depth = 8;
        g.filter = i % 7;
        g.level = i % 10;
        g.wbits = wbits[(i / 5) % 6];
        g.strategy = strategies[(i / 2) % 5];
        g.idat_max = i % 4 == 0 ? 0 : i % 4 == 1 ? 8192 : i % 4 == 2 ? 1000 : 65536;
        g.npal = 200;
        g.trns = i % 3 == 0 ? 256 - 56 : 0;
        g.plte = i % 6 == 2 && (g.color == 2 || g.color == 6);
        g.ancillary = i % 2;
        g.content = i % 3;
        g.seed = 500 + (uint32_t)i;
        run_gen(&g);
    }
    /* Small images under small windows (zlib's window then holds all). */
    for (i = 0; i < 40; i++) {
        memset(&g, 0, sizeof g);
        g.w = 1 + (uint32_t)i;
        g.h = 1 + (uint32_t)(i % 4);
        g.color = colors[i % 5];
        g.depth = 8;
        g.filter = 6;
        g.level = 9;
        g.wbits = 9 + i % 4;
        g.strategy = Z_DEFAULT_STRATEGY;
        g.npal = 16;
        g.content = 1;
        g.seed = 777 + (uint32_t)i;
        run_gen(&g);
    }
    /* A larger one of each kind. */
    for (c = 0; c < 5; c++) {
        memset(&g, 0, sizeof g);
        g.w = 701;
        g.h = 307;
        g.color = colors[c];
        g.depth = 8;
        g.filter = 6;
        g.level = 6;
        g.wbits = 15;
        g.strategy = Z_DEFAULT_STRATEGY;
        g.idat_max = 8192;
        g.npal = 256;
        g.trns = c == 2 ? 100 : 0;
        g.content = c % 3;
        g.seed = 4242 + (uint32_t)c;
        run_gen(&g);
    }
}

/* ---- files on disk ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.png names in dir (NULL-terminated); exits if dir is missing. */
static char **list_pngs(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!d) {
        fprintf(stderr, "cannot open %s\n", dir);
        exit(99);
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".png") != 0)
            continue;
        names = realloc(names, (n + 2) * sizeof *names);
        if (!names)
            exit(99);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (!names)
        exit(99);
    qsort(names, n, sizeof *names, cmp_names);
    names[n] = NULL;
    return names;
}

static void free_names(char **names)
{
    size_t i;

    for (i = 0; names[i]; i++)
        free(names[i]);
    free(names);
}

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_read_file(path, len);
}

/* PngSuite files the fast path must take: the count is asserted exactly so
 * that neither silent declining nor silent accepting of something new
 * goes unnoticed. */
#define PNGSUITE_FAST 77
#define SAMPLES_FAST 6

static int corpus(const char *conf_dir, const char *samples_dir)
{
    char dir[4096];
    char **names;
    long before;
    size_t i, valid = 0;

    snprintf(dir, sizeof dir, "%s/pngsuite/png", conf_dir);
    names = list_pngs(dir);
    before = fast_accepted;
    for (i = 0; names[i]; i++) {
        size_t len;
        uint8_t *data;

        if (names[i][0] == 'x')
            continue;
        data = load(dir, names[i], &len);
        if (check_fast(data, len, names[i]) == 0)
            printf("fast: %s\n", names[i]);
        check_integrated(data, len, names[i]);
        free(data);
        valid++;
    }
    free_names(names);
    CHECK(valid == 161, "%zu valid PngSuite files", valid);
    CHECK(fast_accepted - before == PNGSUITE_FAST, "fast path took %ld PngSuite files, expected %d",
          fast_accepted - before, PNGSUITE_FAST);
    printf("PngSuite: fast path took %ld of %zu valid files\n", fast_accepted - before, valid);

    names = list_pngs(samples_dir);
    before = fast_accepted;
    for (i = 0; names[i]; i++) {
        size_t len;
        uint8_t *data = load(samples_dir, names[i], &len);
        check_fast(data, len, names[i]);
        check_integrated(data, len, names[i]);
        free(data);
    }
    free_names(names);
    CHECK(fast_accepted - before == SAMPLES_FAST, "fast path took %ld samples, expected %d",
          fast_accepted - before, SAMPLES_FAST);

    before = fast_accepted;
    generated_corpus();
    CHECK(fast_accepted - before == generated_expected, "fast path took %ld of %ld generated files",
          fast_accepted - before, generated_expected);
    printf("generated: %ld files, fast path took %ld (expected %ld)\n", generated,
           fast_accepted - before, generated_expected);
    /* Many generated files have several IDATs: a writable copy moves them. */
    CHECK(writable_moved > 100, "only %ld writable decodes moved IDATs", writable_moved);
    printf("writable buffers with IDATs moved together: %ld\n", writable_moved);
    return test_finish("png_fast corpus");
}

/* ---- crafted streams ---- */

struct bits {
    struct buf b;
    uint32_t acc;
    unsigned n;
};

static void bits_put(struct bits *w, uint32_t v, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        w->acc |= ((v >> i) & 1u) << w->n;
        if (++w->n == 8) {
            uint8_t c = (uint8_t)w->acc;
            put(&w->b, &c, 1);
            w->acc = 0;
            w->n = 0;
        }
    }
}

/* A Huffman codeword: most significant bit first. */
static void bits_code(struct bits *w, uint32_t code, unsigned len)
{
    while (len--)
        bits_put(w, code >> len, 1);
}

static void bits_align(struct bits *w)
{
    if (w->n)
        bits_put(w, 0, 8 - w->n);
}

/* Fixed-Huffman litlen symbol. */
static void fixed_sym(struct bits *w, unsigned sym)
{
    if (sym < 144)
        bits_code(w, 0x30 + sym, 8);
    else if (sym < 256)
        bits_code(w, 0x190 + sym - 144, 9);
    else if (sym < 280)
        bits_code(w, sym - 256, 7);
    else
        bits_code(w, 0xc0 + sym - 280, 8);
}

static void stored_block(struct bits *w, const uint8_t *data, unsigned n, int final)
{
    bits_put(w, (uint32_t)final, 1);
    bits_put(w, 0, 2);
    bits_align(w);
    bits_put(w, n, 16);
    bits_put(w, ~n & 0xffff, 16);
    put(&w->b, data, n);
}

/* A gray 8-bit PNG of w x h around a raw deflate stream; the zlib header
 * gets window bits wbits, the Adler-32 is that of libdeflate's decoding
 * of the stream (so that a lenient inflater takes it whole); expect is the
 * raw size the stream should give (checked against libdeflate when
 * lenient_ok, to make sure the case really reaches past libdeflate). */
static struct buf wrap_gray(const struct buf *deflate, uint32_t w, uint32_t h, int wbits,
                            int *libdeflate_ok)
{
    size_t raw_len = (size_t)h * (w + 1), actual_in = 0, actual_out = 0;
    uint8_t *raw = calloc(raw_len + 1, 1);
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    struct buf z = {0}, png = {0};
    uint8_t ihdr[13] = {0}, hdr[2];
    unsigned cmf = (unsigned)(wbits - 8) << 4 | 8, flg = 0;
    uint32_t adler;

    if (!raw || !d)
        exit(99);
    *libdeflate_ok = libdeflate_deflate_decompress_ex(d, deflate->data, deflate->len, raw, raw_len,
                                                      &actual_in, &actual_out) ==
                         LIBDEFLATE_SUCCESS &&
                     actual_out == raw_len && actual_in == deflate->len;
    libdeflate_free_decompressor(d);
    while ((cmf * 256 + flg) % 31)
        flg++;
    hdr[0] = (uint8_t)cmf;
    hdr[1] = (uint8_t)flg;
    put(&z, hdr, 2);
    put(&z, deflate->data, deflate->len);
    adler = (uint32_t)adler32(1, raw, (uInt)raw_len);
    put32(&z, adler);
    free(raw);

    put(&png, "\x89PNG\r\n\x1a\n", 8);
    ihdr[3] = (uint8_t)w;
    ihdr[2] = (uint8_t)(w >> 8);
    ihdr[7] = (uint8_t)h;
    ihdr[6] = (uint8_t)(h >> 8);
    ihdr[8] = 8;
    put_chunk(&png, "IHDR", ihdr, 13);
    put_chunk(&png, "IDAT", z.data, z.len);
    put_chunk(&png, "IEND", "", 0);
    free(z.data);
    return png;
}

/* The file must be declined by the fast path and rejected by libpng. */
static void expect_rejected(const struct buf *png, const char *what, int libdeflate_ok)
{
    struct outcome ref = decode_with(png->data, png->len, 0, 0);
    int rc = check_fast(png->data, png->len, what);

    CHECK(ref.rc < 0, "%s: libpng accepts it (test bug)", what);
    CHECK(rc == 1, "%s: fast path took a file libpng rejects", what);
    check_integrated(png->data, png->len, what);
    printf("%-58s libpng: %-44.44s libdeflate: %s\n", what, ref.err.msg,
           libdeflate_ok ? "ACCEPTS" : "rejects");
    outcome_free(&ref);
}

/* The dynamic block header of the code-length tests: litlen codes for
 * literal 0 and end-of-block (1 bit each) among nlen symbols, a 2-symbol
 * distance code among ndist, coded with a 2-bit precode over 0, 1, 17, 18;
 * overrun adds a final zero repeat that runs past the end. */
static void dynamic_header(struct bits *w, unsigned nlen, unsigned ndist, int overrun, int final)
{
    /* Precode: symbols 0, 1, 17, 18 with 2-bit codes 00, 01, 10, 11. */
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                      11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint8_t pre[19] = {0};
    unsigned i, left;

    pre[0] = pre[1] = pre[17] = pre[18] = 2;
    bits_put(w, (uint32_t)final, 1);
    bits_put(w, 2, 2);
    bits_put(w, nlen - 257, 5);
    bits_put(w, ndist - 1, 5);
    bits_put(w, 19 - 4, 4);
    for (i = 0; i < 19; i++)
        bits_put(w, pre[order[i]], 3);
    /* Codes: 0 -> 00, 1 -> 01, 17 -> 10, 18 -> 11. */
    bits_code(w, 1, 2);              /* literal 0: length 1 */
    left = 255;                      /* symbols 1..255: zero */
    bits_code(w, 3, 2);
    bits_put(w, 138 - 11, 7);
    left -= 138;
    bits_code(w, 3, 2);
    bits_put(w, left - 11, 7);
    bits_code(w, 1, 2);              /* 256: length 1 */
    for (i = 257; i < nlen; i++)
        bits_code(w, 0, 2);
    bits_code(w, 1, 2);              /* distance 0 and 1: length 1 */
    bits_code(w, 1, 2);
    if (overrun) {
        bits_code(w, 2, 2);          /* 17: 3 zeros where ndist - 2 remain */
        bits_put(w, 0, 3);
        return;
    }
    for (i = 2; i < ndist; i++)
        bits_code(w, 0, 2);
}

static void crafted_streams(void)
{
    struct bits w;
    struct buf png;
    uint8_t zeros[30000] = {0};
    int lok;

    /* 1. A fixed block using length symbol 286 (libdeflate: length 258). */
    memset(&w, 0, sizeof w);
    bits_put(&w, 1, 1);
    bits_put(&w, 1, 2);
    fixed_sym(&w, 0);
    fixed_sym(&w, 7);
    fixed_sym(&w, 286);
    bits_code(&w, 0, 5);             /* distance 1 */
    fixed_sym(&w, 256);
    bits_align(&w);
    png = wrap_gray(&w.b, 259, 1, 15, &lok);
    expect_rejected(&png, "fixed block, length symbol 286", lok);
    free(png.data);
    free(w.b.data);

    /* 2. ... 287. */
    memset(&w, 0, sizeof w);
    bits_put(&w, 1, 1);
    bits_put(&w, 1, 2);
    fixed_sym(&w, 0);
    fixed_sym(&w, 7);
    fixed_sym(&w, 287);
    bits_code(&w, 0, 5);
    fixed_sym(&w, 256);
    bits_align(&w);
    png = wrap_gray(&w.b, 259, 1, 15, &lok);
    expect_rejected(&png, "fixed block, length symbol 287", lok);
    free(png.data);
    free(w.b.data);

    /* 3. Distance symbol 30 after 25542 stored zeros (100 rows of 257). */
    memset(&w, 0, sizeof w);
    stored_block(&w, zeros, 25542, 0);
    bits_put(&w, 1, 1);
    bits_put(&w, 1, 2);
    fixed_sym(&w, 285);              /* length 258 */
    bits_code(&w, 30, 5);
    bits_put(&w, 0, 13);
    fixed_sym(&w, 256);
    bits_align(&w);
    png = wrap_gray(&w.b, 257, 100, 15, &lok);
    expect_rejected(&png, "fixed block, distance symbol 30", lok);
    free(png.data);
    free(w.b.data);

    /* 4. ... 31. */
    memset(&w, 0, sizeof w);
    stored_block(&w, zeros, 25542, 0);
    bits_put(&w, 1, 1);
    bits_put(&w, 1, 2);
    fixed_sym(&w, 285);
    bits_code(&w, 31, 5);
    bits_put(&w, 0, 13);
    fixed_sym(&w, 256);
    bits_align(&w);
    png = wrap_gray(&w.b, 257, 100, 15, &lok);
    expect_rejected(&png, "fixed block, distance symbol 31", lok);
    free(png.data);
    free(w.b.data);

    /* 5. 287 and 288 litlen code lengths; 6. 31 and 32 distance ones. */
    {
        static const unsigned sizes[4][2] = {{287, 2}, {288, 2}, {257, 31}, {257, 32}};
        int k;
        for (k = 0; k < 4; k++) {
            char what[96];
            memset(&w, 0, sizeof w);
            dynamic_header(&w, sizes[k][0], sizes[k][1], 0, 1);
            bits_code(&w, 0, 1);     /* literal 0 */
            bits_code(&w, 0, 1);     /* literal 0 */
            bits_code(&w, 1, 1);     /* end of block */
            bits_align(&w);
            png = wrap_gray(&w.b, 1, 1, 15, &lok);
            snprintf(what, sizeof what, "dynamic block, %u litlen / %u distance lengths",
                     sizes[k][0], sizes[k][1]);
            expect_rejected(&png, what, lok);
            free(png.data);
            free(w.b.data);
        }
    }

    /* 7. A code-length repeat running past the end. */
    memset(&w, 0, sizeof w);
    dynamic_header(&w, 257, 3, 1, 1);
    bits_code(&w, 0, 1);
    bits_code(&w, 0, 1);
    bits_code(&w, 1, 1);
    bits_align(&w);
    png = wrap_gray(&w.b, 1, 1, 15, &lok);
    expect_rejected(&png, "dynamic block, code-length repeat overrun", lok);
    free(png.data);
    free(w.b.data);

    /* Sanity: the same header without the faults is accepted by both. */
    memset(&w, 0, sizeof w);
    dynamic_header(&w, 257, 2, 0, 1);
    bits_code(&w, 0, 1);
    bits_code(&w, 0, 1);
    bits_code(&w, 1, 1);
    bits_align(&w);
    png = wrap_gray(&w.b, 1, 1, 15, &lok);
    {
        struct outcome ref = decode_with(png.data, png.len, 0, 0);
        CHECK(ref.rc == 0, "hand-made dynamic block: libpng rejects it: %s", ref.err.msg);
        CHECK(check_fast(png.data, png.len, "hand-made dynamic block") == 0,
              "hand-made dynamic block declined");
        outcome_free(&ref);
    }
    free(png.data);
    free(w.b.data);

    /* 8. Incomplete litlen code (end-of-block alone, 1 bit) after a stored
     * block, ended with the unused codeword '1'. Precode: 0 -> 0,
     * 1 -> 10, 18 -> 11. */
    {
        static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                          11, 4, 12, 3, 13, 2, 14, 1, 15};
        uint8_t pre[19] = {0};
        int which, i;
        for (which = 0; which < 3; which++) {
            const char *what = which == 0 ? "incomplete litlen code, unused codeword used"
                             : which == 1 ? "empty distance code used"
                                          : "single distance code, unused codeword used";
            memset(&w, 0, sizeof w);
            memset(pre, 0, sizeof pre);
            stored_block(&w, zeros, which == 0 ? 2 : 0, 0);
            pre[0] = 1;
            pre[1] = 2;
            pre[18] = 2;
            bits_put(&w, 1, 1);
            bits_put(&w, 2, 2);
            if (which == 0) {
                bits_put(&w, 0, 5);          /* 257 litlen */
                bits_put(&w, 0, 5);          /* 1 distance */
                bits_put(&w, 15, 4);
                for (i = 0; i < 19; i++)
                    bits_put(&w, pre[order[i]], 3);
                bits_code(&w, 3, 2);         /* 18: 138 zeros */
                bits_put(&w, 127, 7);
                bits_code(&w, 3, 2);         /* 18: 118 zeros */
                bits_put(&w, 107, 7);
                bits_code(&w, 2, 2);         /* 256: length 1 */
                bits_code(&w, 0, 1);         /* distance 0: none */
                bits_code(&w, 1, 1);         /* the unused codeword */
                bits_align(&w);
                png = wrap_gray(&w.b, 1, 1, 15, &lok);
            } else {
                /* litlen: 0 -> 1 bit, 256 and 257 (length 3) -> 2 bits;
                 * distances: none (which 1) or symbol 0 alone (which 2). */
                pre[2] = 2;                  /* precode: 0 -> 00, 1 -> 01, 2 -> 10, 18 -> 11 */
                pre[0] = 2;
                bits_put(&w, 1, 5);          /* 258 litlen */
                bits_put(&w, 0, 5);          /* 1 distance */
                bits_put(&w, 15, 4);
                for (i = 0; i < 19; i++)
                    bits_put(&w, pre[order[i]], 3);
                bits_code(&w, 1, 2);         /* literal 0: length 1 */
                bits_code(&w, 3, 2);         /* 1..138: zero */
                bits_put(&w, 127, 7);
                bits_code(&w, 3, 2);         /* 139..255: zero (117) */
                bits_put(&w, 106, 7);
                bits_code(&w, 2, 2);         /* 256: 2 */
                bits_code(&w, 2, 2);         /* 257: 2 */
                bits_code(&w, which == 1 ? 0 : 1, 2); /* distance 0: 0 or 1 bit */
                bits_code(&w, 0, 1);         /* literal 0 */
                bits_code(&w, 0, 1);         /* literal 0 */
                bits_code(&w, 3, 2);         /* length 3 */
                bits_code(&w, 1, 1);         /* distance: no such codeword in zlib */
                bits_code(&w, 2, 2);         /* end of block */
                bits_align(&w);
                png = wrap_gray(&w.b, 4, 1, 15, &lok);
            }
            expect_rejected(&png, what, lok);
            free(png.data);
            free(w.b.data);
        }
    }

    /* 9. A 512-byte window with a distance of 600 (zlib checks distances
     * against the declared window). */
    {
        uint8_t data[1200];
        unsigned i;
        for (i = 0; i < sizeof data; i++)
            data[i] = (uint8_t)(i % 251 % 5 == 0 ? 0 : i);
        for (i = 0; i < sizeof data; i += 12)
            data[i] = 0;             /* filter bytes of 100 rows of 11 */
        memset(&w, 0, sizeof w);
        stored_block(&w, data, 1200 - 6, 0);
        bits_put(&w, 1, 1);
        bits_put(&w, 1, 2);
        fixed_sym(&w, 258);          /* length 4 */
        bits_code(&w, 18, 5);        /* distance 513 + 8 extra bits */
        bits_put(&w, 600 - 513, 8);
        fixed_sym(&w, 0);
        fixed_sym(&w, 0);
        fixed_sym(&w, 256);
        bits_align(&w);
        png = wrap_gray(&w.b, 11, 100, 9, &lok);
        {
            struct outcome ref = decode_with(png.data, png.len, 0, 0);
            CHECK(check_fast(png.data, png.len, "small window, distance 600") == 1,
                  "small window, long distance: fast path took it");
            printf("%-58s libpng: %-44.44s libdeflate: %s\n", "small window (512), distance 600",
                   ref.rc ? ref.err.msg : "(accepts)", lok ? "ACCEPTS" : "rejects");
            outcome_free(&ref);
            check_integrated(png.data, png.len, "small window, distance 600");
        }
        free(png.data);
        free(w.b.data);
    }
}

/* Chunk-level cases on a valid palette image with tRNS: each edit must be
 * declined or give libpng's result (check_fast), and ip_decode must agree
 * with itself with the fast path on and off. */
struct chunk {
    char name[5];
    uint8_t *body;
    uint32_t len;
};

static size_t split_chunks(const struct buf *png, struct chunk *c, size_t max)
{
    size_t pos = 8, n = 0;

    while (pos + 12 <= png->len && n < max) {
        uint32_t len = (uint32_t)png->data[pos] << 24 | (uint32_t)png->data[pos + 1] << 16 |
                       (uint32_t)png->data[pos + 2] << 8 | png->data[pos + 3];
        memcpy(c[n].name, png->data + pos + 4, 4);
        c[n].name[4] = '\0';
        c[n].body = png->data + pos + 8;
        c[n].len = len;
        n++;
        pos += 12 + (size_t)len;
    }
    return n;
}

static void chunk_edits(void)
{
    struct gen g;
    uint8_t *px;
    unsigned oc;
    struct buf base;
    struct chunk c[64];
    size_t nc, i, k;
    static const struct {
        const char *name, *body;
        size_t len;
    } inserts[] = {
        {"tRNS", "\x10\x20", 2}, {"PLTE", "\1\2\3", 3}, {"IHDR", "0123456789abc", 13},
        {"IDAT", "", 0},         {"IEND", "", 0},       {"cRIT", "x", 1},
        {"tEXt", "k\0v", 3},     {"sRGB", "\0", 1},     {"iCCP", "junk", 4},
        {"IDAT", "\0", 1},       {"bKGD", "\0", 1},     {"a1bc", "x", 1},
        {"IEND", "x", 1},
    };
    const size_t ninserts = sizeof inserts / sizeof inserts[0];
    long tried = 0;

    memset(&g, 0, sizeof g);
    g.w = 33;
    g.h = 17;
    g.color = 3;
    g.depth = 8;
    g.filter = 6;
    g.level = 6;
    g.wbits = 15;
    g.idat_max = 100;
    g.npal = 40;
    g.trns = 10;
    g.seed = 99;
    base = make_png(&g, &px, &oc);
    free(px);
    nc = split_chunks(&base, c, 64);
    /* Every (position, chunk) insertion, and every chunk dropped. */
    for (i = 0; i <= nc; i++) {
        for (k = 0; k <= ninserts; k++) {
            struct buf b = {0};
            char what[96];
            size_t j;

            put(&b, "\x89PNG\r\n\x1a\n", 8);
            for (j = 0; j <= nc; j++) {
                if (j == i && k < ninserts)
                    put_chunk(&b, inserts[k].name, inserts[k].body, inserts[k].len);
                if (j < nc && !(j == i && k == ninserts))
                    put_chunk(&b, c[j].name, c[j].body, c[j].len);
            }
            snprintf(what, sizeof what, "chunk edit at %zu: %s", i,
                     k < ninserts ? inserts[k].name : "(dropped)");
            check_fast(b.data, b.len, what);
            check_integrated(b.data, b.len, what);
            tried++;
            free(b.data);
        }
    }
    printf("chunk edits: %ld files\n", tried);
    free(base.data);
}

/* Allocators: called once with the final shape; a refusal comes back
 * unchanged, as from the libpng path. */
struct counter {
    int allocs, frees, refuse;
};

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels,
                       struct ip_error *err)
{
    struct counter *c = ctx;

    if (c->refuse)
        return ip_error_set(err, IP_ETOOBIG, "refused %ux%u", shape->width, shape->height);
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

static void allocators(void)
{
    struct gen g;
    uint8_t *px;
    unsigned oc;
    struct buf b;
    int fast, refuse;
    struct ip_error errs[2][2];
    int rcs[2][2];

    memset(&g, 0, sizeof g);
    g.w = 50;
    g.h = 20;
    g.color = 2;
    g.depth = 8;
    g.filter = 6;
    g.level = 6;
    g.wbits = 15;
    g.seed = 3;
    b = make_png(&g, &px, &oc);
    for (fast = 0; fast < 2; fast++) {
        for (refuse = 0; refuse < 2; refuse++) {
            struct counter cnt = {0, 0, refuse};
            struct ip_allocator a = {count_alloc, count_free, &cnt};
            struct ip_decode_opts opts;
            struct ip_image img;

            ip_decode_opts_default(&opts);
            opts.allocator = &a;
            ip__png_fast_set_enabled(fast);
            rcs[fast][refuse] = ip_decode(b.data, b.len, &opts, &img, NULL, &errs[fast][refuse]);
            ip__png_fast_set_enabled(1);
            if (rcs[fast][refuse] == 0) {
                CHECK(cnt.allocs == 1 && img.pixels && memcmp(img.pixels, px, 50 * 20 * 3) == 0,
                      "allocator (fast %d): %d allocations or wrong pixels", fast, cnt.allocs);
                a.free(a.ctx, img.pixels);
            }
            CHECK(cnt.allocs == cnt.frees, "allocator (fast %d refuse %d): %d allocs, %d frees",
                  fast, refuse, cnt.allocs, cnt.frees);
        }
    }
    CHECK(rcs[1][0] == 0 && rcs[0][0] == 0, "allocator: decode failed");
    CHECK(rcs[1][1] == IP_ETOOBIG && rcs[0][1] == IP_ETOOBIG &&
          strcmp(errs[1][1].msg, errs[0][1].msg) == 0,
          "refusing allocator: fast %d '%s', libpng %d '%s'", rcs[1][1], errs[1][1].msg,
          rcs[0][1], errs[0][1].msg);
    free(px);
    free(b.data);
}

/* A w x h 8-bit image of zeros in one IDAT of stored blocks, padded with
 * empty stored blocks to the largest length <= idat_len; an ancillary
 * chunk of text_len bytes before it (0: none). */
static struct buf padded_png(uint32_t w, uint32_t h, int color, size_t idat_len, size_t text_len)
{
    unsigned ch = channels_of(color);
    size_t raw_len = (size_t)h * ((size_t)w * ch + 1), blocks = (raw_len + 65534) / 65535;
    size_t base = 2 + raw_len + 5 * blocks + 4, pads, i, done;
    uint8_t *raw = calloc(raw_len + 1, 1), ihdr[13] = {0};
    struct bits z;
    struct buf png = {0};

    if (!raw || idat_len < base)
        exit(99);
    pads = (idat_len - base) / 5;
    memset(&z, 0, sizeof z);
    put(&z.b, "\x78\x01", 2);
    for (i = 0; i < pads; i++)
        stored_block(&z, raw, 0, 0);
    for (done = 0; done < raw_len;) {
        unsigned n = raw_len - done > 65535 ? 65535 : (unsigned)(raw_len - done);
        stored_block(&z, raw + done, n, done + n == raw_len);
        done += n;
    }
    put32(&z.b, (uint32_t)adler32(1, raw, (uInt)raw_len));
    put(&png, "\x89PNG\r\n\x1a\n", 8);
    set32(ihdr, w);
    set32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = (uint8_t)color;
    put_chunk(&png, "IHDR", ihdr, 13);
    if (text_len) {
        uint8_t *text = calloc(text_len, 1);
        if (!text)
            exit(99);
        memcpy(text, "Comment", 7);
        memset(text + 8, 'x', text_len - 8);
        put_chunk(&png, "tEXt", text, text_len);
        free(text);
    }
    put_chunk(&png, "IDAT", z.b.data, z.b.len);
    put_chunk(&png, "IEND", "", 0);
    free(z.b.data);
    free(raw);
    return png;
}

/* libpng's chunk size limits (8000000 bytes, more for IDAT when the image
 * needs it): on both sides of each, the fast path and libpng agree. */
static void chunk_limits(void)
{
    static const struct {
        uint32_t w, h;
        int color;
        size_t idat, text;
        int libpng_ok;
    } cases[] = {
        {100, 100, 0, 8000000 - 4, 0, 1},        /* IDAT at the 8000000 floor */
        {100, 100, 0, 8000000 + 5, 0, 0},
        {3000, 1000, 2, 9006011 - 4, 0, 1},      /* 3000x1000 RGB: limit 9006011 */
        {3000, 1000, 2, 9006011 + 5, 0, 0},
        {10, 10, 0, 200, 8000000, 1},            /* tEXt at the limit */
        {10, 10, 0, 200, 8000001, 0},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf png = padded_png(cases[i].w, cases[i].h, cases[i].color, cases[i].idat,
                                    cases[i].text);
        struct outcome ref = decode_with(png.data, png.len, 0, 0);
        char what[96];
        int rc;

        snprintf(what, sizeof what, "chunk limits %zu (IDAT %zu, tEXt %zu)", i, cases[i].idat,
                 cases[i].text);
        rc = check_fast(png.data, png.len, what);
        CHECK((ref.rc == 0) == cases[i].libpng_ok, "%s: libpng %d '%s' (test bug)", what, ref.rc,
              ref.err.msg);
        CHECK(rc == (cases[i].libpng_ok ? 0 : 1), "%s: fast path %d, libpng %d", what, rc, ref.rc);
        outcome_free(&ref);
        free(png.data);
    }
}

/* A writable buffer (the pipeline's loader): several IDATs are moved
 * together in place, and put back whenever the fast path does not finish,
 * whatever stops it (bad deflate data, palette indices out of range). Over
 * ip__png_fast_max, only 8-bit direct colour in one IDAT or in a writable
 * buffer is taken: the other cases would need image-sized scratch. */
static void fix_crcs(uint8_t *data, size_t len);

static void writable_cases(void)
{
    static const struct {
        int color, depth;
        size_t idat_max;
        int moved;   /* the IDATs are moved in a writable buffer */
        int over_limit_const, over_limit_writable;   /* taken over the limit: read-only, writable */
    } cases[] = {
        /* 1-byte IDATs: 12 bytes to save per byte of data, gathered instead. */
        {2, 8, 97, 1, 0, 1}, {6, 8, 500, 1, 0, 1}, {0, 8, 1, 0, 0, 0}, {2, 8, 0, 0, 1, 1},
        {3, 8, 97, 1, 0, 0}, {2, 16, 97, 1, 0, 0},
    };
    size_t saved = ip__png_fast_max;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gen g;
        struct buf b;
        struct chunk *chunks;
        struct ip_image img;
        struct ip_error err;
        uint8_t *px;
        unsigned oc;
        size_t nc, last, plte;
        int copy_ok, rc;
        char what[128];

        memset(&g, 0, sizeof g);
        g.w = 53;
        g.h = 31;
        g.color = cases[i].color;
        g.depth = cases[i].depth;
        g.filter = 6;
        g.level = 6;
        g.wbits = 15;
        g.strategy = Z_DEFAULT_STRATEGY;
        g.idat_max = cases[i].idat_max;
        g.npal = 40;
        g.seed = 77 + (uint32_t)i;
        b = make_png(&g, &px, &oc);
        snprintf(what, sizeof what, "writable: colour %d depth %d IDATs of %zu", g.color, g.depth,
                 g.idat_max);
        check_fast(b.data, b.len, what);
        rc = fast_writable(b.data, b.len, &img, &err, &copy_ok);
        CHECK(rc == 0 && img.channels == oc && memcmp(img.pixels, px, (size_t)g.w * g.h * oc) == 0,
              "%s: not decoded to the written pixels (%d)", what, rc);
        CHECK(copy_ok == !cases[i].moved, "%s: the IDATs were %smoved", what, copy_ok ? "not " : "");
        ip_image_free(&img);

        ip__png_fast_max = 100;   /* far below these images */
        rc = fast_once(b.data, b.len, 1, &img, &err);
        CHECK(rc == (cases[i].over_limit_const ? 0 : 1), "%s: over the limit, read-only: %d", what, rc);
        ip_image_free(&img);
        rc = fast_writable(b.data, b.len, &img, &err, &copy_ok);
        CHECK(rc == (cases[i].over_limit_writable ? 0 : 1), "%s: over the limit, writable: %d", what, rc);
        CHECK(rc != 1 || copy_ok, "%s: declined over the limit and left the buffer changed", what);
        CHECK(rc != 0 || memcmp(img.pixels, px, (size_t)g.w * g.h * oc) == 0,
              "%s: over the limit, wrong pixels", what);
        ip_image_free(&img);
        ip__png_fast_max = saved;

        /* Where the last IDAT and the PLTE start. */
        chunks = malloc((b.len / 12 + 1) * sizeof *chunks);
        if (!chunks)
            exit(99);
        nc = split_chunks(&b, chunks, b.len / 12 + 1);
        last = plte = 0;
        for (size_t j = 0; j < nc; j++) {
            size_t at = (size_t)(chunks[j].body - b.data) - 8;

            if (strcmp(chunks[j].name, "IDAT") == 0)
                last = at;
            else if (strcmp(chunks[j].name, "PLTE") == 0)
                plte = at;
        }
        free(chunks);
        /* The last IDAT's deflate data damaged, its CRC repaired: the fast
         * path moves the IDATs, fails to inflate and must put them back;
         * palette indices out of range fail after the inflate. */
        if (g.idat_max) {
            uint8_t *m = malloc(b.len);

            if (!m)
                exit(99);
            memcpy(m, b.data, b.len);
            CHECK(last != 0 && get32(m + last) >= 1, "%s: no IDAT found", what);
            m[last + 8] ^= 0x55;
            fix_crcs(m, b.len);
            rc = fast_writable(m, b.len, &img, &err, &copy_ok);
            CHECK(rc == 1 && copy_ok, "%s, damaged: %d, buffer %s", what, rc, copy_ok ? "kept" : "changed");
            ip_image_free(&img);
            free(m);
        }
        if (g.color == 3) {
            /* PLTE cut to 39 entries: the index 39 in the data is out of range. */
            size_t pos = plte;
            uint8_t *m = malloc(b.len);

            if (!m)
                exit(99);
            CHECK(pos != 0 && get32(b.data + pos) == 120, "%s: no 40-entry PLTE", what);
            memcpy(m, b.data, pos + 8 + 117);
            set32(m + pos, 117);
            memcpy(m + pos + 8 + 117 + 4, b.data + pos + 8 + 120 + 4, b.len - (pos + 8 + 120 + 4));
            fix_crcs(m, b.len - 3);
            rc = fast_writable(m, b.len - 3, &img, &err, &copy_ok);
            free(m);
            CHECK(rc == 1 && copy_ok, "%s, short palette: %d, buffer %s", what, rc,
                  copy_ok ? "kept" : "changed");
            ip_image_free(&img);
        }
        free(px);
        free(b.data);
    }
}

static int crafted(void)
{
    writable_cases();
    crafted_streams();
    chunk_limits();
    chunk_edits();
    allocators();
    return test_finish("png_fast crafted");
}

/* ---- mutations ---- */

/* test_mutations.c's damage, same generator and order. */
static void mutate(uint8_t *buf, size_t *len, const uint8_t *orig, size_t orig_len)
{
    size_t i, n;

    memcpy(buf, orig, orig_len);
    *len = orig_len;
    switch (rnd() % 4) {
    case 0:
        n = 1 + rnd() % 4;
        for (i = 0; i < n; i++)
            buf[rnd() % orig_len] ^= (uint8_t)(1u << (rnd() % 8));
        break;
    case 1:
        n = 1 + rnd() % 16;
        i = rnd() % orig_len;
        for (; n > 0 && i < orig_len; n--, i++)
            buf[i] = (uint8_t)rnd();
        break;
    case 2: {
        static const uint8_t huge[2][4] = {{0xff, 0xff, 0xff, 0xff}, {0x7f, 0xff, 0xff, 0xff}};
        i = rnd() % (orig_len - 4);
        memcpy(buf + i, huge[rnd() % 2], 4);
        break;
    }
    default:
        *len = rnd() % orig_len;
        break;
    }
}

/* Recomputes every chunk CRC (chunks that fit). */
static void fix_crcs(uint8_t *data, size_t len)
{
    size_t pos = 8;

    while (pos + 12 <= len) {
        uint32_t n = get32(data + pos);
        if (n > len - pos - 12)
            break;
        set32(data + pos + 8 + n,
              (uint32_t)crc32(0, data + pos + 4, (uInt)n + 4));
        pos += 12 + (size_t)n;
    }
}

static long repaired, repaired_fast;

/* For a single-IDAT file: flips bits in the deflate data, then, when
 * libdeflate can decode the result to the right size, rewrites the
 * Adler-32 (and the CRC) so that only zlib's stricter rules stand between
 * the file and acceptance. */
static void idat_flips(const uint8_t *orig, size_t len, const char *name, int count)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    size_t pos = 8, idat = 0, zlen = 0, raw_len;
    uint32_t w = get32(orig + 16), h = get32(orig + 20);
    unsigned depth = orig[24], color = orig[25], ch = channels_of(color);
    uint8_t *buf = malloc(len), *raw;
    int m;

    if (!d || !buf)
        exit(99);
    while (pos + 12 <= len) {
        uint32_t n = get32(orig + pos);
        if (memcmp(orig + pos + 4, "IDAT", 4) == 0) {
            if (idat)
                goto out;            /* one IDAT only */
            idat = pos + 8;
            zlen = n;
        }
        pos += 12 + (size_t)n;
    }
    if (!idat || zlen < 8 || depth < 8 || orig[28] != 0)
        goto out;
    raw_len = (size_t)h * ((size_t)w * ch * depth / 8 + 1);
    raw = malloc(raw_len + 1);
    if (!raw)
        exit(99);
    for (m = 0; m < count; m++) {
        char what[128];
        size_t in_used = 0, out_used = 0;
        int flips = 1 + (int)(rnd() % 3), f;

        memcpy(buf, orig, len);
        for (f = 0; f < flips; f++)
            buf[idat + 2 + rnd() % (zlen - 6)] ^= (uint8_t)(1u << (rnd() % 8));
        if (libdeflate_deflate_decompress_ex(d, buf + idat + 2, zlen - 6, raw, raw_len, &in_used,
                                             &out_used) == LIBDEFLATE_SUCCESS &&
            out_used == raw_len && in_used == zlen - 6) {
            set32(buf + idat + zlen - 4, (uint32_t)adler32(1, raw, (uInt)raw_len));
            repaired++;
            fix_crcs(buf, len);
            snprintf(what, sizeof what, "%s idat flip %d (repaired)", name, m);
            if (check_fast(buf, len, what) == 0)
                repaired_fast++;
        } else {
            fix_crcs(buf, len);
            snprintf(what, sizeof what, "%s idat flip %d", name, m);
            check_fast(buf, len, what);
        }
        check_integrated(buf, len, what);
    }
    free(raw);
out:
    free(buf);
    libdeflate_free_decompressor(d);
}

static void mutate_seed(const uint8_t *orig, size_t orig_len, const char *name, int count,
                        int with_crc_fix)
{
    uint8_t *buf = malloc(orig_len);
    size_t len;
    int m;

    if (!buf || orig_len < 8)
        exit(99);
    for (m = 0; m < count; m++) {
        char what[128];
        mutate(buf, &len, orig, orig_len);
        if (with_crc_fix && len == orig_len)
            fix_crcs(buf, len);
        snprintf(what, sizeof what, "%s mutation %d%s", name, m, with_crc_fix ? " (crc fixed)" : "");
        check_fast(buf, len, what);
        if (m % 3 == 0)
            check_integrated(buf, len, what);
    }
    free(buf);
}

static int mutations(const char *conf_dir)
{
    static const char *seeds[] = {
        "basn2c08.png", "basi6a16.png", "tbrn2c08.png", "basn3p04.png", "basi0g01.png",
        "tp1n3p08.png", "basn0g08.png", "basn6a08.png", "basn4a08.png", "tbbn3p08.png",
        "z06n2c08.png", "z09n2c08.png", "f04n2c08.png", "f02n0g08.png", "oi9n2c16.png",
        "basn6a16.png", "pp0n6a08.png",
    };
    char dir[4096];
    char **names;
    size_t i, corrupt = 0;
    long accepted_before;

    snprintf(dir, sizeof dir, "%s/pngsuite/png", conf_dir);
    names = list_pngs(dir);
    for (i = 0; names[i]; i++) {
        size_t len;
        uint8_t *data;
        if (names[i][0] != 'x')
            continue;
        data = load(dir, names[i], &len);
        CHECK(check_fast(data, len, names[i]) == 1, "%s: corrupt file not declined", names[i]);
        check_integrated(data, len, names[i]);
        free(data);
        corrupt++;
    }
    free_names(names);
    CHECK(corrupt == 14, "%zu corrupt PngSuite files", corrupt);

    accepted_before = fast_accepted;
    rng_state = 12345;
    for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        size_t len;
        uint8_t *data = load(dir, seeds[i], &len);
        mutate_seed(data, len, seeds[i], 300, 0);
        mutate_seed(data, len, seeds[i], 300, 1);
        idat_flips(data, len, seeds[i], 200);
        free(data);
    }
    /* Generated seeds: fixed-Huffman streams with long matches (where a
     * flip turns length symbol 285 into 287), RLE, stored. */
    {
        static const int strategies[4] = {Z_FIXED, Z_RLE, Z_DEFAULT_STRATEGY, Z_HUFFMAN_ONLY};
        int k;
        for (k = 0; k < 8; k++) {
            struct gen g;
            uint8_t *px;
            unsigned oc;
            struct buf b;
            char name[64];

            memset(&g, 0, sizeof g);
            g.w = 60 + (uint32_t)k * 7;
            g.h = 20;
            g.color = k % 2 ? 2 : 0;
            g.depth = 8;
            g.filter = k % 3 == 0 ? 0 : 6;
            g.level = k == 7 ? 0 : 6;
            g.wbits = 15;
            g.strategy = strategies[k % 4];
            g.content = k % 2 ? 1 : 0;
            g.seed = 31 + (uint32_t)k;
            b = make_png(&g, &px, &oc);
            snprintf(name, sizeof name, "generated %d", k);
            mutate_seed(b.data, b.len, name, 200, 1);
            idat_flips(b.data, b.len, name, 400);
            free(px);
            free(b.data);
        }
    }
    printf("mutations: fast path took %ld damaged files (each checked against libpng); "
           "%ld IDAT flips repaired to libdeflate-valid streams, %ld of them taken\n",
           fast_accepted - accepted_before, repaired, repaired_fast);
    CHECK(repaired > 100, "only %ld repaired streams: the IDAT test does not bite", repaired);
    return test_finish("png_fast mutations");
}

/* ---- truncation ---- */

static void truncations(const uint8_t *data, size_t len, const char *name)
{
    uint8_t *copy = malloc(len + 1);
    size_t cut, step = len / 300 + 1;

    if (!copy)
        exit(99);
    for (cut = 1; cut < len; cut += (cut < 100 || len - cut < 100) ? 1 : step) {
        char what[160];
        memcpy(copy, data, cut);
        snprintf(what, sizeof what, "%s cut at %zu of %zu", name, cut, len);
        check_integrated(copy, cut, what);
        CHECK(check_fast(copy, cut, what) == 1, "%s: truncated file taken", what);
    }
    free(copy);
}

static int truncation(const char *conf_dir, const char *samples_dir)
{
    static const char *suite[] = {"basn2c08.png", "basn3p08.png", "tbbn3p08.png", "oi4n2c16.png",
                                  "basn0g08.png", "z00n2c08.png"};
    static const char *samples[] = {"rgb8.png", "palette.png", "rgba8.png", "gray16.png"};
    char dir[4096];
    size_t i, len;
    uint8_t *data;
    struct gen g;
    uint8_t *px;
    unsigned oc;
    struct buf b;

    snprintf(dir, sizeof dir, "%s/pngsuite/png", conf_dir);
    for (i = 0; i < sizeof suite / sizeof suite[0]; i++) {
        data = load(dir, suite[i], &len);
        truncations(data, len, suite[i]);
        free(data);
    }
    for (i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        data = load(samples_dir, samples[i], &len);
        truncations(data, len, samples[i]);
        free(data);
    }
    /* Many small IDATs, so that cuts fall between and inside them. */
    memset(&g, 0, sizeof g);
    g.w = 97;
    g.h = 41;
    g.color = 6;
    g.depth = 8;
    g.filter = 6;
    g.level = 6;
    g.wbits = 15;
    g.idat_max = 300;
    g.ancillary = 1;
    g.seed = 5;
    b = make_png(&g, &px, &oc);
    truncations(b.data, b.len, "generated RGBA, 300-byte IDATs");
    free(px);
    free(b.data);
    return test_finish("png_fast truncation");
}

/* ---- giving the input's pages back ---- */

/* Pages of buf[0..len) (page-aligned) that are not resident. */
static size_t pages_gone(const uint8_t *buf, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, gone = 0;
    unsigned char *vec = malloc(n);

    if (!vec || mincore((void *)buf, len, vec) != 0)
        exit(99);
    for (size_t i = 0; i < n; i++)
        gone += !(vec[i] & 1);
    free(vec);
    return gone;
}

/* ip__decode_owned of a fresh page-aligned copy of png, giving back or
 * not; *gone: its pages not resident afterwards. */
static struct outcome owned_decode(const struct buf *png, int give_back, size_t *gone)
{
    struct ip__strip_runner runner = {NULL, NULL, NULL, NULL, give_back};
    struct ip_decode_opts opts;
    struct outcome o;
    uint8_t *copy = mmap(NULL, png->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (copy == MAP_FAILED)
        exit(99);
    memcpy(copy, png->data, png->len);
    ip_decode_opts_default(&opts);
    o.rc = ip__decode_owned(copy, png->len, &opts, &runner, &o.img, NULL, &o.err);
    *gone = pages_gone(copy, png->len);
    munmap(copy, png->len);
    return o;
}

static void give_back_case(const struct gen *g, const char *what)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), gone, kept_gone, pos;
    uint8_t *px;
    unsigned oc;
    struct buf b = make_png(g, &px, &oc);
    struct outcome ref = decode_with(b.data, b.len, 0, 0), got, kept, plain, again;
    struct chunk c[4096];
    size_t n = split_chunks(&b, c, 4096), last = 0;

    CHECK(b.len >= ((size_t)3 << 20), "%s: only %zu bytes: too small to give pages back", what, b.len);
    CHECK(ref.rc == 0, "%s: libpng fails: %s", what, ref.err.msg);
    got = owned_decode(&b, 1, &gone);
    kept = owned_decode(&b, 0, &kept_gone);
    CHECK(got.rc == 0 && ref.rc == 0 && same_image(&got.img, &ref.img), "%s: giving back: %d '%s'", what,
          got.rc, got.err.msg);
    CHECK(kept.rc == 0 && ref.rc == 0 && same_image(&kept.img, &ref.img), "%s: keeping: %d '%s'", what,
          kept.rc, kept.err.msg);
    /* Given back a MiB at a time, up to a MiB and 72 bytes behind the end. */
    CHECK(gone * page + ((size_t)2 << 20) >= b.len, "%s: %zu of %zu bytes given back", what, gone * page,
          b.len);
    CHECK(kept_gone == 0, "%s: %zu pages gone without give_back", what, kept_gone);
    outcome_free(&got);
    outcome_free(&kept);

    /* A byte three quarters into the file flipped (its IDAT's CRC
     * repaired): the stream fails after pages went back. */
    pos = b.len / 4 * 3;
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, "IDAT") == 0 && c[i].body <= b.data + pos)
            last = i;
    CHECK(b.data + pos < c[last].body + c[last].len, "%s: no IDAT at %zu", what, pos);
    b.data[pos] ^= 0x5a;
    set32(c[last].body + c[last].len,
          (uint32_t)crc32(crc32(0, c[last].body - 4, 4), c[last].body, (uInt)c[last].len));
    outcome_free(&ref);
    ref = decode_with(b.data, b.len, 1, 0);
    plain = decode_with(b.data, b.len, 0, 0);
    CHECK(ref.rc != 0 && same_outcome(&ref, &plain), "%s damaged: ip_decode %d '%s', libpng %d '%s'", what,
          ref.rc, ref.err.msg, plain.rc, plain.err.msg);
    got = owned_decode(&b, 1, &gone);
    CHECK(got.rc == IP__EREREAD && got.img.pixels == NULL && gone > 0,
          "%s damaged: giving back returned %d '%s' (%zu pages gone)", what, got.rc, got.err.msg, gone);
    again = owned_decode(&b, 0, &kept_gone);
    CHECK(same_outcome(&again, &ref), "%s damaged, again: %d '%s', ip_decode %d '%s'", what, again.rc,
          again.err.msg, ref.rc, ref.err.msg);
    outcome_free(&got);
    outcome_free(&again);
    outcome_free(&plain);
    outcome_free(&ref);
    free(px);
    free(b.data);
}

static int give_back(void)
{
    static const struct {
        struct gen g;
        const char *what;
    } cases[] = {
        {{.w = 1100, .h = 1000, .color = 2, .depth = 8, .level = 6, .wbits = 15, .content = 2, .seed = 7},
         "RGB, one IDAT"},
        {{.w = 1100, .h = 1000, .color = 6, .depth = 8, .level = 6, .wbits = 15, .idat_max = 65536,
          .ancillary = 1, .content = 2, .seed = 8},
         "RGBA, IDATs of 64 KiB"},
        {{.w = 2000, .h = 1800, .color = 3, .depth = 8, .level = 6, .wbits = 15, .idat_max = 8192,
          .npal = 256, .content = 2, .seed = 9},
         "palette, IDATs of 8 KiB"},
        {{.w = 750, .h = 750, .color = 2, .depth = 16, .level = 1, .wbits = 15, .idat_max = 1 << 20,
          .content = 2, .seed = 10},
         "16-bit RGB, IDATs of 1 MiB"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        give_back_case(&cases[i].g, cases[i].what);
    return test_finish("png_fast give_back");
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "corpus") == 0)
        return corpus(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "crafted") == 0)
        return crafted();
    if (argc >= 3 && strcmp(argv[1], "mutations") == 0)
        return mutations(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "truncation") == 0)
        return truncation(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "give_back") == 0)
        return give_back();
    fprintf(stderr,
            "usage: %s corpus CONFORMANCE_DIR SAMPLES_DIR | crafted | mutations CONFORMANCE_DIR |"
            " truncation CONFORMANCE_DIR SAMPLES_DIR | give_back\n",
            argv[0]);
    return 99;
}
