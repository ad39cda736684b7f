/* Progressive Huffman JPEGs decoded one iMCU row at a time, without
 * whole-image coefficient arrays; pixels byte-identical to libjpeg-turbo's.
 *
 * DESIGN
 * - Why: libjpeg decodes a progressive JPEG scan by scan into coefficient
 *   arrays for the whole image (2 bytes per coefficient: as large as the
 *   decoded RGB for 4:2:0, twice that for 4:4:4), and only then makes
 *   pixels. That memory was most of imgpar's excess over the pixels in
 *   flight on JPEG batches, and every scan walks the whole arrays again.
 * - How: all scans are in memory, so each can be read from its own place in
 *   the file. ip__jpeg_prog_open walks the file once (scan headers, tables,
 *   restart intervals, where each scan's entropy-coded data starts and
 *   ends) and makes every check that needs no decoding. Then
 *   ip__jpeg_prog_row(r) decodes iMCU row r of the first scan, of the
 *   second, ... of the last, each scan's reader resuming where it stopped
 *   for row r - 1 (bit position, EOB run, DC predictions, restart count):
 *   the row's coefficients are then final, in a buffer of one iMCU row per
 *   component that stays in cache across the scans. codec_jpeg.c hands
 *   that buffer to libjpeg as its "coefficient arrays" (through its memory
 *   manager's virtual-array methods) and libjpeg's own output pass (IDCT,
 *   upsampling, colour conversion) makes the pixels, asking for the rows in
 *   order. The pixels are libjpeg's, from the same coefficients.
 * - Semantics: the block decoders follow jdphuff.c's decode_mcu_DC_first,
 *   _AC_first, _DC_refine and _AC_refine step by step (same coefficient
 *   values, same int16 wrap-around, same EOB runs, restart handling and
 *   scan-parameter checks). Speed: a 64-bit bit buffer refilled up to 7
 *   bytes at a time when no 0xFF is near, a 10-bit Huffman lookup table
 *   (for AC codes, a second one that gives a coefficient's run and value,
 *   extra bits included, in one lookup), AC scans decoded a block row per
 *   call with the reader's state in registers, and in refinement scans a
 *   per-block mask of the nonzero coefficients: the correction bits of all
 *   the nonzero coefficients up to the next zero (or the end of the band)
 *   are read as one word and put in place by one deposit, the new
 *   coefficient's position is found by one select, and the corrections are
 *   applied once per block, without branches (codec_jpeg_prog_refine.h).
 *   Deposit and select are BMI2's pdep where the CPU has a fast one, else
 *   portable loops over the bits; both builds give the same coefficients.
 * - The rule, as for the PNG fast path: decline (return 1) whenever libjpeg
 *   would do anything but decode cleanly. Any warning libjpeg would give
 *   (bad Huffman code, data running out, lost restart sync, bogus
 *   progression), any error (bad table, bad scan parameters), any marker
 *   other than DHT, DRI, COM, APPn, SOS and EOI after the first scan, extra
 *   bytes before a marker, a coefficient written past the band (which
 *   libjpeg silently puts at position 63), a first scan that is not a DC
 *   scan of every component, and a final state in which libjpeg's output
 *   pass would smooth blocks (a coefficient 0..9 of some component left
 *   incomplete). Open declines before any pixel is made; a row declines
 *   mid-image when its data is bad, and codec_jpeg.c then decodes the whole
 *   file again with libjpeg alone, which gives the usual pixels, warnings
 *   and errors.
 * - Threads: reentrant; one decoder per image, used by one thread.
 *   Memory: one iMCU row of coefficients per component (a 20000-pixel-wide
 *   4:2:0 image: under 1 MiB), 8 bytes per block of it for the masks, and up
 *   to 4 Huffman tables (6.5 KiB each) per scan, at most MAX_SCANS scans.
 * - IMGPAR_JPEG_FAST=0 in the environment (read once) disables it; tests
 *   switch it with ip__jpeg_prog_set_enabled (2: the portable block
 *   decoders even where BMI2 is there). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "codec_jpeg_bits.h"

#if defined(__x86_64__) && defined(__GNUC__) && __has_attribute(target)
#include <immintrin.h>
#define HAVE_BMI2_CLONE 1
#else
#define HAVE_BMI2_CLONE 0
#endif

#define ZZ_BIT(k) (0x8000000000000000ull >> (k))   /* zigzag position k in a block's masks */
#define MAX_SCANS 128   /* more scans than encoders write: such files go to libjpeg */

/* zz_natural by mask bit: zz_by_bit[63 - k] = zz_natural[k]. */
static const uint8_t zz_by_bit[64] = {
    63, 62, 55, 47, 54, 61, 60, 53, 46, 39, 31, 38, 45, 52, 59, 58,
    51, 44, 37, 30, 23, 15, 22, 29, 36, 43, 50, 57, 56, 49, 42, 35,
    28, 21, 14, 7,  6,  13, 20, 27, 34, 41, 48, 40, 33, 26, 19, 12,
    5,  4,  11, 18, 25, 32, 24, 17, 10, 3,  2,  9,  16, 8,  1,  0,
};

