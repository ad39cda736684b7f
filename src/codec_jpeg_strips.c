/* Strip-parallel JPEG encoding for huge images.
 *
 * DESIGN: a JPEG with a restart interval of one strip (a whole number of
 * MCU rows) is a sequence of independent entropy-coded segments: at each
 * restart the encoder pads to a byte, writes RSTn and resets the DC
 * predictors. Encoding each strip as a JPEG of its own, with the same
 * settings (same quantisation and standard Huffman tables, no optimisation),
 * gives exactly those segments. So strips can be encoded by any threads in
 * any order (ip__jpeg_encode on a view of the rows) and joined: the first
 * strip's headers with the full height patched into SOF and a DRI marker
 * added, then segment 0, RST0, segment 1, RST1, ... and EOI. Strip rows are
 * a multiple of the MCU height, fixed by the image alone (never by -j), and
 * bounded so that the restart interval fits in 16 bits. Images with fewer
 * than IP_PNG_STRIP_MIN bytes of pixels are encoded whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"

#define STRIP_TARGET (4u << 20)

static uint32_t mcu_rows(const struct ip_image *img)
{
    return img->channels <= 2 ? 8 : 16;   /* gray, or 4:2:0 colour */
}

static uint32_t mcus_per_row(const struct ip_image *img)
{
    uint32_t w = img->channels <= 2 ? 8 : 16;
    return (img->width + w - 1) / w;
}

uint32_t ip__jpeg_strip_rows(const struct ip_image *img)
{
    size_t target = ip__png_strip_min / 4 < STRIP_TARGET ? ip__png_strip_min / 4 : STRIP_TARGET;
    size_t row = (size_t)img->width * img->channels;
    uint32_t m = mcu_rows(img);
    size_t units = (target / (row ? row : 1)) / m;   /* MCU rows per strip */
    size_t max_units = 65535u / mcus_per_row(img);   /* DRI is 16 bits */

    if (units > max_units)
        units = max_units;
    if (units < 1)
        units = 1;
    return (uint32_t)(units * m);
}

uint32_t ip__jpeg_strip_count(const struct ip_image *img)
{
    size_t bytes;

    if (mcus_per_row(img) > 65535u ||
        ip_mul_size((size_t)img->width * img->channels, img->height, &bytes) != 0 ||
        bytes < IP_PNG_STRIP_MIN)
        return 0;
    return (img->height + ip__jpeg_strip_rows(img) - 1) / ip__jpeg_strip_rows(img);
}

/* Encodes strip k into *out (replacing its contents); any thread, any order. */
static int jpeg_strip_encode(const struct ip_image *img, int quality, uint32_t k, struct ip_buf *out,
                             struct ip_error *err)
{
    uint32_t rows = ip__jpeg_strip_rows(img), y0 = k * rows;
    struct ip_image view = *img;

    if (y0 >= img->height)
        return ip_error_set(err, IP_EINVAL, "JPEG strip %u out of range", k);
    view.pixels = img->pixels + (size_t)y0 * img->stride;
    view.height = img->height - y0 < rows ? img->height - y0 : rows;
    out->len = 0;
    return ip__jpeg_encode(&view, quality, out, err);
}

static uint32_t be16(const uint8_t *p)
{
    return ((uint32_t)p[0] << 8) | p[1];
}

/* Offsets of the SOS marker, of the first byte after the SOS header, and of
 * SOF's height field, in a strip our own encoder wrote. */
static int find_markers(const uint8_t *d, size_t n, size_t *sos, size_t *scan, size_t *sof_height)
{
    size_t i = 2;

    *sof_height = 0;
    while (i + 4 <= n) {
        uint8_t m;
        size_t len;

        if (d[i] != 0xFF)
            return -1;
        m = d[i + 1];
        len = be16(d + i + 2);
        if (m >= 0xC0 && m <= 0xC2 && i + 7 <= n)
            *sof_height = i + 5;
        if (m == 0xDA) {
            *sos = i;
            *scan = i + 2 + len;
            return *scan <= n && *sof_height ? 0 : -1;
        }
        i += 2 + len;
    }
    return -1;
}

