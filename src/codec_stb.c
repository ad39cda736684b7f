/* Decoding with stb_image: BMP, GIF (first frame), PNM, PSD, TGA, HDR
 * (tone-mapped by stb's HDR-to-LDR conversion), and PNG/JPEG when
 * IP_DECODER_STB is chosen.
 *
 * DESIGN
 * - stb_image is compiled into this file only (no stdio, no PIC support so
 *   that the TGA probe cannot mistake arbitrary data for a Softimage file).
 *   Its failure reason is thread-local, and unpremultiply / iPhone
 *   conversion are switched off per thread (the global setters would race),
 *   so any thread may decode concurrently.
 * - The header is read first (stbi_info_from_memory) and the dimensions
 *   checked against the limits before stb allocates any pixels. stb decodes
 *   into its own buffer with the file's own channel layout (req_comp 0, which
 *   keeps gray+tRNS PNGs as gray+alpha like libpng); the pixels are then
 *   copied into the caller's allocation and stb's buffer freed. stb gives
 *   every GIF as RGBA: a first frame without a transparent pixel is copied
 *   as RGB, so an opaque GIF is written without an alpha channel.
 * - 16-bit PNGs are decoded at 16 bits and reduced exactly like libpng's
 *   png_set_scale_16, so both PNG decoders give identical bytes.
 * - Guards below refuse inputs that trip bugs of stb_image 2.27 (Huffman
 *   table overflow, scans decoded with tables never defined, PNM header
 *   numbers that overflow an int, endless loops and uninitialised reads on
 *   damaged HDR).
 *   They run before stb parses anything, stbi_info included: it already
 *   builds JPEG Huffman tables. The TGA probe never lets stb see data it
 *   would take for a JPEG (FF... D8), which those guards have not checked.
 * - A PNG whose chunks do not all fit in the data up to IEND is "truncated
 *   PNG data" before stb sees it (stb would size its IDAT buffer from the
 *   lengths the chunks claim: a memory bomb).
 * - A JPEG whose last scan has no EOI after it is "truncated JPEG data"
 *   (IP_ETRUNC) unless allow_truncated; then, like libjpeg's memory source,
 *   an EOI is appended (to a copy) so that stb finishes the image, and
 *   err->msg holds a warning with code 0; if stb still fails, the error is
 *   the truncation.
 * - stb's failure reasons can quote bytes of the file; they are made
 *   printable, so a message is always one line.
 * - Every buffer stb allocates is zeroed (STBI_MALLOC, STBI_REALLOC_SIZED
 *   below). stb_image 2.27 takes a zlib distance code of 30 or 31, which
 *   deflate does not define (zlib and libpng reject it, stb 2.28 does too),
 *   as distance 0 and copies output bytes it has not written yet: without
 *   the zeroing such a PNG decoded to whatever the heap held (or failed,
 *   depending on it) - a leak of memory into the output and a result
 *   that changed from run to run. Now those bytes are zeros every time. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"

static void *stb_zalloc(size_t n)
{
    return calloc(1, n ? n : 1);
}

static void *stb_zrealloc(void *p, size_t old_size, size_t new_size)
{
    unsigned char *q = realloc(p, new_size ? new_size : 1);

    if (q && new_size > old_size)
        memset(q + old_size, 0, new_size - old_size);
    return q;
}

#define STBI_MALLOC(n) stb_zalloc(n)
#define STBI_REALLOC_SIZED(p, old_size, new_size) stb_zrealloc(p, old_size, new_size)
#define STBI_FREE(p) free(p)
#define STBI_NO_STDIO
#define STBI_NO_PIC
#define STBI_MAX_DIMENSIONS 65535
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* stb_image 2.27 declares this but defines it under another name. */
STBIDEF void stbi_set_unpremultiply_on_load_thread(int flag_true_if_should_unpremultiply)
{
    stbi__unpremultiply_on_load_thread(flag_true_if_should_unpremultiply);
}

