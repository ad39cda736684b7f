/* The progressive JPEG fast path (codec_jpeg_prog.c) against libjpeg-turbo
 * decoding alone.
 *
 *   test_jpeg_prog files       progressive JPEGs written here with libjpeg
 *   test_jpeg_prog mutations   damaged and truncated copies of some of them
 *   test_jpeg_prog gray        decoding straight to gray (ip_decode_opts.gray),
 *                              baseline and progressive, whole and by strips
 *
 * Every file is decoded three times through ip_decode: with the fast path
 * using this CPU's block decoders (ip__jpeg_prog_set_enabled(1): BMI2
 * where the CPU has it), with the portable ones (2), and without (0,
 * libjpeg's own progressive decoder). All must give the same result code,
 * the same message and the same pixels, strict, with allow_truncated and
 * luma-only. The files cover
 * gray (also with 2x2 sampling declared), YCbCr with six sampling layouts,
 * RGB and CMYK; sizes from 1x1 to 203x131; qualities 30 to 100; restart
 * intervals of none, 1 and 5 MCUs and one MCU row; libjpeg's standard
 * progression and five scan scripts of our own (spectral selection only,
 * deep successive approximation, bands in an unusual order, DC coded per
 * component, and coefficients left unfinished, which libjpeg smooths: the
 * fast path must decline the last two). "files" also checks that the fast
 * path really decoded every file it should (ip__jpeg_prog_images), so the
 * comparison is not vacuous. "mutations" also sets every byte of the SOS,
 * DHT and DRI headers after the first scan to edge values. */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "imgpar/codec.h"
#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "testutil.h"

/* ---- writing test files with libjpeg ---- */

struct enc_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
};

static void enc_error_exit(j_common_ptr cinfo)
{
    longjmp(((struct enc_err *)cinfo->err)->jmp, 1);
}

enum script {
    SCRIPT_SIMPLE,     /* jpeg_simple_progression */
    SCRIPT_SPECTRAL,   /* DC; each component's AC 1..63; no approximation */
    SCRIPT_DEEP,       /* DC Al 2 then refinements; AC bands at Al 3 refined to 0 */
    SCRIPT_ODD_ORDER,  /* last component first, bands 10-63 before 1-9 */
    SCRIPT_DC_APART,   /* one DC scan per component: declined by the fast path */
    SCRIPT_UNFINISHED, /* the first component's AC left at Al 1, the last one's
                        * 10..63 never sent: libjpeg smooths, the fast path declines */
    SCRIPT_COUNT
};

static int add_scan(jpeg_scan_info *s, int n, int comps, const int *ci, int Ss, int Se, int Ah, int Al)
{
    s[n].comps_in_scan = comps;
    for (int i = 0; i < comps; i++)
        s[n].component_index[i] = ci[i];
    s[n].Ss = Ss;
    s[n].Se = Se;
    s[n].Ah = Ah;
    s[n].Al = Al;
    return n + 1;
}

/* Fills scans for script (ncomp components); returns the count. */
static int make_script(jpeg_scan_info *s, enum script script, int ncomp)
{
    int all[4] = {0, 1, 2, 3}, n = 0, c, al;

    switch (script) {
    case SCRIPT_SPECTRAL:
        n = add_scan(s, n, ncomp, all, 0, 0, 0, 0);
        for (c = 0; c < ncomp; c++)
            n = add_scan(s, n, 1, &all[c], 1, 63, 0, 0);
        break;
    case SCRIPT_DEEP:
        n = add_scan(s, n, ncomp, all, 0, 0, 0, 2);
        for (c = 0; c < ncomp; c++) {
            n = add_scan(s, n, 1, &all[c], 1, 2, 0, 3);
            n = add_scan(s, n, 1, &all[c], 3, 9, 0, 3);
            n = add_scan(s, n, 1, &all[c], 10, 63, 0, 3);
        }
        n = add_scan(s, n, ncomp, all, 0, 0, 2, 1);
        for (al = 2; al >= 0; al--)
            for (c = 0; c < ncomp; c++)
                n = add_scan(s, n, 1, &all[c], 1, 63, al + 1, al);
        n = add_scan(s, n, ncomp, all, 0, 0, 1, 0);
        break;
    case SCRIPT_ODD_ORDER:
        n = add_scan(s, n, ncomp, all, 0, 0, 0, 1);
        for (c = ncomp - 1; c >= 0; c--) {
            n = add_scan(s, n, 1, &all[c], 10, 63, 0, 1);
            n = add_scan(s, n, 1, &all[c], 1, 9, 0, 0);
        }
        n = add_scan(s, n, ncomp, all, 0, 0, 1, 0);
        for (c = 0; c < ncomp; c++)
            n = add_scan(s, n, 1, &all[c], 10, 63, 1, 0);
        break;
    case SCRIPT_DC_APART:
        for (c = 0; c < ncomp; c++)
            n = add_scan(s, n, 1, &all[c], 0, 0, 0, 0);
        for (c = 0; c < ncomp; c++)
            n = add_scan(s, n, 1, &all[c], 1, 63, 0, 0);
        break;
    case SCRIPT_UNFINISHED:
        n = add_scan(s, n, ncomp, all, 0, 0, 0, 0);
        n = add_scan(s, n, 1, &all[0], 1, 63, 0, 1);
        for (c = 1; c < ncomp; c++)
            n = add_scan(s, n, 1, &all[c], 1, c == ncomp - 1 ? 9 : 63, 0, 0);
        break;
    default:
        break;
    }
    return n;
}