/* Appends the JPEG made of the n strips to out; frees each strip once it
 * is copied, as png_strips_join does. */
static int jpeg_strips_join(const struct ip_image *img, struct ip_buf *strips, uint32_t n,
                            struct ip_buf *out, struct ip_error *err)
{
    size_t sos, scan, sofh, sos_k, scan_k, sofh_k, start = out->len;
    uint32_t interval = ip__jpeg_strip_rows(img) / mcu_rows(img) * mcus_per_row(img);
    uint8_t dri[6] = {0xFF, 0xDD, 0, 4, (uint8_t)(interval >> 8), (uint8_t)interval};
    int rc = 0;

    if (find_markers(strips[0].data, strips[0].len, &sos, &scan, &sofh) != 0)
        return ip_error_set(err, IP_EINVAL, "JPEG strip without a scan");
    /* Headers up to the SOS marker, then DRI, then SOS. */
    rc = ip__buf_append(out, strips[0].data, sos, err);
    if (!rc) {
        out->data[start + sofh] = (uint8_t)(img->height >> 8);
        out->data[start + sofh + 1] = (uint8_t)img->height;
        rc = ip__buf_append(out, dri, sizeof dri, err);
    }
    if (!rc)
        rc = ip__buf_append(out, strips[0].data + sos, scan - sos, err);
    for (uint32_t k = 0; k < n && !rc; k++) {
        struct ip_buf *s = &strips[k];
        uint8_t rst[2] = {0xFF, (uint8_t)(0xD0 + (k & 7))};

        if (find_markers(s->data, s->len, &sos_k, &scan_k, &sofh_k) != 0 || s->len < scan_k + 2 ||
            s->data[s->len - 2] != 0xFF || s->data[s->len - 1] != 0xD9) {
            rc = ip_error_set(err, IP_EINVAL, "JPEG strip %u is malformed", k);
            break;
        }
        rc = ip__buf_append(out, s->data + scan_k, s->len - 2 - scan_k, err);
        ip_buf_free(s);
        if (!rc && k + 1 < n)
            rc = ip__buf_append(out, rst, 2, err);
    }
    if (!rc)
        rc = ip__buf_append(out, (const uint8_t[]){0xFF, 0xD9}, 2, err);
    if (rc)
        out->len = start;
    return rc;
}

/* The strips being encoded (jpeg_strip_task: one strip per call). */
struct jpeg_strips {
    const struct ip_image *img;
    int quality;
    struct ip_buf *bufs;
};

static int jpeg_strip_task(void *ctx, uint32_t k, struct ip_error *err)
{
    struct jpeg_strips *s = ctx;

    return jpeg_strip_encode(s->img, s->quality, k, &s->bufs[k], err);
}

int ip__jpeg_write(const struct ip_image *img, int quality, const struct ip__strip_runner *runner,
                   struct ip_buf *out, struct ip_error *err)
{
    uint32_t n = ip__jpeg_strip_count(img);
    struct jpeg_strips s = {img, quality, NULL};
    int rc;

    if (n <= 1)
        return ip__jpeg_encode(img, quality, out, err);
    s.bufs = calloc(n, sizeof *s.bufs);
    if (!s.bufs)
        return ip_error_set(err, IP_ENOMEM, "out of memory for JPEG strips");
    rc = ip__strips_run(runner, n, jpeg_strip_task, &s, err);
    if (!rc)
        rc = jpeg_strips_join(img, s.bufs, n, out, err);
    for (uint32_t k = 0; k < n; k++)
        ip_buf_free(&s.bufs[k]);
    free(s.bufs);
    return rc;
}