int ip__stb_probe(const uint8_t *data, size_t len)
{
    size_t ff = 0;
    int w, h, comp;

    if (len > INT_MAX)
        return 0;
    /* stb_image takes any number of FF bytes and D8 for a JPEG SOI (imgpar's
     * magic is exactly FF D8 FF) and would then parse the JPEG headers with
     * none of the guards below: a DHT with more than 256 codes overflows its
     * tables. No TGA starts like that (its second byte is 0 or 1). */
    while (ff < len && data[ff] == 0xff)
        ff++;
    if (ff > 0 && ff < len && data[ff] == 0xd8)
        return 0;
    return stbi_info_from_memory(data, (int)len, &w, &h, &comp) != 0;
}

static int stb_error(struct ip_error *err, const char *what)
{
    const char *reason = stbi_failure_reason();
    char clean[64];
    size_t i;

    if (reason && strcmp(reason, "outofmem") == 0)
        return ip_error_set(err, IP_ENOMEM, "%s: out of memory", what);
    if (!reason || reason[0] == '\0')
        reason = "corrupt or truncated data";
    /* Some reasons quote bytes of the file (an unknown PNG chunk's type):
     * keep the message printable and on one line. */
    for (i = 0; reason[i] && i + 1 < sizeof clean; i++)
        clean[i] = reason[i] >= 0x20 && reason[i] < 0x7f ? reason[i] : '?';
    clean[i] = '\0';
    return ip_error_set(err, IP_ECORRUPT, "%s: %s", what, clean);
}

/* 1 if the PNG's chunks, from the one after the signature to IEND, each fit
 * in the data; 0 if the data ends first. stb_image would otherwise grow its
 * IDAT buffer to whatever length a chunk claims (a 3 KB file made it
 * allocate 2 GiB) before noticing the data is not there, and would give
 * no reason but "outofdata". */
static int png_chunks_complete(const uint8_t *d, size_t len)
{
    size_t pos = 8;

    while (len - pos >= 12) {
        size_t n = (size_t)d[pos] << 24 | (size_t)d[pos + 1] << 16 | (size_t)d[pos + 2] << 8 | d[pos + 3];

        if (n > len - pos - 12)
            return 0;
        if (memcmp(d + pos + 4, "IEND", 4) == 0)
            return 1;
        pos += 12 + n;
    }
    return 0;
}

/* A complete JPEG ends its last scan (SOS, FF DA) with EOI (FF D9). Entropy
 * data never holds FF DA or FF D9, and markers inside APP segments (EXIF
 * thumbnails) come before the main image's scans, so an image with no EOI
 * after its last SOS was cut short. */
static int jpeg_has_eoi(const uint8_t *data, size_t len)
{
    size_t i, last_sos = 0, last_eoi = 0;
    int seen_eoi = 0;

    for (i = 0; i + 1 < len; i++) {
        if (data[i] != 0xff)
            continue;
        if (data[i + 1] == 0xda)
            last_sos = i;
        else if (data[i + 1] == 0xd9) {
            last_eoi = i;
            seen_eoi = 1;
        }
    }
    return seen_eoi && last_eoi > last_sos;
}

/* ---- Guards for stb_image 2.27 bugs (fixed upstream in 2.28) ----
 * Debian 12 ships stb_image 2.27. Inputs that would make it overflow a
 * table, loop forever or read uninitialised memory are refused here before
 * stb sees them; everything else is left to stb's own checks. */

/* Checks the marker segments the way stb walks them (junk and
 * entropy-coded bytes are scanned one at a time, segments skipped by their
 * length). Returns 0 if stb can take the data, or one of:
 * - JPEG_BAD_DHT: a DHT table whose 16 code counts add up to more than 256
 *   (overflows stb's Huffman tables);
 * - JPEG_NO_TABLE: a scan, before the first EOI, that decodes with a
 *   Huffman table no DHT has defined yet (stb decodes with its
 *   uninitialised table and reads past maxcode[]). Baseline scans use both
 *   tables of each component; progressive DC first scans the DC table,
 *   AC scans the AC table, DC refinement none. */
