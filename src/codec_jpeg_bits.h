/* The bit reader and Huffman tables shared by the JPEG entropy decoders
 * (codec_jpeg_prog.c: progressive scans, one iMCU row at a time;
 * codec_jpeg_seq.c: where a sequential scan's strips start). Include
 * after <jpeglib.h>. */
#ifndef IMGPAR_CODEC_JPEG_BITS_H
#define IMGPAR_CODEC_JPEG_BITS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"

#define DECLINE 1   /* leave the file to libjpeg */
#define LUT_BITS 10

/* Zigzag index to natural order (jpeg_natural_order). Callers never index
 * past 63. */
static const uint8_t zz_natural[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

/* ---- bit reader ---- */

/* Entropy-coded data, MSB first, with 0xFF 0x00 read as 0xFF. At a marker
 * (0xFF then anything but 0x00) or the end of the data it stops, leaves p
 * at the marker and feeds zero bits, counted in pad: if the decoder ever
 * consumes them (n < pad), the data ran out where libjpeg would warn. */
struct bits {
    const uint8_t *p, *end;   /* next byte to load; end of the data */
    uint64_t buf;             /* bits, MSB-aligned */
    int n;                    /* bits in buf, data and padding */
    int pad;                  /* zero bits appended after the data stopped */
};

static inline void refill_slow(struct bits *b)
{
    while (b->n <= 56) {
        unsigned c = 0;
        int data = 0;

        if (b->pad == 0 && b->p < b->end) {
            c = *b->p;
            if (c != 0xFF) {
                b->p++;
                data = 1;
            } else if (b->end - b->p >= 2 && b->p[1] == 0x00) {
                b->p += 2;
                data = 1;
            }
        }
        if (!data) {   /* a marker or the end: stop before it */
            c = 0;
            if (b->pad < (1 << 20))
                b->pad += 8;   /* saturates: once over 64 it stays over n */
        }
        b->buf |= (uint64_t)c << (56 - b->n);
        b->n += 8;
    }
}

/* Leaves at least 57 bits in the buffer. */
static inline void refill(struct bits *b)
{
    if (b->pad == 0 && b->end - b->p >= 8) {
        uint64_t w = __builtin_bswap64(ip__le64(b->p)), x = ~w;   /* big-endian */

        if (!((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull)) {   /* no 0xFF byte */
            int take = (64 - b->n) >> 3;

            b->buf |= (w >> (64 - 8 * take)) << (64 - 8 * take - b->n);
            b->p += take;
            b->n += 8 * take;
            return;
        }
    }
    refill_slow(b);
}

/* 1 <= k <= 63: refills as needed. */
static inline uint64_t get_bits_long(struct bits *b, int k)
{
    uint64_t v = 0;

    if (k > 56) {
        if (b->n < 32)
            refill(b);
        v = (uint64_t)(b->buf >> 32) << (k - 32);
        b->buf <<= 32;
        b->n -= 32;
        k -= 32;
    }
    if (b->n < k)
        refill(b);
    v |= b->buf >> (64 - k);
    b->buf <<= k;
    b->n -= k;
    return v;
}

/* 1 <= k <= 32, k <= b->n. */
static inline uint32_t get_bits(struct bits *b, int k)
{
    uint32_t v = (uint32_t)(b->buf >> (64 - k));

    b->buf <<= k;
    b->n -= k;
    return v;
}

/* libjpeg's HUFF_EXTEND: the s-bit value r as a signed coefficient. */
static inline int extend(uint32_t r, int s)
{
    return r < (1u << (s - 1)) ? (int)r - (1 << s) + 1 : (int)r;
}

/* ---- Huffman tables ---- */

struct table_def {
    uint8_t bits[17];    /* codes of each length 1..16 */
    uint8_t vals[256];
    int defined;
};

struct huff {
    uint16_t lut[1 << LUT_BITS];   /* (length << 8) | symbol for codes of at most
                                    * LUT_BITS bits, by their first LUT_BITS bits;
                                    * 0: a longer code (or none) */
    int32_t fast_ac[1 << LUT_BITS];   /* AC tables: for a code and its extra bits
                                       * within LUT_BITS, (value << 16) | (run << 8)
                                       * | bits used; 0: decode the long way */
    int32_t maxcode[18];           /* largest code of each length, -1 if none */
    int32_t valoff[17];            /* symbol of code c of length l: vals[c + valoff[l]] */
    uint8_t vals[256];
};

/* jdhuff.c's jpeg_make_d_derived_tbl, with its checks: -1 where it fails. */
int ip__jpeg_huff_build(struct huff *h, const struct table_def *t, int is_dc);
/* A table libjpeg read (NULL: not defined) copied into d, which starts zeroed. */
void ip__jpeg_table_def(struct table_def *d, const JHUFF_TBL *t);
/* The frame component of scan component i, whose SOS identifier is id:
 * -1 when no frame component has it or scan components 0..i-1 (comps)
 * already named it (libjpeg's get_sos checks). */
int ip__jpeg_scan_comp(const struct ip__jpeg_prog_frame *f, const int *comps, int i, int id);

/* The next symbol; -1 for a code libjpeg calls corrupt. Needs b->n >= 16. */
static inline int huff_decode(struct bits *b, const struct huff *h)
{
    unsigned e = h->lut[b->buf >> (64 - LUT_BITS)];
    int l;

    if (e) {
        b->buf <<= e >> 8;
        b->n -= (int)(e >> 8);
        return (int)(e & 0xFF);
    }
    for (l = LUT_BITS + 1; l <= 16; l++) {
        int32_t c = (int32_t)(b->buf >> (64 - l));

        if (c <= h->maxcode[l]) {
            b->buf <<= l;
            b->n -= l;
            return h->vals[c + h->valoff[l]];
        }
    }
    return -1;
}

/* An AC symbol: returns its size (the low 4 bits) and puts its run in *r;
 * -1 for a bad code. */
static inline int next_symbol(struct bits *b, const struct huff *h, int *r)
{
    int rs;

    if (b->n < 32)
        refill(b);
    rs = huff_decode(b, h);
    *r = rs >> 4;
    return rs < 0 ? -1 : rs & 15;
}

static inline void bits_start(struct bits *b, const uint8_t *data, size_t pos, size_t end)
{
    memset(b, 0, sizeof *b);
    b->p = data + pos;
    b->end = data + end;
}

/* A reader at bit `bit` of data (8 * byte + bit in it, MSB first). */
static inline void bits_at(struct bits *b, const uint8_t *data, uint64_t bit, size_t end)
{
    bits_start(b, data, (size_t)(bit >> 3), end);
    if (bit & 7) {
        refill(b);
        get_bits(b, (int)(bit & 7));
    }
}

/* ---- sequential scans ---- */

/* One baseline (or extended Huffman) scan of every component, read as
 * jdhuff.c's decode_mcu reads it. */
struct ip__jpeg_seq_scan {
    const uint8_t *data;
    size_t len;
    size_t start, end;            /* entropy-coded data: [start, end), end at EOI */
    int ncomp;
    int comp[4];                  /* frame component index of each scan component */
    int nblk;                     /* blocks per MCU */
    uint8_t blk[10];              /* scan component of each block of an MCU */
    const struct huff *dc[4], *ac[4];   /* per scan component */
};

const struct ip__jpeg_seq_scan *ip__jpeg_seq_scan(const struct ip__jpeg_seq *s);
/* The SOS segment whose entropy-coded data starts at `scan`: 0 and *sos, or
 * DECLINE. */
int ip__jpeg_find_sos(const uint8_t *data, size_t scan, size_t *sos);

/* One block (jdhuff.c decode_mcu_slow): the DC difference is added to *dc
 * with libjpeg's unsigned wrap-around, and when blk is not NULL the
 * coefficients go there (zeroed by the caller). Strict: DECLINE on a bad
 * code and on a coefficient past 63 (which libjpeg would store at 63).
 * Lenient (a guess at where a block starts, codec_jpeg_seq.c): never
 * fails; a bad code passes one bit and ends the block, and so does a
 * coefficient past 63, so a wrong guess decodes on until it falls into
 * step. */
static inline int seq_block(struct bits *b, const struct huff *dc, const struct huff *ac, uint32_t *last,
                            JCOEF *blk, int lenient)
{
    int t, k;

    if (b->n < 32)
        refill(b);
    t = huff_decode(b, dc);
    if (t < 0) {
        if (!lenient)
            return DECLINE;
        get_bits(b, 1);
        return 0;
    }
    if (t)
        *last += (uint32_t)extend(get_bits(b, t), t);
    if (blk)
        blk[0] = (JCOEF)(int32_t)*last;
    for (k = 1; k < 64; k++) {
        int32_t fe;
        int r, s;

        if (b->n < 32)
            refill(b);
        fe = ac->fast_ac[b->buf >> (64 - LUT_BITS)];
        if (fe) {   /* a nonzero coefficient, code and value in one lookup */
            b->buf <<= fe & 0xFF;
            b->n -= fe & 0xFF;
            k += (fe >> 8) & 0xFF;
            if (k > 63)
                return lenient ? 0 : DECLINE;
            if (blk)
                blk[zz_natural[k]] = (JCOEF)(fe >> 16);
            continue;
        }
        s = next_symbol(b, ac, &r);
        if (s < 0) {
            if (!lenient)
                return DECLINE;
            get_bits(b, 1);
            return 0;
        }
        if (s) {
            int v;

            k += r;
            if (k > 63 && !lenient)
                return DECLINE;
            v = extend(get_bits(b, s), s);
            if (k > 63)
                return 0;
            if (blk)
                blk[zz_natural[k]] = (JCOEF)v;
        } else if (r == 15) {
            k += 15;   /* ZRL */
        } else {
            break;   /* EOB (libjpeg reads any other run with size 0 as one) */
        }
    }
    return 0;
}

/* One MCU, its coefficients dropped (lenient: see seq_block). */
static inline int seq_mcu_skip(struct bits *b, const struct ip__jpeg_seq_scan *q, uint32_t *dc, int lenient)
{
    for (int i = 0; i < q->nblk; i++) {
        int s = q->blk[i];

        if (seq_block(b, q->dc[s], q->ac[s], &dc[s], NULL, lenient))
            return DECLINE;
    }
    return 0;
}

#endif