struct layout {
    const char *name;
    int ncomp;
    J_COLOR_SPACE in, jpeg;
    int h[4], v[4];
};

static const struct layout layouts[] = {
    {"gray", 1, JCS_GRAYSCALE, JCS_GRAYSCALE, {1}, {1}},
    {"gray22", 1, JCS_GRAYSCALE, JCS_GRAYSCALE, {2}, {2}},
    {"444", 3, JCS_RGB, JCS_YCbCr, {1, 1, 1}, {1, 1, 1}},
    {"422", 3, JCS_RGB, JCS_YCbCr, {2, 1, 1}, {1, 1, 1}},
    {"420", 3, JCS_RGB, JCS_YCbCr, {2, 1, 1}, {2, 1, 1}},
    {"440", 3, JCS_RGB, JCS_YCbCr, {1, 1, 1}, {2, 1, 1}},
    {"411", 3, JCS_RGB, JCS_YCbCr, {4, 1, 1}, {1, 1, 1}},
    {"odd", 3, JCS_RGB, JCS_YCbCr, {2, 1, 2}, {2, 2, 1}},
    {"rgb", 3, JCS_RGB, JCS_RGB, {1, 1, 1}, {1, 1, 1}},
    {"cmyk", 4, JCS_CMYK, JCS_CMYK, {1, 1, 1, 1}, {1, 1, 1, 1}},
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static int pix_flat;   /* make_pixels: rows from this one on are flat gray (0: none) */

/* Photo-like content: gradients, a hard edge, texture and noise. */
static uint8_t *make_pixels(int w, int h, int comps, uint32_t seed)
{
    uint8_t *p = malloc((size_t)w * h * comps);
    uint32_t r = seed * 2654435761u + 1;

    if (!p)
        exit(99);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < comps; c++) {
                int v = (x * (40 + 30 * c)) / (w + 1) + (y * (90 - 20 * c)) / (h + 1) + 60;

                r = r * 1103515245u + 12345u;
                v += (int)((r >> 16) % 41) - 20;
                if ((x / 5 + y / 7 + c) % 3 == 0)
                    v += 50;
                if (x > w / 2 && y < h / 3)
                    v = 255 - v;
                if (pix_flat && y >= pix_flat)
                    v = 128;
                p[((size_t)y * w + x) * comps + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    return p;
}

static int enc_optimize;   /* write_jpeg: optimised Huffman tables */

/* A progressive JPEG of w x h in layout lay (baseline for SCRIPT_COUNT);
 * restart: 0 none, > 0 MCUs, -1 one MCU row. malloc'd; *len its size. */
static uint8_t *write_jpeg(const struct layout *lay, int w, int h, int quality, enum script script, int restart,
                           uint32_t seed, size_t *len)
{
    struct jpeg_compress_struct cinfo;
    struct enc_err jerr;
    jpeg_scan_info scans[64];
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    uint8_t *pix = make_pixels(w, h, lay->ncomp, seed), *copy;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = enc_error_exit;
    if (setjmp(jerr.jmp)) {
        fprintf(stderr, "libjpeg failed to write a test file (%s)\n", lay->name);
        exit(99);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &out_len);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = lay->ncomp;
    cinfo.in_color_space = lay->in;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, lay->jpeg);
    for (int c = 0; c < lay->ncomp; c++) {
        cinfo.comp_info[c].h_samp_factor = lay->h[c];
        cinfo.comp_info[c].v_samp_factor = lay->v[c];
    }
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.optimize_coding = enc_optimize ? TRUE : FALSE;
    if (restart > 0)
        cinfo.restart_interval = (unsigned)restart;
    else if (restart < 0)
        cinfo.restart_in_rows = 1;
    if (script == SCRIPT_SIMPLE) {
        jpeg_simple_progression(&cinfo);
    } else if (script != SCRIPT_COUNT) {   /* SCRIPT_COUNT: baseline */
        cinfo.num_scans = make_script(scans, script, lay->ncomp);
        cinfo.scan_info = scans;
    }
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = pix + (size_t)cinfo.next_scanline * w * lay->ncomp;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(pix);
    copy = malloc(out_len);
    if (!copy)
        exit(99);
    memcpy(copy, out, out_len);
    free(out);
    *len = out_len;
    return copy;
}

/* ---- comparing the two decoders ---- */

struct result {
    int rc;
    struct ip_error err;
    struct ip_image img;
};

/* fast: the mode for ip__jpeg_prog_set_enabled; gray: ip_decode_opts.gray. */
static void decode_with(const uint8_t *data, size_t len, int fast, int truncated_ok, int luma, int gray,
                        struct result *r)
{
    struct ip_decode_opts opts;

    ip_decode_opts_default(&opts);
    opts.allow_truncated = truncated_ok;
    opts.jpeg_luma_only = luma;
    opts.gray = gray;
    memset(r, 0, sizeof *r);
    ip__jpeg_prog_set_enabled(fast);
    r->rc = ip_decode(data, len, &opts, &r->img, NULL, &r->err);
    ip__jpeg_prog_set_enabled(1);
}

static int same_pixels(const struct ip_image *a, const struct ip_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels)
        return 0;
    for (uint32_t y = 0; y < a->height; y++)
        if (memcmp(a->pixels + (size_t)y * a->stride, b->pixels + (size_t)y * b->stride,
                   (size_t)a->width * a->channels) != 0)
            return 0;
    return 1;
}