enum { JPEG_BAD_DHT = 1, JPEG_NO_TABLE = 2 };

static int jpeg_scan_tables_ok(const uint8_t *d, size_t len, size_t pos, int progressive,
                               uint8_t defined[2][4])
{
    size_t p = pos + 4, i, ns;
    unsigned ss, ah;

    if (pos + 5 > len)
        return 1;                   /* stb fails reading the header */
    ns = d[pos + 4];
    if (p + 1 + 2 * ns + 3 > len)
        return 1;
    ss = d[p + 1 + 2 * ns];
    ah = d[p + 1 + 2 * ns + 2] >> 4;
    for (i = 0; i < ns; i++) {
        unsigned td = d[p + 2 + 2 * i] >> 4, ta = d[p + 2 + 2 * i] & 15;
        int need_dc = !progressive || (ss == 0 && ah == 0);
        int need_ac = !progressive || ss != 0;

        if (td > 3 || ta > 3)
            return 1;               /* stb refuses the selector itself */
        if ((need_dc && !defined[0][td]) || (need_ac && !defined[1][ta]))
            return 0;
    }
    return 1;
}

static int jpeg_guard(const uint8_t *d, size_t len)
{
    uint8_t defined[2][4] = {{0}};
    size_t pos = 2;
    int sof = 0, progressive = 0, ended = 0;

    while (pos + 1 < len) {
        uint8_t m;
        size_t seg, end, p;

        if (d[pos] != 0xff) {
            pos++;
            continue;
        }
        m = d[pos + 1];
        if (m == 0xff) {            /* fill byte */
            pos++;
            continue;
        }
        if (m == 0xd9)
            ended = 1;              /* stb decodes nothing after it */
        if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd9)) {
            pos += 2;               /* stuffed byte, TEM, RSTn, SOI, EOI */
            continue;
        }
        if (pos + 4 > len)
            return 0;
        seg = (size_t)d[pos + 2] << 8 | d[pos + 3];
        end = pos + 2 + seg;
        if (!sof && (m == 0xc0 || m == 0xc1 || m == 0xc2)) {
            sof = 1;                /* stb reads the first frame header only */
            progressive = m == 0xc2;
        }
        if (m == 0xda && sof && !ended && !jpeg_scan_tables_ok(d, len, pos, progressive, defined))
            return JPEG_NO_TABLE;
        if (m == 0xc4) {
            /* Like stb: tables while the segment has bytes left, reading
             * 0 past the end of the data. */
            long left = (long)seg - 2;
            for (p = pos + 4; left > 0;) {
                unsigned n = 0, i, q = p < len ? d[p] : 0;
                if (q >> 4 > 1 || (q & 15) > 3)
                    return 0;       /* stb refuses the table class or index */
                for (i = 1; i <= 16; i++)
                    n += p + i < len ? d[p + i] : 0;
                if (n > 256)
                    return JPEG_BAD_DHT;
                defined[q >> 4][q & 15] = 1;
                p += 17 + n;
                left -= 17 + (long)n;
            }
        }
        pos = seg < 2 ? pos + 2 : end;
    }
    return 0;
}

/* A binary PNM header (P5/P6) whose width, height or maxval does not fit
 * an int: stb 2.27 parses the digits into an int without a check (signed
 * overflow). Tokens are read the way stb reads them: whitespace and
 * '#' comments, then digits. Any such number is far beyond every limit, so
 * the file is refused; everything else is left to stb. */
static int pnm_numbers_ok(const uint8_t *d, size_t len)
{
    size_t pos = 2;             /* after the P5/P6 magic that made it a PNM */

    for (int k = 0; k < 3; k++) {
        uint64_t value = 0;

        for (;;) {
            while (pos < len && (d[pos] == ' ' || (d[pos] >= '\t' && d[pos] <= '\r')))
                pos++;
            if (pos >= len || d[pos] != '#')
                break;
            while (pos < len && d[pos] != '\n' && d[pos] != '\r')
                pos++;
        }
        while (pos < len && d[pos] >= '0' && d[pos] <= '9') {
            value = value * 10 + (uint64_t)(d[pos++] - '0');
            if (value > INT_MAX)
                return 0;
        }
    }
    return 1;
}