/* ---- enable switch ---- */

/* 0 off, 1 on, 2 on but without BMI2 (tests reach the portable code). */
static struct ip__switch fast_switch = {-1, "IMGPAR_JPEG_FAST"};
static atomic_ulong images_done;   /* images whose every row this decoder gave */

void ip__jpeg_prog_set_enabled(int enabled)
{
    ip__switch_set(&fast_switch, enabled >= 0 && enabled <= 2 ? enabled : 1);
}

unsigned long ip__jpeg_prog_images(void)
{
    return atomic_load(&images_done);
}

void ip__jpeg_table_def(struct table_def *d, const JHUFF_TBL *t)
{
    if (!t)
        return;   /* stays undefined */
    memcpy(d->bits, t->bits, sizeof d->bits);
    memcpy(d->vals, t->huffval, sizeof d->vals);
    d->defined = 1;
}

int ip__jpeg_scan_comp(const struct ip__jpeg_prog_frame *f, const int *comps, int i, int id)
{
    int j;

    for (j = 0; j < f->ncomp && f->comp[j].id != id; j++)
        ;
    if (j == f->ncomp)
        return -1;
    for (int m = 0; m < i; m++)
        if (comps[m] == j)
            return -1;
    return j;
}

/* jdhuff.c's jpeg_make_d_derived_tbl, with its checks: -1 where it fails. */
int ip__jpeg_huff_build(struct huff *h, const struct table_def *t, int is_dc)
{
    uint8_t size[257];
    uint32_t code[257], c = 0;
    int p = 0, n, l, i, si;

    if (!t->defined)
        return -1;
    for (l = 1; l <= 16; l++) {
        if (p + t->bits[l] > 256)
            return -1;
        for (i = 0; i < t->bits[l]; i++)
            size[p++] = (uint8_t)l;
    }
    size[p] = 0;
    n = p;
    si = size[0];
    p = 0;
    while (size[p]) {
        while (size[p] == si)
            code[p++] = c++;
        if (c >= (1u << si))
            return -1;
        c <<= 1;
        si++;
    }
    p = 0;
    for (l = 1; l <= 16; l++) {
        if (t->bits[l]) {
            h->valoff[l] = p - (int32_t)code[p];
            p += t->bits[l];
            h->maxcode[l] = (int32_t)code[p - 1];
        } else {
            h->maxcode[l] = -1;
        }
    }
    h->maxcode[17] = 0xFFFFF;
    memcpy(h->vals, t->vals, sizeof h->vals);
    memset(h->lut, 0, sizeof h->lut);
    p = 0;
    for (l = 1; l <= LUT_BITS; l++) {
        for (i = 0; i < t->bits[l]; i++, p++) {
            uint32_t first = code[p] << (LUT_BITS - l), k;

            for (k = 0; k < (1u << (LUT_BITS - l)); k++)
                h->lut[first + k] = (uint16_t)((l << 8) | t->vals[p]);
        }
    }
    if (is_dc) {
        for (i = 0; i < n; i++)
            if (t->vals[i] > 15)
                return -1;
        return 0;
    }
    memset(h->fast_ac, 0, sizeof h->fast_ac);
    p = 0;
    for (l = 1; l <= LUT_BITS; l++) {
        for (i = 0; i < t->bits[l]; i++, p++) {
            int size = t->vals[p] & 15, run = t->vals[p] >> 4;
            uint32_t x, f, free_bits;

            if (size == 0 || l + size > LUT_BITS)
                continue;
            free_bits = (uint32_t)(LUT_BITS - l - size);
            for (x = 0; x < (1u << size); x++)
                for (f = 0; f < (1u << free_bits); f++)
                    h->fast_ac[(code[p] << (LUT_BITS - l)) | (x << free_bits) | f] =
                        (int32_t)((uint32_t)extend(x, size) << 16) | run << 8 | (l + size);
        }
    }
    return 0;
}

/* ---- decoder ---- */

/* One scan: its header, its tables and where its data is, fixed by
 * ip__jpeg_prog_open; then its decoding state, carried from one iMCU row
 * to the next. */
struct scan {
    int ncomp;
    int comp[4];                  /* frame component index of each scan component */
    int Ss, Se, Ah, Al;
    unsigned restart_interval;    /* DRI in force for this scan (0: none) */
    size_t start, end;            /* entropy-coded data: [start, end), end at a marker */
    struct huff *huff[4];         /* per scan component (NULL for DC refinement);
                                   * set once the file is parsed (tables move until then) */
    unsigned has_table;           /* bit i: scan component i has a table */
    /* state */
    struct bits br;
    int64_t last_dc[4];
    unsigned eobrun;
    unsigned togo;                /* MCUs until the next restart marker */
    unsigned next_rst;            /* number of that marker, 0..7 */
    /* A sequential scan (ip__jpeg_prog_open_seq): all of it in one pass. */
    const struct ip__jpeg_seq_scan *seq;
    uint32_t seq_dc[4];           /* DC predictions */
    uint64_t seq_skip;            /* MCUs to pass before the first row */
    int seq_last;                 /* the rows end the scan: the data must end at EOI */
};