/* Decodes both ways under each option set; returns how many decodes the
 * fast path completed. */
static unsigned long compare(const char *what, const uint8_t *data, size_t len)
{
    unsigned long before = ip__jpeg_prog_images();

    for (int mode = 0; mode < 3; mode++) {
        struct result slow;

        decode_with(data, len, 0, mode == 1, mode == 2, 0, &slow);
        /* fast 1: this CPU's block decoders (BMI2 where it has it);
         * fast 2: the portable ones. */
        for (int fast_mode = 1; fast_mode <= 2; fast_mode++) {
            struct result fast;

            decode_with(data, len, fast_mode, mode == 1, mode == 2, 0, &fast);
            CHECK(slow.rc == fast.rc, "%s mode %d fast %d: rc %d (libjpeg) vs %d (fast)", what, mode, fast_mode,
                  slow.rc, fast.rc);
            CHECK(slow.err.code == fast.err.code && strcmp(slow.err.msg, fast.err.msg) == 0,
                  "%s mode %d fast %d: message \"%s\" vs \"%s\"", what, mode, fast_mode, slow.err.msg,
                  fast.err.msg);
            if (slow.rc == 0 && fast.rc == 0)
                CHECK(same_pixels(&slow.img, &fast.img), "%s mode %d fast %d: pixels differ", what, mode,
                      fast_mode);
            ip_image_free(&fast.img);
        }
        ip_image_free(&slow.img);
    }
    return ip__jpeg_prog_images() - before;
}

static const int sizes[][2] = {{1, 1}, {8, 8}, {9, 17}, {31, 33}, {67, 45}, {203, 131}};
#define NSIZES (sizeof sizes / sizeof sizes[0])
static const int restarts[] = {0, 1, 5, -1};
static const int qualities[] = {30, 75, 90, 100};

/* A hand-made progressive 8x8 gray JPEG: DC, AC 1..63 at Al 1 (one
 * coefficient), then a refinement scan that places one new coefficient
 * with a symbol of the given size, followed by `bits` value bits, then
 * corrects the old coefficient and ends the band. Encoders only write size
 * 1 with 1 bit. For size 2 libjpeg warns and reads one bit: with bits 1 it
 * stays in step (the only difference is the warning), with bits 2 only a
 * decoder that reads 2 bits does. Returns the length (data: 256 bytes). */