static size_t next_line(const uint8_t *d, size_t len, size_t pos)
{
    const uint8_t *nl = pos < len ? memchr(d + pos, '\n', len - pos) : NULL;

    return nl ? (size_t)(nl - d) + 1 : len;
}

/* Checks the pixel data of a Radiance file whose header stbi_info accepted
 * (so w and h are valid): returns 1 if stb can decode it or will reject it
 * itself, 0 if it is truncated (stb 2.27 would decode uninitialised bytes
 * or, in a run-length scanline, loop forever at the end of data), -1 for a
 * zero-length literal run (another endless loop). Mirrors stbi__hdr_load. */
static int hdr_pixels_ok(const uint8_t *d, size_t len, int w, int h)
{
    size_t pos = next_line(d, len, 0), start, flat = (size_t)w * (size_t)h * 4;
    int j, k;

    do {                            /* header lines up to an empty one */
        start = pos;
        pos = next_line(d, len, pos);
    } while (pos < len && pos - start != 1);
    pos = next_line(d, len, pos);   /* "-Y h +X w" */
    if (w < 8 || w >= 32768)
        return len - pos >= flat;
    for (j = 0; j < h; j++) {
        if (len - pos < 4)
            return 0;
        if (d[pos] != 2 || d[pos + 1] != 2 || (d[pos + 2] & 0x80))
            return len - pos >= flat;   /* stb restarts reading flat pixels here */
        if (((int)d[pos + 2] << 8 | d[pos + 3]) != w)
            return 1;
        pos += 4;
        for (k = 0; k < 4; k++) {
            int i = 0;
            while (i < w) {
                unsigned count;
                if (pos >= len)
                    return 0;
                count = d[pos++];
                if (count > 128) {
                    count -= 128;
                    if (pos++ >= len)
                        return 0;
                } else {
                    if (count == 0)
                        return -1;
                    if ((int)count <= w - i && len - pos < count)
                        return 0;
                    pos += count;
                }
                if ((int)count > w - i)
                    return 1;
                i += (int)count;
            }
        }
    }
    return 1;
}

static int all_opaque(const stbi_uc *rgba, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (rgba[4 * i + 3] != 255)
            return 0;
    return 1;
}

int ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                   const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err)
{
    const char *what = "stb_image";
    stbi_uc *pixels = NULL;
    stbi_us *pixels16 = NULL;
    uint8_t *patched = NULL;   /* truncated JPEG with an EOI appended */
    int w, h, comp, n = 0, rc, sixteen, truncated = 0, guard, opaque_gif;
    size_t i, count;

    /* Per-thread settings: stored colours as they are, no iPhone BGR swap. */
    stbi_set_unpremultiply_on_load_thread(0);
    stbi_convert_iphone_png_to_rgb_thread(0);
    if (fmt == IP_FORMAT_PNG)
        what = "PNG (stb_image)";
    else if (fmt == IP_FORMAT_JPEG)
        what = "JPEG (stb_image)";
    else if (fmt != IP_FORMAT_UNKNOWN)
        what = ip_format_name(fmt);
    if (len > INT_MAX - 2)
        return ip_error_set(err, IP_ETOOBIG, "%s: input larger than %d bytes", what, INT_MAX - 2);
    /* Before stb reads a header: stbi_info already builds JPEG Huffman
     * tables (and overflows them), and a cut PNG or JPEG gets its reason. */
    if (fmt == IP_FORMAT_PNG && !png_chunks_complete(data, len))
        return ip_error_set(err, IP_ETRUNC, "truncated PNG data");
    if (fmt == IP_FORMAT_PNM && !pnm_numbers_ok(data, len))
        return ip_error_set(err, IP_ECORRUPT, "%s: bad PNM header: a number too large", what);
    if (fmt == IP_FORMAT_JPEG && (guard = jpeg_guard(data, len)) != 0)
        return ip_error_set(err, IP_ECORRUPT, "%s: %s", what,
                            guard == JPEG_BAD_DHT ? "bad DHT header" : "scan uses an undefined Huffman table");
    if (fmt == IP_FORMAT_JPEG && !jpeg_has_eoi(data, len)) {
        if (!opts->allow_truncated)
            return ip_error_set(err, IP_ETRUNC, "truncated JPEG data");
        /* stb_image fails at the end of data where libjpeg's source inserts
         * an EOI; do the same so that it finishes the image. */
        patched = malloc(len + 2);
        if (!patched)
            return ip_error_set(err, IP_ENOMEM, "%s: out of memory", what);
        memcpy(patched, data, len);
        patched[len] = 0xff;
        patched[len + 1] = 0xd9;
        data = patched;
        len += 2;
        truncated = 1;
        /* stb reads the appended EOI as table data too. */
        if (jpeg_guard(data, len) != 0) {
            rc = ip_error_set(err, IP_ETRUNC, "truncated JPEG data");
            goto done;
        }
    }
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp)) {
        /* A cut JPEG (with an EOI appended) that stb cannot read is cut. */
        rc = truncated ? ip_error_set(err, IP_ETRUNC, "truncated JPEG data") : stb_error(err, what);
        goto done;
    }
    if (w <= 0 || h <= 0 || comp < 1 || comp > 4) {
        rc = ip_error_set(err, IP_ECORRUPT, "%s: bad header (%dx%d, %d channels)", what, w, h, comp);
        goto done;
    }
    /* Gray+tRNS PNGs report 1 channel here and decode to 2: check for 4. */
    rc = ip_image_check((uint32_t)w, (uint32_t)h, 4, &opts->limits, NULL, err);
    if (rc)
        goto done;
    if (fmt == IP_FORMAT_HDR) {
        rc = hdr_pixels_ok(data, len, w, h);
        if (rc == 0) {
            rc = ip_error_set(err, IP_ETRUNC, "truncated HDR data");
            goto done;
        }
        if (rc < 0) {
            rc = ip_error_set(err, IP_ECORRUPT, "corrupt HDR data: empty run");
            goto done;
        }
    }

    sixteen = fmt == IP_FORMAT_PNG && stbi_is_16_bit_from_memory(data, (int)len);
    if (sixteen)
        pixels16 = stbi_load_16_from_memory(data, (int)len, &w, &h, &n, 0);
    else
        pixels = stbi_load_from_memory(data, (int)len, &w, &h, &n, 0);
    if (!pixels && !pixels16) {
        rc = truncated ? ip_error_set(err, IP_ETRUNC, "truncated JPEG data") : stb_error(err, what);
        goto done;
    }
    if (n < 1 || n > 4) {
        rc = ip_error_set(err, IP_EUNSUP, "%s: unsupported %d-channel image", what, n);
        goto done;
    }
    /* stb gives every GIF as RGBA; one with no transparent pixel in its
     * first frame is RGB. */
    opaque_gif = fmt == IP_FORMAT_GIF && n == 4 && pixels && all_opaque(pixels, (size_t)w * (size_t)h);
    rc = ip__pixels_alloc(opts, out, (uint32_t)w, (uint32_t)h, opaque_gif ? 3u : (uint32_t)n, err);
    if (rc)
        goto done;
    count = out->stride * out->height;
    if (sixteen) {
        for (i = 0; i < count; i++)
            out->pixels[i] = ip__scale_16_to_8(pixels16[i]);
    } else if (opaque_gif) {
        for (i = 0; i < (size_t)w * (size_t)h; i++)
            memcpy(out->pixels + 3 * i, pixels + 4 * i, 3);
    } else {
        memcpy(out->pixels, pixels, count);
    }
    if (truncated)
        ip_error_set(err, 0, "truncated JPEG data: decoded with the missing part filled in");

done:
    stbi_image_free(pixels);
    stbi_image_free(pixels16);
    free(patched);
    return rc;
}
