/* PNG encoder: our own chunk writer over libdeflate, and strip-parallel
 * encoding for huge images.
 *
 * DESIGN
 * - Rows are filtered with Up (Sub for the first row): on blurred and
 *   photographic images Up compresses as well as libpng's adaptive
 *   heuristic or better (measured: 1.22 MB against 1.50 MB for adaptive on a
 *   6 MP blurred photo) and costs ~0.4 ns/pixel instead of ~5. In a huge
 *   image the first row of every strip (below) is Sub too, so that no
 *   strip's rows depend on the strip above: a decoder can unfilter the
 *   strips at once (codec_png_fast.c). The strips' rows are a property of
 *   the image, so this costs no byte-identity across -j.
 * - Ordinary images: the filtered rows are compressed in one call by
 *   libdeflate (about 2x faster than zlib at the same level and size)
 *   straight into the output buffer, then framed there as IDAT chunks of
 *   IDAT_MAX bytes with CRCs, between IHDR and IEND. The filtered rows go
 *   to a workspace the caller no longer needs when it is large enough (the
 *   pipeline's writer passes the decoded image's pixels, dead once
 *   filtered), else to the thread's buffer.
 * - Huge images (filtered data of IP_PNG_STRIP_MIN bytes or more) are cut
 *   into strips of a fixed number of rows that depends only on the row size.
 *   Each strip is deflated independently with zlib, primed with the 32 KiB
 *   of filtered data that precede it, and ended with a sync flush (the last
 *   with Z_FINISH); the strips are then joined into one zlib stream whose
 *   Adler-32 is combined from the strips' (pigz's method). Strips can be
 *   encoded by any threads in any order, and the bytes never depend on how
 *   many threads did it. An ipST chunk before the image data records the
 *   layout (put_layout), so that decoding can run by strips too.
 * - Scratch buffers and compressors are per thread and reused; they are
 *   freed when the thread exits. */
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec_internal.h"

#define IDAT_MAX (1u << 20)           /* bytes of compressed data per IDAT chunk */
#define STRIP_TARGET (4u << 20)       /* filtered bytes per strip */
#define WINDOW 32768u
#define STRIP_CHUNK (64u << 10)       /* filtered bytes handed to zlib at a time */

size_t ip__png_strip_min = 64u << 20;

struct tls {
    struct libdeflate_compressor *comp[13];
    uint8_t *raw;                     /* filtered rows */
    size_t raw_cap;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
    struct tls *t = p;

    if (!t)
        return;
    for (int i = 0; i < 13; i++)
        if (t->comp[i])
            libdeflate_free_compressor(t->comp[i]);
    free(t->raw);
    free(t);
}

static void tls_init(void)
{
    pthread_key_create(&tls_key, tls_free);
}

static struct tls *tls_get(void)
{
    struct tls *t;

    pthread_once(&tls_once, tls_init);
    t = pthread_getspecific(tls_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (t && pthread_setspecific(tls_key, t) != 0) {
            free(t);
            t = NULL;
        }
    }
    return t;
}

static uint8_t *tls_raw(struct tls *t, size_t n)
{
    if (t->raw_cap < n) {
        uint8_t *p = realloc(t->raw, n);
        if (!p)
            return NULL;
        t->raw = p;
        t->raw_cap = n;
    }
    return t->raw;
}

static size_t row_bytes(const struct ip_image *img)
{
    return (size_t)img->width * img->channels;
}

int ip__png_strip_first_sub = 1;

/* Writes the filtered form of row y (filter byte + data) to dst: Sub when y
 * is a multiple of sub_every (0: only row 0), else Up. */
static void filter_row(const struct ip_image *img, uint32_t y, uint32_t sub_every, uint8_t *dst)
{
    const uint8_t *cur = img->pixels + (size_t)y * img->stride;
    size_t n = row_bytes(img), bpp = img->channels;

    if (y == 0 || (sub_every && y % sub_every == 0)) {
        dst[0] = 1; /* Sub */
        memcpy(dst + 1, cur, bpp < n ? bpp : n);
        for (size_t i = bpp; i < n; i++)
            dst[1 + i] = (uint8_t)(cur[i] - cur[i - bpp]);
    } else {
        const uint8_t *prev = cur - img->stride;
        dst[0] = 2; /* Up */
        for (size_t i = 0; i < n; i++)
            dst[1 + i] = (uint8_t)(cur[i] - prev[i]);
    }
}