static size_t refine_size_file(int size, int bits, uint8_t *data)
{
    static const uint8_t soi_dqt[] = {0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00};   /* then 64 ones */
    static const uint8_t first[] = {
        0xFF, 0xC2, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,   /* SOF2 */
        0xFF, 0xC4, 0x00, 0x14, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,   /* DC: '0' = 0 */
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x7F, /* DC scan: diff 0 */
        0xFF, 0xC4, 0x00, 0x15, 0x10, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x3F, 0x01,       /* AC 1..63, Al 1 */
        0x6F,                                                             /* '0' '1' (+1 at k 1), EOB '10' */
    };
    const uint8_t refine[] = {
        0xFF, 0xC4, 0x00, 0x15, 0x11, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)size, 0x00,
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x01, 0x01, 0x3F, 0x10,   /* refine 1..63, Ah 1, Al 0 */
        /* '0', the value bits ('1' or '11'), the correction of k 1 ('0'), EOB '10' */
        bits == 1 ? 0x57 : 0x6B,
        0xFF, 0xD9,
    };
    size_t n = 0;

    memcpy(data + n, soi_dqt, sizeof soi_dqt);
    n += sizeof soi_dqt;
    memset(data + n, 1, 64);
    n += 64;
    memcpy(data + n, first, sizeof first);
    n += sizeof first;
    memcpy(data + n, refine, sizeof refine);
    n += sizeof refine;
    return n;
}

static int run_files(void)
{
    unsigned n = 0;

    for (size_t l = 0; l < NLAYOUTS; l++) {
        for (int script = 0; script < SCRIPT_COUNT; script++) {
            for (size_t s = 0; s < NSIZES; s++, n++) {
                int restart = restarts[n % 4], quality = qualities[(n / 4) % 4];
                char what[160];
                size_t len;
                uint8_t *jpg = write_jpeg(&layouts[l], sizes[s][0], sizes[s][1], quality, (enum script)script,
                                          restart, n, &len);
                unsigned long fast;

                snprintf(what, sizeof what, "%s script %d %dx%d q%d restart %d", layouts[l].name, script,
                         sizes[s][0], sizes[s][1], quality, restart);
                fast = compare(what, jpg, len);
                /* Three modes, two block decoders: every clean file goes the fast way,
                 * files with DC coded per component never do. */
                if ((script == SCRIPT_DC_APART && layouts[l].ncomp > 1) || script == SCRIPT_UNFINISHED)
                    CHECK(fast == 0, "%s: the fast path took a file it must decline", what);
                else
                    CHECK(fast == 6, "%s: the fast path decoded %lu of 6", what, fast);
                free(jpg);
            }
        }
    }
    /* A new coefficient of size 2 in a refinement scan: declined (libjpeg
     * warns and reads one bit), whether 1 or 2 bits follow; the same file
     * with size 1 is clean. */
    for (int v = 0; v < 3; v++) {
        int size = v == 0 ? 1 : 2, bits = v == 2 ? 2 : 1;
        uint8_t data[256];
        size_t len = refine_size_file(size, bits, data);
        char what[64];
        unsigned long fast;

        snprintf(what, sizeof what, "refinement symbol of size %d with %d bit(s)", size, bits);
        fast = compare(what, data, len);
        CHECK(fast == (size == 1 ? 6u : 0u), "%s: the fast path decoded %lu of 6", what, fast);
        n++;
    }
    printf("%u files compared\n", n);
    return test_finish("jpeg_prog_files");
}

/* The marker after the entropy-coded data from pos. */
static size_t scan_end(const uint8_t *d, size_t len, size_t pos)
{
    while (pos + 1 < len && !(d[pos] == 0xFF && d[pos + 1] != 0 && (d[pos + 1] < 0xD0 || d[pos + 1] > 0xD7)))
        pos++;
    return pos;
}