struct ip__jpeg_prog {
    struct ip__jpeg_prog_frame f;
    const uint8_t *data;
    size_t len;
    struct scan *scans;
    int nscans, cap;
    struct huff *tables;          /* the scans' tables, 4 per scan */
    uint32_t mcux, mcuy;          /* interleaved scans: MCUs per row, MCU rows (= iMCU rows) */
    uint32_t next_row;            /* the iMCU row after the one in the buffers */
    int (*ac_refine)(struct scan *, JBLOCKROW, uint64_t *, uint32_t);   /* this CPU's refinement decoder */
    JBLOCKROW row_ptrs[4][4];     /* per component, its v block rows in blocks[] */
    unsigned needed;              /* bit c: libjpeg's output reads component c */
    JBLOCK *blocks[4];            /* per component: v rows of cols blocks */
    uint64_t *nz[4];              /* per block of blocks[]: ZZ_BIT(k) set when
                                   * zigzag coefficient k (1..63) is nonzero */
};

static int dc_first(struct scan *sc, int s, JCOEF *blk)
{
    struct bits *b = &sc->br;
    int t;

    if (b->n < 32)
        refill(b);
    t = huff_decode(b, sc->huff[s]);
    if (t < 0)
        return DECLINE;
    if (t)
        sc->last_dc[s] += extend(get_bits(b, t), t);
    if (sc->last_dc[s] > (1 << 30) || sc->last_dc[s] < -(1 << 30))
        return DECLINE;   /* libjpeg fails near INT overflow; well before that, decline */
    blk[0] = (JCOEF)(int)((unsigned)(int)sc->last_dc[s] << sc->Al);
    return 0;
}

static int dc_refine(struct scan *sc, JCOEF *blk)
{
    struct bits *b = &sc->br;

    if (b->n < 1)
        refill(b);
    if (get_bits(b, 1))
        blk[0] = (JCOEF)(blk[0] | (1 << sc->Al));
    return 0;
}

/* nblocks blocks of a first AC scan, in a row (one at a time where restart
 * markers may come between them); the blocks of an EOB run are skipped at
 * once. */
static int ac_first(struct scan *sc, JBLOCKROW blocks, uint64_t *nzs, uint32_t nblocks)
{
    struct bits br = sc->br, *b = &br;
    const struct huff *h = sc->huff[0];
    int Ss = sc->Ss, Se = sc->Se, Al = sc->Al;
    unsigned eobrun = sc->eobrun;
    uint32_t i;

    for (i = 0; i < nblocks; i++) {
        JCOEF *blk;
        uint64_t nz;
        int k;

        if (eobrun) {
            uint32_t skip = nblocks - i < eobrun ? nblocks - i : eobrun;

            eobrun -= skip;
            i += skip - 1;
            continue;
        }
        blk = blocks[i];
        nz = nzs[i];
        for (k = Ss; k <= Se; k++) {
            int r, t;
            int32_t fe;

            if (b->n < 32)
                refill(b);
            fe = h->fast_ac[b->buf >> (64 - LUT_BITS)];
            if (fe) {   /* a nonzero coefficient, code and value in one lookup */
                JCOEF c = (JCOEF)(int)((unsigned)(fe >> 16) << Al);

                b->buf <<= fe & 0xFF;
                b->n -= fe & 0xFF;
                k += (fe >> 8) & 0xFF;
                /* c == 0: value << Al wrapped (libjpeg keeps the 0); such
                 * files are declined, so the mask needs no clearing here. */
                if (k > Se || !c)
                    return DECLINE;
                blk[zz_natural[k]] = c;
                nz |= ZZ_BIT(k);
                continue;
            }
            t = next_symbol(b, h, &r);
            if (t < 0)
                return DECLINE;
            if (t) {
                JCOEF c;

                k += r;
                if (k > Se)
                    return DECLINE;   /* libjpeg would store it at position 63 */
                c = (JCOEF)(int)((unsigned)extend(get_bits(b, t), t) << Al);
                if (!c)
                    return DECLINE;
                blk[zz_natural[k]] = c;
                nz |= ZZ_BIT(k);
            } else if (r == 15) {
                k += 15;   /* ZRL */
            } else {
                eobrun = 1u << r;
                if (r)
                    eobrun += get_bits(b, r);
                eobrun--;   /* this block ends the band now */
                break;
            }
        }
        nzs[i] = nz;
    }
    sc->br = br;
    sc->eobrun = eobrun;
    return 0;
}