/* Rows [y0, y1) filtered, one after another from dst (sub_every: see filter_row). */
static void filter_rows(const struct ip_image *img, uint32_t y0, uint32_t y1, uint32_t sub_every,
                        uint8_t *dst)
{
    size_t fb = 1 + row_bytes(img);

    for (uint32_t y = y0; y < y1; y++)
        filter_row(img, y, sub_every, dst + (size_t)(y - y0) * fb);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int put_chunk(struct ip_buf *out, const char *type, const uint8_t *data, size_t len,
                     struct ip_error *err)
{
    uint8_t hdr[8], crc[4];
    uint32_t c;

    put32(hdr, (uint32_t)len);
    memcpy(hdr + 4, type, 4);
    c = libdeflate_crc32(0, hdr + 4, 4);
    if (len)
        c = libdeflate_crc32(c, data, len); /* (NULL, 0) would reset it to 0 */
    put32(crc, c);
    if (ip__buf_append(out, hdr, 8, err) || (len && ip__buf_append(out, data, len, err)) ||
        ip__buf_append(out, crc, 4, err))
        return IP_ENOMEM;
    return 0;
}

static int put_header(const struct ip_image *img, struct ip_buf *out, struct ip_error *err)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t color_type[5] = {0, 0, 4, 2, 6};
    uint8_t ihdr[13];

    put32(ihdr, img->width);
    put32(ihdr + 4, img->height);
    ihdr[8] = 8;
    ihdr[9] = color_type[img->channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    if (ip__buf_append(out, sig, sizeof sig, err))
        return IP_ENOMEM;
    return put_chunk(out, "IHDR", ihdr, sizeof ihdr, err);
}

/* The zlib data goes straight into out, after room for the framing of
 * every IDAT chunk it could need: put_header, then idat_reserve (returns
 * where the data goes, or 0 when out of memory), then the data of at most
 * zlen_max bytes, then idat_frame. */
static size_t idat_reserve(struct ip_buf *out, size_t zlen_max, struct ip_error *err)
{
    size_t slack = 12 * (zlen_max / IDAT_MAX + 1);

    if (ip__buf_reserve(out, slack + zlen_max + 12, err))
        return 0;
    return out->len + slack;
}

/* Frames zlen bytes of zlib data at out->data + z_at as IDAT chunks right
 * after out->len, then IEND. Data k moves from z_at + k * IDAT_MAX down to
 * out->len + k * (IDAT_MAX + 12) + 8, never upwards, and its CRC ends at or
 * before where data k + 1 still waits. */
static void idat_frame(struct ip_buf *out, size_t z_at, size_t zlen)
{
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    size_t pos = out->len;

    for (size_t done = 0; done < zlen;) {
        size_t n = zlen - done < IDAT_MAX ? zlen - done : IDAT_MAX;
        uint8_t *c = out->data + pos;

        memmove(c + 8, out->data + z_at + done, n);
        put32(c, (uint32_t)n);
        memcpy(c + 4, "IDAT", 4);
        put32(c + 8 + n, libdeflate_crc32(0, c + 4, 4 + n));
        pos += 12 + n;
        done += n;
    }
    memcpy(out->data + pos, iend, sizeof iend);
    out->len = pos + sizeof iend;
}

static int check_image(const struct ip_image *img, int level, struct ip_error *err)
{
    if (!img || !img->pixels || img->width == 0 || img->height == 0 || img->channels < 1 ||
        img->channels > 4 || img->stride < row_bytes(img))
        return ip_error_set(err, IP_EINVAL, "PNG encoder: invalid image");
    if (level < 0 || level > 9)
        return ip_error_set(err, IP_EINVAL, "PNG level %d out of range 0..9", level);
    return 0;
}

/* ---- strips ---- */

uint32_t ip__png_strip_rows(const struct ip_image *img)
{
    size_t fb = 1 + row_bytes(img);
    size_t target = ip__png_strip_min / 4 < STRIP_TARGET ? ip__png_strip_min / 4 : STRIP_TARGET;
    size_t rows = (target + fb - 1) / fb;
    return rows > img->height ? img->height : (uint32_t)rows;
}

uint32_t ip__png_strip_count(const struct ip_image *img)
{
    size_t fb = 1 + row_bytes(img), total;

    if (ip_mul_size(fb, img->height, &total) != 0 || total < IP_PNG_STRIP_MIN)
        return 0;
    return (img->height + ip__png_strip_rows(img) - 1) / ip__png_strip_rows(img);
}

/* Deflates strip k into *out (replacing its contents), with its Adler-32
 * and uncompressed length; any thread, any order. A chunk of rows at a
 * time: its rows are filtered into a buffer of about STRIP_CHUNK bytes (the
 * thread's), so a strip encoder holds no strip-sized memory besides its
 * output. zlib's output does not depend on how its input is cut (it waits
 * for lookahead it lacks). */
static int png_strip_encode(const struct ip_image *img, int level, uint32_t k, struct ip_buf *out,
                            uint32_t *adler, size_t *raw_len, struct ip_error *err)
{
    uint32_t rows = ip__png_strip_rows(img), n = ip__png_strip_count(img);
    uint32_t y0 = k * rows, y1 = y0 + rows > img->height ? img->height : y0 + rows;
    uint32_t sub_every = ip__png_strip_first_sub ? rows : 0;
    size_t fb = 1 + row_bytes(img), len = (size_t)(y1 - y0) * fb;
    uint32_t chunk_rows = STRIP_CHUNK / fb ? (uint32_t)(STRIP_CHUNK / fb) : 1;
    struct tls *t = tls_get();
    uint32_t back, a = (uint32_t)adler32(0, NULL, 0);
    uint8_t *raw;
    z_stream zs;
    int rc = 0;

    if (k >= n)
        return ip_error_set(err, IP_EINVAL, "PNG strip %u of %u", k, n);
    /* Enough rows before the strip for the 32 KiB window. */
    back = y0 == 0 ? 0 : (uint32_t)((WINDOW + fb - 1) / fb);
    if (back > y0)
        back = y0;
    raw = t ? tls_raw(t, (size_t)(back > chunk_rows ? back : chunk_rows) * fb) : NULL;
    if (!raw)
        return ip_error_set(err, IP_ENOMEM, "out of memory for PNG strip");

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ip_error_set(err, IP_ENOMEM, "cannot start zlib");
    if (back) {
        size_t have = (size_t)back * fb, dict = have < WINDOW ? have : WINDOW;

        filter_rows(img, y0 - back, y0, sub_every, raw);
        deflateSetDictionary(&zs, raw + have - dict, (uInt)dict);
    }
    out->len = 0;
    if (ip__buf_reserve(out, deflateBound(&zs, (uLong)len) + 16, err)) {
        deflateEnd(&zs);
        return IP_ENOMEM;
    }
    zs.next_out = out->data;
    zs.avail_out = (uInt)out->cap;
    for (uint32_t y = y0; y < y1 && !rc; y += chunk_rows) {
        uint32_t yn = y1 - y < chunk_rows ? y1 : y + chunk_rows;
        size_t have = (size_t)(yn - y) * fb;
        int flush = yn < y1 ? Z_NO_FLUSH : k + 1 == n ? Z_FINISH : Z_SYNC_FLUSH;
        int zr;

        filter_rows(img, y, yn, sub_every, raw);
        a = (uint32_t)adler32(a, raw, (uInt)have);
        zs.next_in = raw;
        zs.avail_in = (uInt)have;
        zr = deflate(&zs, flush);
        if (!(flush == Z_FINISH ? zr == Z_STREAM_END : zr == Z_OK) || zs.avail_in != 0)
            rc = ip_error_set(err, IP_ENOMEM, "zlib could not compress PNG strip %u", k);
    }
    out->len = zs.total_out;
    deflateEnd(&zs);
    *adler = a;
    *raw_len = len;
    return rc;
}

/* The ipST chunk: rows per strip, strip count, and where strips 1..n-1
 * start in the zlib stream (8 bytes each), so that a decoder can inflate
 * the strips at once (codec_png_fast.c). Ancillary, private, unsafe to copy:
 * an editor that changes the image data drops it. */
static int put_layout(const struct ip_image *img, const struct ip_buf *strips, uint32_t n, struct ip_buf *out,
                      struct ip_error *err)
{
    size_t len = 8 + 8 * ((size_t)n - 1), at = 2;
    uint8_t *body = malloc(len);
    int rc;

    if (!body)
        return ip_error_set(err, IP_ENOMEM, "out of memory for the PNG strip layout");
    put32(body, ip__png_strip_rows(img));
    put32(body + 4, n);
    for (uint32_t k = 1; k < n; k++) {
        at += strips[k - 1].len;
        put32(body + 8 * k, (uint32_t)((uint64_t)at >> 32));
        put32(body + 8 * k + 4, (uint32_t)at);
    }
    rc = put_chunk(out, "ipST", body, len, err);
    free(body);
    return rc;
}

/* Appends the whole PNG made of the n strips to out, freeing each strip
 * once it is copied (so the strips and the output are not held twice). */
static int png_strips_join(const struct ip_image *img, int level, struct ip_buf *strips,
                           const uint32_t *adlers, const size_t *raw_lens, uint32_t n, struct ip_buf *out,
                           struct ip_error *err)
{
    size_t zlen = 2 + 4, z_at, pos;
    uint32_t adler = 1;
    int flevel = level < 2 ? 0 : level < 6 ? 1 : level == 6 ? 2 : 3;
    uint8_t *z;

    for (uint32_t k = 0; k < n; k++)
        zlen += strips[k].len;
    if (put_header(img, out, err) || (n > 1 && put_layout(img, strips, n, out, err)) ||
        !(z_at = idat_reserve(out, zlen, err)))
        return IP_ENOMEM;
    /* zlib header, the strips' deflate data, the combined Adler-32. */
    z = out->data + z_at;
    z[0] = 0x78;
    z[1] = (uint8_t)(flevel << 6);
    z[1] = (uint8_t)(z[1] + (31 - ((z[0] << 8) | z[1]) % 31) % 31);
    pos = 2;
    for (uint32_t k = 0; k < n; k++) {
        memcpy(z + pos, strips[k].data, strips[k].len);
        pos += strips[k].len;
        ip_buf_free(&strips[k]);
        adler = (uint32_t)adler32_combine(adler, adlers[k], (z_off_t)raw_lens[k]);
    }
    put32(z + pos, adler);
    idat_frame(out, z_at, zlen);
    return 0;
}

/* ---- whole images ---- */

static int write_whole(const struct ip_image *img, int level, uint8_t *ws, size_t ws_len,
                       struct ip_buf *out, struct ip_error *err)
{
    struct tls *t = tls_get();
    size_t fb = 1 + row_bytes(img), len, bound, zlen, z_at;
    uint8_t *raw;

    if (ip_mul_size(fb, img->height, &len) != 0)
        return ip_error_set(err, IP_ETOOBIG, "image too large for PNG");
    if (!t)
        return ip_error_set(err, IP_ENOMEM, "out of memory for the PNG encoder");
    raw = ws && ws_len >= len ? ws : tls_raw(t, len);
    if (!raw)
        return ip_error_set(err, IP_ENOMEM, "out of memory for PNG rows");
    if (!t->comp[level] && !(t->comp[level] = libdeflate_alloc_compressor(level)))
        return ip_error_set(err, IP_ENOMEM, "out of memory for the PNG compressor");
    filter_rows(img, 0, img->height, 0, raw);

    if (put_header(img, out, err))
        return IP_ENOMEM;
    bound = libdeflate_zlib_compress_bound(t->comp[level], len);
    if (!(z_at = idat_reserve(out, bound, err)))
        return IP_ENOMEM;
    zlen = libdeflate_zlib_compress(t->comp[level], raw, len, out->data + z_at, bound);
    if (zlen == 0)
        return ip_error_set(err, IP_ENOMEM, "PNG compression failed");
    idat_frame(out, z_at, zlen);
    return 0;
}

/* The strips being encoded (png_strip_task: one strip per call). */
struct png_strips {
    const struct ip_image *img;
    int level;
    struct ip_buf *bufs;
    uint32_t *adlers;
    size_t *lens;
};

static int png_strip_task(void *ctx, uint32_t k, struct ip_error *err)
{
    struct png_strips *s = ctx;

    return png_strip_encode(s->img, s->level, k, &s->bufs[k], &s->adlers[k], &s->lens[k], err);
}

int ip__png_write(const struct ip_image *img, int level, uint8_t *ws, size_t ws_len,
                  const struct ip__strip_runner *runner, struct ip_buf *out, struct ip_error *err)
{
    uint32_t n;
    size_t start = out->len;
    int rc = check_image(img, level, err);

    if (rc)
        return rc;
    n = ip__png_strip_count(img);
    if (n == 0) {
        rc = write_whole(img, level, ws, ws_len, out, err);
    } else {
        struct png_strips s = {img, level, calloc(n, sizeof *s.bufs), calloc(n, sizeof *s.adlers),
                               calloc(n, sizeof *s.lens)};

        rc = s.bufs && s.adlers && s.lens ? 0 : ip_error_set(err, IP_ENOMEM, "out of memory for PNG strips");
        if (!rc)
            rc = ip__strips_run(runner, n, png_strip_task, &s, err);
        if (!rc)
            rc = png_strips_join(img, level, s.bufs, s.adlers, s.lens, n, out, err);
        for (uint32_t k = 0; s.bufs && k < n; k++)
            ip_buf_free(&s.bufs[k]);
        free(s.bufs);
        free(s.adlers);
        free(s.lens);
    }
    if (rc)
        out->len = start;
    return rc;
}