/* The marker after the first scan's data. */
static size_t first_scan_end(const uint8_t *d, size_t len)
{
    size_t at = 2;

    while (at + 4 <= len && d[at] == 0xFF && d[at + 1] != 0xDA)
        at += 2 + ((size_t)d[at + 2] << 8 | d[at + 3]);
    if (at + 4 > len)
        exit(99);
    return scan_end(d, len, at + 2 + ((size_t)d[at + 2] << 8 | d[at + 3]));
}

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static int run_mutations(void)
{
    static const struct {
        int layout, script, w, h, restart;
    } bases[] = {
        {4, SCRIPT_SIMPLE, 67, 45, 0},  {3, SCRIPT_SIMPLE, 31, 33, 1}, {0, SCRIPT_DEEP, 67, 45, 5},
        {2, SCRIPT_ODD_ORDER, 31, 33, -1}, {9, SCRIPT_SPECTRAL, 9, 17, 0}, {7, SCRIPT_DEEP, 31, 33, 1},
        {4, SCRIPT_UNFINISHED, 31, 33, 0}, {1, SCRIPT_SIMPLE, 31, 33, 2},
    };
    unsigned long fast_total = 0, cases = 0;

    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        size_t len;
        uint8_t *jpg = write_jpeg(&layouts[bases[b].layout], bases[b].w, bases[b].h, 90,
                                  (enum script)bases[b].script, bases[b].restart, (uint32_t)b, &len);
        uint8_t *m = malloc(len);
        char what[96];

        if (!m)
            exit(99);
        /* Every truncation point. */
        for (size_t cut = 2; cut < len; cut++) {
            snprintf(what, sizeof what, "base %zu cut at %zu", b, cut);
            fast_total += compare(what, jpg, cut);
            cases++;
        }
        /* Random damage: 1 to 4 bytes changed anywhere, or in the scan data. */
        for (int i = 0; i < 400; i++) {
            int k, nbytes = 1 + (int)(rng() % 4);

            memcpy(m, jpg, len);
            for (k = 0; k < nbytes; k++) {
                size_t at = i % 2 ? len / 3 + rng() % (len - len / 3) : rng() % len;

                m[at] = (uint8_t)(rng() % 5 == 0 ? 0xFF : rng());
            }
            snprintf(what, sizeof what, "base %zu damage %d", b, i);
            fast_total += compare(what, m, len);
            cases++;
        }
        /* Every byte of every SOS, DHT and DRI segment after the first
         * scan set to values near the edges of what is allowed: scan
         * parameters, progression, table selectors, code counts. */
        for (size_t at = first_scan_end(jpg, len); at + 4 <= len && jpg[at] == 0xFF && jpg[at + 1] != 0xD9;) {
            size_t seglen = (size_t)jpg[at + 2] << 8 | jpg[at + 3], end = at + 2 + seglen, k;
            static const uint8_t vals[] = {0, 1, 2, 3, 4, 5, 9, 0x10, 0x11, 0x12, 0x21, 0x31, 13, 14, 62, 63, 64, 255};

            if (jpg[at + 1] == 0xDA || jpg[at + 1] == 0xC4 || jpg[at + 1] == 0xDD) {
                for (k = at + 4; k < end && k < at + 4 + 20; k++) {
                    for (size_t v = 0; v < sizeof vals; v++) {
                        if (vals[v] == jpg[k])
                            continue;
                        memcpy(m, jpg, len);
                        m[k] = vals[v];
                        snprintf(what, sizeof what, "base %zu byte %zu = %u", b, k, vals[v]);
                        fast_total += compare(what, m, len);
                        cases++;
                    }
                }
            }
            at = jpg[at + 1] == 0xDA ? scan_end(jpg, len, end) : end;
        }
        free(m);
        free(jpg);
    }
    printf("%lu damaged or truncated files compared; the fast path finished %lu decodes\n", cases,
           fast_total);
    /* Damage that leaves the file decodable and clean (in ignored bytes, or
     * turning one valid code into another) keeps the fast path in use. */
    CHECK(fast_total > 0, "the fast path never finished a damaged file");
    return test_finish("jpeg_prog_mutations");
}

/* ---- decoding straight to gray (ip_decode_opts.gray) ---- */

/* The gray filter's definition (filter_gray.c's DESIGN), written out here. */
static uint8_t gray_of(const uint8_t *rgb, int weights)
{
    unsigned r = rgb[0], g = rgb[1], b = rgb[2];

    return (uint8_t)(weights == 709 ? (2126 * r + 7152 * g + 722 * b + 5000) / 10000
                                    : (299 * r + 587 * g + 114 * b + 500) / 1000);
}