static inline int popcount64(uint64_t m)
{
#if defined(__POPCNT__)
    return __builtin_popcountll(m);
#else
    m = m - ((m >> 1) & 0x5555555555555555ull);
    m = (m & 0x3333333333333333ull) + ((m >> 2) & 0x3333333333333333ull);
    m = (m + (m >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (int)((m * 0x0101010101010101ull) >> 56);
#endif
}

/* The low bits of w, lowest first, onto the set bits of m, lowest first
 * (what BMI2's pdep does). */
static inline uint64_t deposit_bits(uint64_t w, uint64_t m)
{
    uint64_t out = 0;

    for (; m; m &= m - 1, w >>= 1)
        out |= (m & -m) & -(w & 1);
    return out;
}

/* m without its r highest set bits (0 when it has at most r). */
static inline uint64_t drop_top_bits(uint64_t m, int r)
{
    for (; r > 0 && m; r--)
        m &= ~(0x8000000000000000ull >> __builtin_clzll(m));
    return m;
}

#define REFINE_NAME ac_refine_any
#define REFINE_TARGET
#define REFINE_POPCOUNT popcount64
#define REFINE_DEPOSIT deposit_bits
#define REFINE_SELECT_TOP drop_top_bits
#include "codec_jpeg_prog_refine.h"
#undef REFINE_NAME
#undef REFINE_TARGET
#undef REFINE_POPCOUNT
#undef REFINE_DEPOSIT
#undef REFINE_SELECT_TOP

#if HAVE_BMI2_CLONE
/* The same with pdep: the r-th highest set bit of m, alone (0 when m has
 * at most r), is the (popcount - 1 - r)-th lowest. */
__attribute__((target("bmi2,popcnt"))) static inline uint64_t select_top_bmi2(uint64_t m, int r)
{
    int n = __builtin_popcountll(m);

    return n > r ? _pdep_u64(1ull << (n - 1 - r), m) : 0;
}

#define REFINE_NAME ac_refine_bmi2
#define REFINE_TARGET __attribute__((target("bmi2,popcnt")))
#define REFINE_POPCOUNT __builtin_popcountll
#define REFINE_DEPOSIT _pdep_u64
#define REFINE_SELECT_TOP select_top_bmi2
#include "codec_jpeg_prog_refine.h"
#undef REFINE_NAME
#undef REFINE_TARGET
#undef REFINE_POPCOUNT
#undef REFINE_DEPOSIT
#undef REFINE_SELECT_TOP
#endif

/* The bits of the segment just decoded are used up to the last byte, which
 * is followed directly by a marker (where the reader stopped, or the next
 * byte). Returns that marker's offset, or 0. */
static size_t segment_end(const struct ip__jpeg_prog *p, const struct bits *b)
{
    if (b->n < b->pad || b->n - b->pad >= 8)
        return 0;   /* the data ran out, or whole bytes are left over */
    if (p->data + p->len - b->p < 2 || b->p[0] != 0xFF)
        return 0;
    return (size_t)(b->p - p->data);
}

/* Per MCU: the restart marker due before it, if any. */
static int restart_check(const struct ip__jpeg_prog *p, struct scan *sc)
{
    size_t at;

    if (!sc->restart_interval)
        return 0;
    if (sc->togo == 0) {
        at = segment_end(p, &sc->br);
        if (!at || p->data[at + 1] != 0xD0 + sc->next_rst)
            return DECLINE;   /* libjpeg would warn (lost sync) or skip bytes */
        sc->next_rst = (sc->next_rst + 1) & 7;
        bits_start(&sc->br, p->data, at + 2, sc->end);
        sc->eobrun = 0;
        memset(sc->last_dc, 0, sizeof sc->last_dc);
        sc->togo = sc->restart_interval;
    }
    sc->togo--;
    return 0;
}

/* Decodes iMCU row `row` of one scan into the row buffers. */
static int scan_row(struct ip__jpeg_prog *p, struct scan *sc, uint32_t row)
{
    const struct ip__jpeg_prog_frame *f = &p->f;
    int dc = sc->Ss == 0, refine = sc->Ah != 0, s;

    if (sc->ncomp > 1) {
        uint32_t mx;

        for (mx = 0; mx < p->mcux; mx++) {
            if (restart_check(p, sc))
                return DECLINE;
            for (s = 0; s < sc->ncomp; s++) {
                int ci = sc->comp[s];
                const struct ip__jpeg_prog_comp *c = &f->comp[ci];
                int x, y;

                for (y = 0; y < c->v; y++) {
                    for (x = 0; x < c->h; x++) {
                        uint32_t bx = mx * (uint32_t)c->h + (uint32_t)x;
                        JCOEF *blk = p->row_ptrs[ci][y][bx];
                        int rc = refine ? dc_refine(sc, blk) : dc_first(sc, s, blk);

                        if (rc)
                            return DECLINE;
                    }
                }
            }
        }
    } else {
        int ci = sc->comp[0];
        const struct ip__jpeg_prog_comp *c = &f->comp[ci];
        uint32_t y, bx, y0 = row * (uint32_t)c->v;
        uint32_t y1 = y0 + (uint32_t)c->v < c->bh ? y0 + (uint32_t)c->v : c->bh;

        for (y = y0; y < y1; y++) {
            JBLOCKROW blocks = p->row_ptrs[ci][y - y0];
            uint64_t *nz = p->nz[ci] + (size_t)(y - y0) * c->cols;

            if (!dc && !sc->restart_interval) {
                /* The bulk of the work: AC scans without restarts, the
                 * block row in one call. */
                if (refine ? p->ac_refine(sc, blocks, nz, c->bw) : ac_first(sc, blocks, nz, c->bw))
                    return DECLINE;
                continue;
            }
            for (bx = 0; bx < c->bw; bx++) {
                int rc;

                if (restart_check(p, sc))
                    return DECLINE;
                if (dc)
                    rc = refine ? dc_refine(sc, blocks[bx]) : dc_first(sc, 0, blocks[bx]);
                else
                    rc = refine ? p->ac_refine(sc, &blocks[bx], &nz[bx], 1) : ac_first(sc, &blocks[bx], &nz[bx], 1);
                if (rc)
                    return DECLINE;
            }
        }
    }
    if (sc->br.n < sc->br.pad)
        return DECLINE;   /* the data ran out: libjpeg would warn */
    if (row + 1 == p->mcuy && segment_end(p, &sc->br) != sc->end)
        return DECLINE;   /* the scan must end exactly at its marker */
    return 0;
}

/* Decodes iMCU row `row` of a sequential scan into the row buffers. */
static int seq_row(struct ip__jpeg_prog *p, struct scan *sc, uint32_t row)
{
    const struct ip__jpeg_seq_scan *q = sc->seq;
    const struct ip__jpeg_prog_frame *f = &p->f;
    struct bits br = sc->br, *b = &br;
    uint32_t *dc = sc->seq_dc;

    for (; sc->seq_skip; sc->seq_skip--)
        if (seq_mcu_skip(b, q, dc, 0))
            return DECLINE;
    if (q->ncomp > 1) {
        for (uint32_t mx = 0; mx < p->mcux; mx++) {
            for (int s = 0; s < q->ncomp; s++) {
                const struct ip__jpeg_prog_comp *c = &f->comp[q->comp[s]];
                JBLOCKARRAY rows = p->row_ptrs[q->comp[s]];
                int keep = p->needed >> q->comp[s] & 1;

                for (int y = 0; y < c->v; y++)
                    for (int x = 0; x < c->h; x++)
                        if (seq_block(b, q->dc[s], q->ac[s], &dc[s],
                                      keep ? rows[y][mx * (uint32_t)c->h + (uint32_t)x] : NULL, 0))
                            return DECLINE;
            }
        }
    } else {
        const struct ip__jpeg_prog_comp *c = &f->comp[q->comp[0]];
        uint32_t y0 = row * (uint32_t)c->v, y1 = y0 + (uint32_t)c->v < c->bh ? y0 + (uint32_t)c->v : c->bh;

        for (uint32_t y = y0; y < y1; y++) {
            JBLOCKROW blocks = p->row_ptrs[q->comp[0]][y - y0];

            for (uint32_t bx = 0; bx < c->bw; bx++)
                if (seq_block(b, q->dc[0], q->ac[0], &dc[0], blocks[bx], 0))
                    return DECLINE;
        }
    }
    sc->br = br;
    if (b->n < b->pad)
        return DECLINE;   /* the data ran out: libjpeg would warn */
    if (row + 1 == p->mcuy && sc->seq_last) {
        if (b->n < 57)
            refill(b);
        if (segment_end(p, b) != q->end)
            return DECLINE;   /* whole bytes left before EOI */
    }
    return 0;
}

int ip__jpeg_prog_row(struct ip__jpeg_prog *p, uint32_t row)
{
    int c, s;

    if (p->next_row && row == p->next_row - 1)
        return 0;   /* in the buffers already */
    if (row != p->next_row || row >= p->mcuy)
        return DECLINE;
    for (c = 0; c < p->f.ncomp; c++) {
        const struct ip__jpeg_prog_comp *pc = &p->f.comp[c];

        if (!(p->needed >> c & 1))
            continue;   /* a sequential scan leaves it alone */
        memset(p->blocks[c], 0, (size_t)pc->v * pc->cols * sizeof(JBLOCK));
        if (!p->scans[0].seq)
            memset(p->nz[c], 0, (size_t)pc->v * pc->cols * sizeof(uint64_t));
    }
    for (s = 0; s < p->nscans; s++)
        if (p->scans[s].seq ? seq_row(p, &p->scans[s], row) : scan_row(p, &p->scans[s], row))
            return DECLINE;
    if (++p->next_row == p->mcuy)
        atomic_fetch_add_explicit(&images_done, 1, memory_order_relaxed);
    return 0;
}

JBLOCKARRAY ip__jpeg_prog_rows(struct ip__jpeg_prog *p, int comp)
{
    return p->row_ptrs[comp];
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Offset of the marker that ends the entropy-coded data starting at pos
 * (RSTn markers are part of it), or len. */
static size_t scan_data_end(const uint8_t *data, size_t len, size_t pos)
{
    for (;;) {
        pos = ip__jpeg_next_marker(data, len, pos);
        if (pos >= len || data[pos + 1] < 0xD0 || data[pos + 1] > 0xD7)
            return pos;
        pos += 2;
    }
}

/* Parse state of ip__jpeg_prog_open: the tables and restart interval in
 * force, and libjpeg's progression bookkeeping. */
struct parse {
    struct table_def dc[NUM_HUFF_TBLS], ac[NUM_HUFF_TBLS];
    unsigned restart_interval;
    int coef_bits[4][64];   /* libjpeg's cinfo->coef_bits: -1 never coded, else Al of the last scan */
};

/* SOS segment body (after the length): libjpeg's get_sos, jdinput's
 * per-scan checks and jdphuff's start_pass checks, where anything libjpeg
 * would fail or warn about declines. Updates coef_bits and builds the
 * scan's tables (huff: room for 4). */
static int parse_sos(const struct ip__jpeg_prog_frame *f, struct parse *ps, struct scan *sc, struct huff *huff,
                     const uint8_t *q, unsigned seglen)
{
    int n = q[0], i, blocks = 0, tsel[4];

    if (seglen != 6u + 2u * (unsigned)n || n < 1 || n > 4)
        return DECLINE;
    memset(sc, 0, sizeof *sc);
    sc->ncomp = n;
    for (i = 0; i < n; i++) {
        sc->comp[i] = ip__jpeg_scan_comp(f, sc->comp, i, q[1 + 2 * i]);
        if (sc->comp[i] < 0)
            return DECLINE;
        tsel[i] = q[2 + 2 * i];
        blocks += f->comp[sc->comp[i]].h * f->comp[sc->comp[i]].v;
    }
    sc->Ss = q[1 + 2 * n];
    sc->Se = q[2 + 2 * n];
    sc->Ah = q[3 + 2 * n] >> 4;
    sc->Al = q[3 + 2 * n] & 15;
    sc->restart_interval = ps->restart_interval;
    if (n > 1 && blocks > 10)
        return DECLINE;
    if (sc->Ss == 0 ? sc->Se != 0 : (sc->Ss > sc->Se || sc->Se > 63 || n != 1))
        return DECLINE;
    if ((sc->Ah != 0 && sc->Al != sc->Ah - 1) || sc->Al > 13)
        return DECLINE;
    for (i = 0; i < n; i++) {
        int *cb = ps->coef_bits[sc->comp[i]], k, dc = sc->Ss == 0, t;

        if (!dc && cb[0] < 0)
            return DECLINE;   /* AC before DC: libjpeg warns */
        for (k = sc->Ss; k <= sc->Se; k++) {
            if (sc->Ah != (cb[k] < 0 ? 0 : cb[k]))
                return DECLINE;   /* JWRN_BOGUS_PROGRESSION */
            cb[k] = sc->Al;
        }
        if (dc && sc->Ah != 0)
            continue;   /* DC refinement uses no table */
        t = dc ? tsel[i] >> 4 : tsel[i] & 15;
        if (t >= NUM_HUFF_TBLS || ip__jpeg_huff_build(&huff[i], dc ? &ps->dc[t] : &ps->ac[t], dc))
            return DECLINE;
        sc->has_table |= 1u << i;
    }
    return 0;
}

/* DHT segment body: libjpeg's get_dht. */
static int parse_dht(struct parse *ps, const uint8_t *q, unsigned seglen)
{
    unsigned left = seglen - 2;

    while (left > 16) {
        unsigned index = q[0], count = 0, i;
        struct table_def *t;

        if ((index & 0x0F) >= NUM_HUFF_TBLS || (index & ~0x1Fu))
            return DECLINE;
        t = index & 0x10 ? &ps->ac[index & 0x0F] : &ps->dc[index & 0x0F];
        t->bits[0] = 0;
        for (i = 1; i <= 16; i++) {
            t->bits[i] = q[i];
            count += q[i];
        }
        left -= 17;
        q += 17;
        if (count > 256 || count > left)
            return DECLINE;
        memset(t->vals, 0, sizeof t->vals);
        memcpy(t->vals, q, count);
        t->defined = 1;
        q += count;
        left -= count;
    }
    return left ? DECLINE : 0;
}

static int add_scan(struct ip__jpeg_prog *p)
{
    if (p->nscans == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        struct scan *s;
        struct huff *h;

        if (cap > MAX_SCANS)
            return DECLINE;
        s = realloc(p->scans, (size_t)cap * sizeof *s);
        if (!s)
            return IP_ENOMEM;
        p->scans = s;
        h = realloc(p->tables, (size_t)cap * 4 * sizeof *h);
        if (!h)
            return IP_ENOMEM;
        p->tables = h;
        p->cap = cap;
    }
    return 0;
}

/* The markers from the one at `at` up to EOI: tables and restart intervals
 * are applied, comments and application data skipped, each scan recorded
 * with the extent of its data. */
static int parse_file(struct ip__jpeg_prog *p, struct parse *ps, size_t at)
{
    for (;;) {
        const uint8_t *q = p->data + at;
        unsigned m, seglen;
        int rc;

        if (p->len - at < 2 || q[0] != 0xFF)
            return DECLINE;
        m = q[1];
        if (m == 0xD9) {
            /* The tables stay where they are now: point the scans at them. */
            for (int i = 0; i < p->nscans; i++)
                for (int k = 0; k < 4; k++)
                    p->scans[i].huff[k] = p->scans[i].has_table >> k & 1 ? p->tables + 4 * i + k : NULL;
            return p->nscans ? 0 : DECLINE;
        }
        if (p->len - at < 4)
            return DECLINE;
        seglen = be16(q + 2);
        if (seglen < 2 || p->len - at - 2 < seglen)
            return DECLINE;
        if (m == 0xDA) {
            struct scan *sc;

            rc = add_scan(p);
            if (rc)
                return rc;
            sc = &p->scans[p->nscans];
            if (seglen < 3 || parse_sos(&p->f, ps, sc, p->tables + 4 * p->nscans, q + 4, seglen))
                return DECLINE;
            sc->start = at + 2 + seglen;
            sc->end = scan_data_end(p->data, p->len, sc->start);
            if (sc->end >= p->len)
                return DECLINE;
            bits_start(&sc->br, p->data, sc->start, sc->end);
            sc->togo = sc->restart_interval;
            p->nscans++;
            at = sc->end;
            continue;
        }
        if (m == 0xC4) {
            if (parse_dht(ps, q + 4, seglen))
                return DECLINE;
        } else if (m == 0xDD) {
            if (seglen != 4)
                return DECLINE;
            ps->restart_interval = be16(q + 4);
        } else if (m != 0xFE && (m & 0xF0) != 0xE0) {
            return DECLINE;   /* DQT, SOF, DNL, RSTn, ...: leave them to libjpeg */
        }
        at += 2 + seglen;
    }
}

/* Finds the SOS segment whose data starts at `scan` (libjpeg stopped there). */
int ip__jpeg_find_sos(const uint8_t *data, size_t scan, size_t *sos)
{
    unsigned n;

    for (n = 1; n <= 4; n++) {
        size_t seglen = 6 + 2 * n;

        if (scan >= seglen + 2 && data[scan - seglen - 2] == 0xFF && data[scan - seglen - 1] == 0xDA &&
            be16(data + scan - seglen) == seglen && data[scan - seglen + 2] == n) {
            *sos = scan - seglen - 2;
            return 0;
        }
    }
    return DECLINE;
}

static int open_file(struct ip__jpeg_prog *p, size_t scan)
{
    const struct ip__jpeg_prog_frame *f = &p->f;
    struct parse *ps;
    size_t sos;
    int c, k, rc;

    ps = calloc(1, sizeof *ps);
    if (!ps)
        return IP_ENOMEM;
    ps->restart_interval = f->restart_interval;
    for (c = 0; c < NUM_HUFF_TBLS; c++) {
        ip__jpeg_table_def(&ps->dc[c], f->dc[c]);
        ip__jpeg_table_def(&ps->ac[c], f->ac[c]);
    }
    for (c = 0; c < f->ncomp; c++)
        memset(ps->coef_bits[c], 0xFF, sizeof ps->coef_bits[c]);   /* -1 */
    rc = ip__jpeg_find_sos(p->data, scan, &sos) ? DECLINE : parse_file(p, ps, sos);
    /* libjpeg decodes the first scan itself before stopping (codec_jpeg.c):
     * it must be a DC first scan of every component, so that libjpeg
     * latches every component's quantisation table then. */
    if (!rc && (p->scans[0].ncomp != f->ncomp || p->scans[0].Ss != 0 || p->scans[0].Ah != 0))
        rc = DECLINE;
    /* libjpeg's output pass smooths blocks when some coefficient 0..9 is
     * not fully coded (jdcoefct.c smoothing_ok); the caller turns that
     * off, so such files go to libjpeg. */
    for (c = 0; !rc && c < f->ncomp; c++)
        for (k = 0; k < 10; k++)
            if (ps->coef_bits[c][k] != 0)
                rc = DECLINE;
    free(ps);
    return rc;
}

/* pdep is one fast instruction on Intel since Haswell and AMD since Zen 3;
 * Zen 1 and 2 run it in microcode, slower than the portable loop. */
static int (*refine_for_cpu(int mode))(struct scan *, JBLOCKROW, uint64_t *, uint32_t)
{
#if HAVE_BMI2_CLONE
    if (mode == 1 && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt") &&
        !__builtin_cpu_is("znver1") && !__builtin_cpu_is("znver2"))
        return ac_refine_bmi2;
#endif
    (void)mode;
    return ac_refine_any;
}

void ip__jpeg_prog_close(struct ip__jpeg_prog *p)
{
    int c;

    if (!p)
        return;
    for (c = 0; c < 4; c++) {
        free(p->blocks[c]);
        free(p->nz[c]);
    }
    free(p->scans);
    free(p->tables);
    free(p);
}

/* A decoder with row buffers for frame f, no scans yet: 0, DECLINE or
 * IP_ENOMEM. */
static int prog_new(const struct ip__jpeg_prog_frame *f, const uint8_t *data, size_t len,
                    struct ip__jpeg_prog **out)
{
    struct ip__jpeg_prog *p;
    int c, y, rc = 0;

    *out = NULL;
    if (!ip__switch_get(&fast_switch) || f->ncomp < 1 || f->ncomp > 4 || f->max_h < 1 || f->max_v < 1)
        return DECLINE;
    p = calloc(1, sizeof *p);
    if (!p)
        return IP_ENOMEM;
    p->f = *f;
    p->needed = 0xF;
    p->ac_refine = refine_for_cpu(ip__switch_get(&fast_switch));
    p->data = data;
    p->len = len;
    p->mcux = (f->width + 8u * (uint32_t)f->max_h - 1) / (8u * (uint32_t)f->max_h);
    p->mcuy = (f->height + 8u * (uint32_t)f->max_v - 1) / (8u * (uint32_t)f->max_v);
    for (c = 0; c < f->ncomp && !rc; c++) {
        const struct ip__jpeg_prog_comp *pc = &f->comp[c];

        /* libjpeg's layout: an interleaved MCU row and v block rows of the
         * component fit the allocated rows. */
        if (pc->h < 1 || pc->v < 1 || pc->v > 4 || (uint64_t)p->mcux * (uint32_t)pc->h > pc->cols ||
            pc->bw > pc->cols || (uint64_t)p->mcuy * (uint32_t)pc->v < pc->bh) {
            rc = DECLINE;
            break;
        }
        p->blocks[c] = malloc((size_t)pc->v * pc->cols * sizeof(JBLOCK));
        p->nz[c] = malloc((size_t)pc->v * pc->cols * sizeof(uint64_t));
        if (!p->blocks[c] || !p->nz[c])
            rc = IP_ENOMEM;
        for (y = 0; y < pc->v && !rc; y++)
            p->row_ptrs[c][y] = p->blocks[c] + (size_t)y * pc->cols;
    }
    if (rc) {
        ip__jpeg_prog_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ip__jpeg_prog_open(const struct ip__jpeg_prog_frame *f, const uint8_t *data, size_t len, size_t scan,
                       struct ip__jpeg_prog **out)
{
    int rc;

    *out = NULL;
    rc = scan < len ? prog_new(f, data, len, out) : DECLINE;
    if (!rc)
        rc = open_file(*out, scan);
    if (rc) {
        ip__jpeg_prog_close(*out);
        *out = NULL;
    }
    return rc;
}

int ip__jpeg_prog_open_seq(const struct ip__jpeg_prog_frame *f, const struct ip__jpeg_seq *s,
                           const struct ip__jpeg_seq_at *from, uint64_t skip, int last, struct ip__jpeg_prog **out)
{
    const struct ip__jpeg_seq_scan *q = ip__jpeg_seq_scan(s);
    struct scan *sc;
    int rc = q->ncomp == f->ncomp ? prog_new(f, q->data, q->len, out) : DECLINE;

    if (!rc)
        rc = add_scan(*out);
    if (rc) {
        ip__jpeg_prog_close(*out);
        *out = NULL;
        return rc;
    }
    sc = &(*out)->scans[0];
    memset(sc, 0, sizeof *sc);
    sc->seq = q;
    bits_at(&sc->br, q->data, from->pos, q->end);
    memcpy(sc->seq_dc, from->dc, sizeof sc->seq_dc);
    sc->seq_skip = skip;
    sc->seq_last = last;
    (*out)->nscans = 1;
    return 0;
}

void ip__jpeg_prog_seq_needed(struct ip__jpeg_prog *p, unsigned mask)
{
    if (p->nscans == 1 && p->scans[0].seq)
        p->needed = mask;
}

int ip__jpeg_prog_enabled(void)
{
    return ip__switch_get(&fast_switch) != 0;
}

size_t ip__jpeg_prog_first_end(const struct ip__jpeg_prog *p)
{
    return p->scans[0].end;
}