/* Strip-parallel decoding of sequential JPEGs.
 *
 * DESIGN: in a sequential (baseline or extended Huffman) JPEG with one
 * interleaved scan and a restart interval of whole MCU rows, each restart
 * segment decodes on its own: the DC predictors reset at every RSTn. A
 * strip of segments is decoded as a JPEG of its own: the file's headers
 * with the strip's height in SOF, its SOS, the segments with their RST
 * markers renumbered from RST0 (libjpeg expects RST0 first), and EOI.
 * Fancy chroma upsampling (h2v2, h1v2) makes output row 2c from chroma rows
 * c and c - 1, and row 2c + 1 from c and c + 1. A strip starts on an even
 * row, so only its first row needs the chroma row above it, and its last
 * row the one below. So a colour strip also takes the segment below it
 * (when there is one; libjpeg stops after that segment's first MCU row),
 * and writes its rows but the first, plus the first row of the next strip,
 * which it decodes with both neighbours in place; strip 0 writes row 0 too,
 * which has no row above in a whole decode either. Every row is written by
 * one strip exactly as a whole-image decode makes it, and no strip decodes
 * the segment above its own. The strip layout depends only on the file.
 * Without a restart interval a strip is a run of MCU rows (one segment
 * per MCU row) and nothing in the file says where its data starts:
 * codec_jpeg_seq.c finds that by speculative decoding, in two phases of
 * tasks the caller runs on its team (ip__jpeg_plan_prep), and each strip
 * is then decoded by codec_jpeg.c from the file's headers (the strip's
 * height in SOF) with its coefficients from codec_jpeg_prog.c, decoded
 * from the bit where the strip's MCUs start (ip__jpeg_decode_seq_rows).
 * Anything unusual (progressive or arithmetic coding, several scans, CMYK,
 * a restart interval that does not end MCU rows, RST markers missing or
 * out of order, no EOI, under IP_PNG_STRIP_MIN bytes decoded, strips not
 * found) gets no plan and is decoded whole, which also gives corrupt and
 * truncated files their usual errors; a strip that fails makes the caller
 * decode the file whole for the same reason. */
struct ip__jpeg_plan {
    const uint8_t *data;
    size_t len;
    size_t scan;             /* first entropy-coded byte: the headers and SOS end here */
    size_t sof_height;       /* offset of SOF's height field */
    struct ip_image shape;   /* output width, height, channels */
    struct ip_decode_opts opts;
    uint32_t seg_px;         /* pixel rows per restart segment */
    uint32_t nseg;
    size_t *seg_start, *seg_end;   /* entropy bytes of segment i (RST excluded) */
    uint32_t strip_segs;     /* segments per strip */
    uint32_t nstrips;
    int overlap;             /* colour: a strip's first row is written by the strip above */
    /* No restart markers (codec_jpeg_seq.c): a segment is one MCU row. */
    struct ip__jpeg_seq *seq;
    int prepared;                   /* ip__jpeg_plan_ready said yes */
    struct ip__jpeg_seq_at *starts; /* per strip: the known state before its first MCU ... */
    uint64_t *skips;                /* ... and the MCUs from there to it */
};

#define DECODE_STRIP_TARGET (4u << 20)

/* Walks the markers up to SOS; 0 when the file has the layout described
 * above. *components: the frame's (1 or 3; no output has more channels). */