/* The strip decoder (codec_jpeg_strips.c) with gray: 1 when it planned
 * strips, whose pixels must then be the whole decode's. */
static int strips_match(const char *what, const uint8_t *jpg, size_t len, int gray,
                        const struct ip_image *whole)
{
    struct ip_decode_opts opts;
    struct ip__jpeg_plan *plan;
    struct ip_image img;
    struct ip_error err;
    size_t saved = ip__png_strip_min;

    ip_decode_opts_default(&opts);
    opts.gray = gray;
    ip__png_strip_min = 0;   /* plan even small files */
    plan = ip__jpeg_plan_strips(jpg, len, &opts);
    ip__png_strip_min = saved;
    if (plan && ip__jpeg_plan_prepare(plan) != 0) {
        ip__jpeg_plan_free(plan);
        plan = NULL;
    }
    if (!plan)
        return 0;
    img = ip__jpeg_plan_shape(plan);
    img.stride = (size_t)img.width * img.channels;
    img.pixels = malloc(img.stride * img.height);
    if (!img.pixels)
        exit(99);
    for (uint32_t k = 0; k < ip__jpeg_plan_count(plan); k++)
        CHECK(ip__jpeg_plan_decode(plan, k, &img, &err) == 0, "%s gray %d: strip %u: %s", what, gray, k,
              err.msg);
    CHECK(same_pixels(&img, whole), "%s gray %d: strips differ from the whole decode", what, gray);
    free(img.pixels);
    ip__jpeg_plan_free(plan);
    return 1;
}

/* Every layout (gray, YCbCr in six samplings, RGB, CMYK), baseline and
 * progressive (fast path on and off), with and without restart markers:
 * decoding with gray = 601 or 709 gives 1 channel equal to the formula
 * applied to the RGB decode (gray files: their one channel), the strip
 * decoder agrees, luma-only takes precedence, and other weights fail. */
static int run_gray(void)
{
    static const enum script scripts[] = {SCRIPT_COUNT, SCRIPT_SIMPLE, SCRIPT_DEEP};
    unsigned n = 0, planned = 0;

    for (size_t l = 0; l < NLAYOUTS; l++) {
        for (size_t si = 0; si < sizeof scripts / sizeof scripts[0]; si++) {
            for (size_t s = 0; s < NSIZES; s++, n++) {
                int restart = s % 2 ? -1 : 0;
                size_t len;
                uint8_t *jpg = write_jpeg(&layouts[l], sizes[s][0], sizes[s][1], 85, scripts[si], restart, n, &len);
                struct result rgb, gray, luma, luma_gray, bad;
                char what[128];

                snprintf(what, sizeof what, "%s %s %dx%d restart %d", layouts[l].name,
                         scripts[si] == SCRIPT_COUNT ? "baseline" : "progressive", sizes[s][0], sizes[s][1],
                         restart);
                decode_with(jpg, len, 1, 0, 0, 0, &rgb);
                CHECK(rgb.rc == 0, "%s: %s", what, rgb.err.msg);
                for (int w = 0; w < 2; w++) {
                    int weights = w ? 709 : 601;

                    for (int fast = 0; fast <= 1; fast++) {
                        const struct ip_image *c = &rgb.img, *g = &gray.img;

                        decode_with(jpg, len, fast, 0, 0, weights, &gray);
                        CHECK(gray.rc == 0, "%s gray %d: %s", what, weights, gray.err.msg);
                        CHECK(g->channels == 1 && g->width == c->width && g->height == c->height,
                              "%s gray %d: %ux%ux%u", what, weights, g->width, g->height, g->channels);
                        for (uint32_t y = 0; y < c->height && g->channels == 1; y++) {
                            const uint8_t *in = c->pixels + (size_t)y * c->stride;
                            const uint8_t *out = g->pixels + (size_t)y * g->stride;
                            uint32_t x;

                            for (x = 0; x < c->width; x++)
                                if (out[x] != (c->channels == 1 ? in[x] : gray_of(in + 3 * x, weights)))
                                    break;
                            CHECK(x == c->width, "%s gray %d fast %d: pixel (%u, %u) is %u", what, weights,
                                  fast, x, y, x < c->width ? out[x] : 0);
                        }
                        if (!fast)
                            planned += (unsigned)strips_match(what, jpg, len, weights, g);
                        ip_image_free(&gray.img);
                    }
                }
                if (layouts[l].jpeg == JCS_YCbCr || layouts[l].jpeg == JCS_GRAYSCALE) {
                    decode_with(jpg, len, 1, 0, 1, 0, &luma);
                    decode_with(jpg, len, 1, 0, 1, 601, &luma_gray);
                    CHECK(luma.rc == 0, "%s luma: %s", what, luma.err.msg);
                    CHECK(luma_gray.rc == 0, "%s luma+gray: %s", what, luma_gray.err.msg);
                    CHECK(same_pixels(&luma.img, &luma_gray.img), "%s: luma-only did not take precedence", what);
                    ip_image_free(&luma.img);
                    ip_image_free(&luma_gray.img);
                }
                decode_with(jpg, len, 1, 0, 0, 600, &bad);
                CHECK(bad.rc == IP_EINVAL, "%s: gray weights 600 accepted", what);
                ip_image_free(&bad.img);
                ip_image_free(&rgb.img);
                free(jpg);
            }
        }
    }
    printf("%u files decoded to gray; the strip decoder planned %u of them (x2 weights)\n", n, planned / 2);
    /* Baseline files with one MCU row per restart segment: every one of
     * those with more than one segment is planned. */
    CHECK(planned > 0, "the strip decoder never planned a file: the strip check is vacuous");
    return test_finish("jpeg_gray");
}

/* ---- sequential JPEGs without restart markers, by strips ---- */

/* The strips of a sequential JPEG without restart markers, found by
 * speculative decoding in chunks of `chunk` bytes (codec_jpeg_seq.c):
 * 0 when they were planned and decoded (in reverse order) to exactly
 * ip_decode's pixels with the fast paths off (libjpeg alone); 1 when no
 * plan; 2 when the plan failed (prepare or a strip). Mismatches fail. */
static int seq_strips(const char *what, const uint8_t *jpg, size_t len, size_t chunk, int luma, int gray)
{
    struct ip_decode_opts opts;
    struct ip__jpeg_plan *plan;
    struct result whole;
    struct ip_image img;
    struct ip_error err;
    size_t saved = ip__png_strip_min, saved_chunk = ip__jpeg_seq_chunk;
    int rc = 0;

    ip_decode_opts_default(&opts);
    opts.jpeg_luma_only = luma;
    opts.gray = gray;
    ip__png_strip_min = 0;
    ip__jpeg_seq_chunk = chunk;
    plan = ip__jpeg_plan_strips(jpg, len, &opts);
    ip__png_strip_min = saved;
    if (!plan) {
        ip__jpeg_seq_chunk = saved_chunk;
        return 1;
    }
    rc = ip__jpeg_plan_prepare(plan) ? 2 : 0;
    ip__jpeg_seq_chunk = saved_chunk;
    decode_with(jpg, len, 0, 0, luma, gray, &whole);
    img = ip__jpeg_plan_shape(plan);
    img.stride = (size_t)img.width * img.channels;
    img.pixels = malloc(img.stride * img.height + 1);
    if (!img.pixels)
        exit(99);
    for (uint32_t k = ip__jpeg_plan_count(plan); k-- > 0 && rc == 0;)
        if (ip__jpeg_plan_decode(plan, k, &img, &err) != 0)
            rc = 2;
    if (rc == 0) {
        CHECK(whole.rc == 0, "%s: strips decoded a file that ip_decode fails: %s", what, whole.err.msg);
        CHECK(whole.rc != 0 || same_pixels(&img, &whole.img), "%s: strips differ from the whole decode", what);
    }
    free(img.pixels);
    ip_image_free(&whole.img);
    ip__jpeg_plan_free(plan);
    return rc;
}

/* Baseline files without restart markers: every layout with one or three
 * components, sizes up to 1000x333, qualities 30 to 100, standard and
 * optimised Huffman tables, chunks of 64 bytes to 64 KiB, RGB, luma-only
 * and gray output: each is planned and its strips give libjpeg's pixels.
 * Then damaged and truncated copies: the strips never give pixels where
 * ip_decode fails or differs. */