static int plan_headers(struct ip__jpeg_plan *pl, uint32_t *mcu_w, uint32_t *mcu_h, uint32_t *interval,
                        uint32_t *components)
{
    const uint8_t *d = pl->data;
    size_t n = pl->len, i = 2;
    uint32_t ncomp = 0, hmax = 1, vmax = 1, restart = 0;
    int sof = 0;

    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8)
        return -1;
    for (;;) {
        uint32_t m, seglen;

        if (i + 4 > n || d[i] != 0xFF)
            return -1;
        m = d[i + 1];
        seglen = be16(d + i + 2);
        if (m == 0xFF || seglen < 2 || i + 2 + seglen > n)
            return -1;
        if (m == 0xC0 || m == 0xC1) {
            const uint8_t *f = d + i + 4;
            if (sof || seglen < 8 || f[0] != 8)
                return -1;
            ncomp = f[5];
            if ((ncomp != 1 && ncomp != 3) || seglen != 8 + 3 * ncomp)
                return -1;
            for (uint32_t c = 0; c < ncomp; c++) {
                uint32_t h = f[6 + 3 * c + 1] >> 4, v = f[6 + 3 * c + 1] & 15;
                if (h < 1 || h > 4 || v < 1 || v > 4)
                    return -1;
                hmax = h > hmax ? h : hmax;
                vmax = v > vmax ? v : vmax;
            }
            if (ncomp == 1)
                hmax = vmax = 1;   /* a single-component scan's MCU is one block */
            pl->sof_height = i + 5;
            sof = 1;
        } else if ((m >= 0xC2 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xD9 ||
                   (m >= 0xD0 && m <= 0xD8)) {
            return -1;   /* progressive, lossless, hierarchical, arithmetic; stray markers */
        } else if (m == 0xDD) {
            if (seglen != 4)
                return -1;
            restart = be16(d + i + 4);
        } else if (m == 0xDA) {
            if (!sof || seglen < 6 || d[i + 4] != ncomp)
                return -1;
            pl->scan = i + 2 + seglen;
            break;
        }
        i += 2 + seglen;
    }
    if (be16(d + pl->sof_height) == 0)
        return -1;   /* DNL: the height comes after the scan */
    *mcu_w = 8 * hmax;
    *mcu_h = 8 * vmax;
    *interval = restart;
    *components = ncomp;
    return 0;
}

size_t ip__jpeg_next_marker(const uint8_t *data, size_t len, size_t pos)
{
    while (pos + 1 < len) {
        const uint8_t *ff = memchr(data + pos, 0xFF, len - pos - 1);
        uint8_t m;

        if (!ff)
            break;
        pos = (size_t)(ff - data);
        m = data[pos + 1];
        if (m != 0x00 && m != 0xFF)
            return pos;
        pos += m == 0xFF ? 1 : 2;   /* fill before a marker, or a stuffed byte */
    }
    return len;
}

/* Finds the restart segments: nseg - 1 RST markers in order, then EOI. */
static int plan_segments(struct ip__jpeg_plan *pl)
{
    size_t at = pl->scan;
    uint32_t i = 0;

    pl->seg_start[0] = pl->scan;
    for (;;) {
        uint8_t m;

        at = ip__jpeg_next_marker(pl->data, pl->len, at);
        if (at >= pl->len)
            return -1;
        m = pl->data[at + 1];
        pl->seg_end[i] = at;
        if (m == 0xD9)
            return i + 1 == pl->nseg ? 0 : -1;
        if (m != 0xD0 + (i & 7) || ++i >= pl->nseg)
            return -1;
        pl->seg_start[i] = at + 2;
        at += 2;
    }
}

void ip__jpeg_plan_free(struct ip__jpeg_plan *pl)
{
    if (!pl)
        return;
    free(pl->seg_start);
    free(pl->seg_end);
    ip__jpeg_seq_close(pl->seq);
    free(pl->starts);
    free(pl->skips);
    free(pl);
}

struct ip__jpeg_plan *ip__jpeg_plan_strips(const uint8_t *data, size_t len, const struct ip_decode_opts *opts)
{
    struct ip__jpeg_plan *pl = calloc(1, sizeof *pl);
    uint32_t mcu_w, mcu_h, interval, components, per_row, rows_mcu, seg_rows;
    struct ip_error err;
    size_t bytes, row, target;

    if (!pl)
        return NULL;
    pl->data = data;
    pl->len = len;
    pl->opts = *opts;
    pl->opts.allocator = NULL;
    /* The frame's own size bounds the output before libjpeg reads the
     * header: most files stop here (no restart interval, or small). */
    if (plan_headers(pl, &mcu_w, &mcu_h, &interval, &components) != 0 ||
        (uint64_t)be16(data + pl->sof_height) * be16(data + pl->sof_height + 2) * components < IP_PNG_STRIP_MIN ||
        ip__jpeg_shape(data, len, &pl->opts, &pl->shape, &err) != 0 || pl->shape.channels == 0 ||
        pl->shape.height != be16(data + pl->sof_height) || pl->shape.width != be16(data + pl->sof_height + 2))
        goto no;
    row = (size_t)pl->shape.width * pl->shape.channels;
    if (ip_mul_size(row, pl->shape.height, &bytes) != 0 || bytes < IP_PNG_STRIP_MIN)
        goto no;
    per_row = (pl->shape.width + mcu_w - 1) / mcu_w;
    rows_mcu = (pl->shape.height + mcu_h - 1) / mcu_h;
    if (interval == 0) {
        /* No restart markers: strips of MCU rows, whose starts phases of
         * speculative decoding find (ip__jpeg_plan_prep). */
        if (ip__jpeg_seq_new(data, len, &pl->opts, &pl->seq) != 0 ||
            ip__jpeg_seq_mcus_per_row(pl->seq) != per_row)
            goto no;
        pl->seg_px = mcu_h;
        pl->nseg = rows_mcu;
    } else {
        if (interval % per_row != 0)
            goto no;
        seg_rows = interval / per_row;
        pl->seg_px = seg_rows * mcu_h;
        pl->nseg = (rows_mcu + seg_rows - 1) / seg_rows;
        pl->seg_start = malloc(pl->nseg * sizeof *pl->seg_start);
        pl->seg_end = malloc(pl->nseg * sizeof *pl->seg_end);
        if (!pl->seg_start || !pl->seg_end || plan_segments(pl) != 0)
            goto no;
        pl->prepared = 1;
    }
    /* About DECODE_STRIP_TARGET bytes of output per strip, and at least 4
     * segments once there are 16 strips or more, since each colour strip
     * also decodes the first MCU row below it. */
    target = IP_PNG_STRIP_MIN / 4 < DECODE_STRIP_TARGET ? IP_PNG_STRIP_MIN / 4 : DECODE_STRIP_TARGET;
    pl->strip_segs = (uint32_t)((target / row + pl->seg_px - 1) / pl->seg_px);
    if (pl->strip_segs < pl->nseg / 16 && pl->strip_segs < 4)
        pl->strip_segs = pl->nseg / 16 < 4 ? pl->nseg / 16 : 4;
    if (pl->strip_segs < 1)
        pl->strip_segs = 1;
    pl->nstrips = (pl->nseg + pl->strip_segs - 1) / pl->strip_segs;
    /* Chroma upsampling reads rows of the neighbouring strips, also when
     * the output is the gray of the colour. */
    pl->overlap = components > 1 && (pl->shape.channels > 1 || pl->opts.gray);
    if (pl->nstrips < 2)
        goto no;
    return pl;
no:
    ip__jpeg_plan_free(pl);
    return NULL;
}

uint32_t ip__jpeg_plan_prep_count(const struct ip__jpeg_plan *pl)
{
    return pl->seq && !pl->prepared ? ip__jpeg_seq_chunks(pl->seq) : 0;
}

int ip__jpeg_plan_prep(struct ip__jpeg_plan *pl, int phase, uint32_t k)
{
    return ip__jpeg_seq_find(pl->seq, phase, k);
}

int ip__jpeg_plan_ready(struct ip__jpeg_plan *pl, const atomic_int *stop)
{
    uint32_t per_row;

    if (pl->prepared)
        return 0;
    if (!pl->seq || ip__jpeg_seq_finish(pl->seq, stop) != 0)
        return 1;
    pl->starts = malloc(pl->nstrips * sizeof *pl->starts);
    pl->skips = malloc(pl->nstrips * sizeof *pl->skips);
    if (!pl->starts || !pl->skips)
        return 1;
    per_row = ip__jpeg_seq_mcus_per_row(pl->seq);
    for (uint32_t k = 0; k < pl->nstrips; k++) {
        int64_t first = (int64_t)k * pl->strip_segs * per_row;

        ip__jpeg_seq_locate(pl->seq, first, &pl->starts[k]);
        pl->skips[k] = (uint64_t)(first - pl->starts[k].mcu);
    }
    pl->prepared = 1;
    return 0;
}