static int run_seq(void)
{
    static const int seq_sizes[][2] = {{16, 16}, {67, 45}, {203, 131}, {640, 480}, {1000, 333}};
    static const size_t chunks[] = {4096, 65536};
    unsigned files = 0, planned = 0, failed = 0, damaged = 0, damaged_ok = 0;

    for (size_t l = 0; l < NLAYOUTS; l++) {
        if (layouts[l].ncomp == 4)
            continue;   /* CMYK: no plan (see codec_jpeg_strips.c) */
        for (size_t s = 0; s < sizeof seq_sizes / sizeof seq_sizes[0]; s++) {
            for (int opt = 0; opt <= 1; opt++, files++) {
                int q = qualities[(s + (size_t)opt) % 4];
                size_t len;
                uint8_t *jpg;
                char what[160];

                enc_optimize = opt;
                jpg = write_jpeg(&layouts[l], seq_sizes[s][0], seq_sizes[s][1], q, SCRIPT_COUNT, 0,
                                 (uint32_t)(files + 7), &len);
                enc_optimize = 0;
                for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                    for (int out = 0; out < 3; out++) {
                        int luma = out == 1 && layouts[l].jpeg != JCS_RGB, gray = out == 2 ? 601 : 0, rc;

                        snprintf(what, sizeof what, "%s %dx%d q%d%s chunk %zu out %d", layouts[l].name,
                                 seq_sizes[s][0], seq_sizes[s][1], q, opt ? " optimised" : "", chunks[c], out);
                        rc = seq_strips(what, jpg, len, chunks[c], luma, gray);
                        CHECK(rc != 1 || s == 0, "%s: no plan", what);   /* 16x16: one MCU row */
                        planned += rc == 0;
                        failed += rc == 2;
                        if (rc == 2)
                            printf("not planned: %s\n", what);
                    }
                }
                if (s == 2 || s == 3) {
                    uint8_t *m = malloc(len);

                    if (!m)
                        exit(99);
                    for (int i = 0; i < 24; i++) {
                        size_t cut = len / 2 + rng() % (len / 2);

                        memcpy(m, jpg, len);
                        if (i % 3 == 0) {
                            snprintf(what, sizeof what, "%s %dx%d cut at %zu", layouts[l].name, seq_sizes[s][0],
                                     seq_sizes[s][1], cut);
                            damaged_ok += seq_strips(what, m, cut, 4096, 0, 0) == 0;
                        } else {
                            for (int k = 0; k < 1 + i % 4; k++)
                                m[len / 4 + rng() % (len - len / 4 - 2)] = (uint8_t)(i % 5 == 0 ? 0xFF : rng());
                            snprintf(what, sizeof what, "%s %dx%d damage %d", layouts[l].name, seq_sizes[s][0],
                                     seq_sizes[s][1], i);
                            damaged_ok += seq_strips(what, m, len, 4096, i % 2, 0) == 0;
                        }
                        damaged++;
                    }
                    free(m);
                }
                free(jpg);
            }
        }
    }
    /* Flat bottoms: a gray file's last blocks then take 6 bits each, so the
     * bits after the last MCU but one can be under 8 (the scan's end must
     * still be found). Eight heights give every padding length. */
    for (int h = 200; h < 208; h++, files++) {
        for (int l = 0; l < 5; l += 4) {   /* gray, 420 */
            size_t len;
            uint8_t *jpg;
            char what[96];
            int rc;

            pix_flat = h / 2;
            jpg = write_jpeg(&layouts[l], 300, h, 75, SCRIPT_COUNT, 0, (uint32_t)h, &len);
            pix_flat = 0;
            snprintf(what, sizeof what, "%s 300x%d flat bottom", layouts[l].name, h);
            rc = seq_strips(what, jpg, len, 4096, 0, 0);
            CHECK(rc == 0, "%s: strips not decoded (%d)", what, rc);
            planned += rc == 0;
            free(jpg);
        }
    }
    printf("%u files, %u strip decodes, %u declined; %u damaged copies, %u decoded by strips\n", files, planned,
           failed, damaged, damaged_ok);
    CHECK(failed == 0, "%u strip decodes of intact files declined", failed);
    CHECK(planned > 0, "no file was decoded by strips");
    return test_finish("jpeg_seq_strips");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "files") == 0)
        return run_files();
    if (argc == 2 && strcmp(argv[1], "mutations") == 0)
        return run_mutations();
    if (argc == 2 && strcmp(argv[1], "gray") == 0)
        return run_gray();
    if (argc == 2 && strcmp(argv[1], "seq") == 0)
        return run_seq();
    fprintf(stderr, "usage: test_jpeg_prog files|mutations|gray|seq\n");
    return 2;
}