int ip__jpeg_plan_prepare(struct ip__jpeg_plan *pl)
{
    uint32_t n = ip__jpeg_plan_prep_count(pl);

    for (int phase = 0; phase < 2; phase++)
        for (uint32_t k = 0; k < n; k++)
            if (ip__jpeg_plan_prep(pl, phase, k) != 0)
                return 1;
    return ip__jpeg_plan_ready(pl, NULL);
}

uint32_t ip__jpeg_plan_count(const struct ip__jpeg_plan *pl)
{
    return pl->nstrips;
}

struct ip_image ip__jpeg_plan_shape(const struct ip__jpeg_plan *pl)
{
    return pl->shape;
}

int ip__jpeg_plan_decode(const struct ip__jpeg_plan *pl, uint32_t k, const struct ip_image *img,
                         struct ip_error *err)
{
    uint32_t s0 = k * pl->strip_segs, s1 = s0 + pl->strip_segs, e1;
    uint32_t y0, y1, ye1, first, last;
    struct ip_buf jpg = {0};
    struct ip_image view;
    size_t need;
    int rc;

    if (k >= pl->nstrips || img->width != pl->shape.width || img->height != pl->shape.height ||
        img->channels != pl->shape.channels || !pl->prepared)
        return ip_error_set(err, IP_EINVAL, "JPEG strip %u does not fit the image", k);
    if (s1 > pl->nseg)
        s1 = pl->nseg;
    e1 = pl->overlap && s1 < pl->nseg ? s1 + 1 : s1;
    y0 = s0 * pl->seg_px;
    y1 = s1 == pl->nseg ? pl->shape.height : s1 * pl->seg_px;
    ye1 = e1 == pl->nseg ? pl->shape.height : e1 * pl->seg_px;
    /* Colour: rows [y0 + 1, y1 + 1), or from row 0 in strip 0 and to the
     * image's end in the last strip. */
    first = pl->overlap && k > 0 ? y0 + 1 : y0;
    last = pl->overlap && s1 < pl->nseg ? y1 + 1 : y1;

    /* The headers with the strip's height; then its segments with their
     * RST markers renumbered, or (no restart markers) none: the strip's
     * coefficients come from the file itself. EOI either way. */
    need = pl->scan + (pl->seq ? 0 : pl->seg_end[e1 - 1] - pl->seg_start[s0]) + 2;
    rc = ip__buf_reserve(&jpg, need, err);
    if (rc)
        return rc;
    memcpy(jpg.data, pl->data, pl->scan);
    jpg.data[pl->sof_height] = (uint8_t)((ye1 - y0) >> 8);
    jpg.data[pl->sof_height + 1] = (uint8_t)(ye1 - y0);
    jpg.len = pl->scan;
    for (uint32_t i = s0; i < e1 && !pl->seq; i++) {
        size_t n = pl->seg_end[i] - pl->seg_start[i];
        memcpy(jpg.data + jpg.len, pl->data + pl->seg_start[i], n);
        jpg.len += n;
        if (i + 1 < e1) {
            jpg.data[jpg.len++] = 0xFF;
            jpg.data[jpg.len++] = (uint8_t)(0xD0 + ((i - s0) & 7));
        }
    }
    jpg.data[jpg.len++] = 0xFF;
    jpg.data[jpg.len++] = 0xD9;
    view = *img;
    view.pixels = img->pixels + (size_t)first * img->stride;
    view.height = last - first;
    if (pl->seq)
        rc = ip__jpeg_decode_seq_rows(jpg.data, jpg.len, &pl->opts, first - y0, &view, pl->seq, &pl->starts[k],
                                      pl->skips[k], e1 == pl->nseg, err);
    else
        rc = ip__jpeg_decode_rows(jpg.data, jpg.len, &pl->opts, first - y0, &view, s1 == pl->nseg, err);
    ip_buf_free(&jpg);
    return rc;
}
