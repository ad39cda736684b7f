/* Fast PNG decoding for the common cases, byte-identical to codec_png.c.
 *
 * DESIGN
 * - ip__png_decode calls ip__png_decode_fast first. It returns 0 (decoded),
 *   1 ("not handled": *out still zeroed, err untouched, the libpng path
 *   runs as before) or a negative code from ip__pixels_alloc. It handles
 *   non-interlaced 8-bit gray, gray+alpha, RGB, RGBA and palette (with or
 *   without tRNS) and 16-bit gray/GA/RGB/RGBA without tRNS; anything else
 *   is declined.
 * - The rule: never accept a file that the libpng path rejects, and give the
 *   same channels and bytes when accepting. So every doubt declines and
 *   libpng decides (and writes the error message, and applies
 *   allow_truncated). The whole file is checked before the output is
 *   allocated: signature, IHDR (first, 13 bytes), every chunk name, length
 *   (libpng's chunk-size limits too) and CRC up to IEND, PLTE/tRNS rules,
 *   consecutive non-empty IDATs, no unknown critical chunk. Data after IEND
 *   is ignored, as libpng never reads it.
 * - Inflate: the IDAT payloads (when there are several: moved together in
 *   place if the caller passes its buffer as writable, as the pipeline's
 *   loader does, else concatenated into a scratch buffer) are inflated by
 *   inflate_strict into a buffer of
 *   exactly height * (1 + rowbytes) bytes; the stream must end exactly
 *   there, at the end of the last IDAT, with a valid Adler-32. It is an
 *   inflater of its own, not libdeflate's: libdeflate accepts streams that
 *   zlib (so libpng) rejects (length symbols 286/287 and distance symbols
 *   30/31 decode as valid, code-length repeats may overrun, some incomplete
 *   or empty Huffman codes are used anyway; test_png_fast has one of each),
 *   and checking a stream in a second pass costs as much as inflating it.
 *   inflate_strict applies zlib's rules as it goes. zlib honours the window
 *   size in the zlib header (libpng asks it to); a window under 32K is
 *   accepted only when the whole output fits in it. Speed: a fast loop
 *   away from the buffer ends, the next table entry looked up before the
 *   refill, a table whose entries decode two short literal codewords at
 *   once (most PNG data is literals), 16-byte match copies. libdeflate
 *   supplies CRC-32 and Adler-32.
 * - Unfilter (None, Sub, Up, Average, Paeth): every filter byte is checked
 *   first. 8-bit direct colour inflates into the output buffer itself,
 *   allocated with rows of rowbytes + 1 (ip__pixels_alloc_room), and
 *   unfilters there, packing the rows to rowbytes as it goes
 *   (unfilter_packed); a stream that fails frees it and libpng runs. The
 *   palette and 16-bit cases inflate into scratch, unfilter in place, then expand (palette
 *   indices must be < the PLTE entry count, which libpng enforces) or scale
 *   with ip__scale_16_to_8. Paeth and Average for 3 and 4 bytes per pixel
 *   use SSE2 (baseline on x86-64), Paeth SSE4.1 when the CPU has it; plain
 *   C elsewhere and for the other pixel sizes.
 * - Huge PNGs that imgpar wrote: given a strip runner (the pipeline's
 *   loader lends its team), the stream is inflated by strips at once, from
 *   the layout in the file's ipST chunk, with the same bytes and checks as
 *   inflate_strict (see inflate_parallel). Their rows are then unfiltered
 *   by the same strips at once when the first row of every strip is None
 *   or Sub, as imgpar writes them (unfilter_parallel); else, and for every
 *   other PNG, unfiltering runs on the calling thread.
 * - Stopping: a runner's stop flag (the pipeline's Ctrl-C) is looked at
 *   before each deflate block of inflate_strict (encoders write blocks of
 *   tens of KiB; a hostile stream of one huge block is inflated to its
 *   end, bounded by the image size), and the decode returns IP_EINTR.
 * - Threads: reentrant. Each thread keeps a scratch (IDAT, row and table
 *   buffers) in a pthread key, reused across calls and freed when the
 *   thread exits; buffers above SCRATCH_KEEP_MAX are freed after each call
 *   instead.
 * - Memory: 8-bit direct colour needs nothing image-sized besides the
 *   output (and the IDAT data gathered when it spans chunks and the buffer
 *   is not writable); the pipeline's loader may let the decoder give the
 *   file's pages back as it reads them (give_back, below); palette and 16-bit images hold the whole inflated
 *   image besides the output. When that extra memory would be needed for
 *   an image whose inflated data exceeds ip__png_fast_max (256 MiB), libpng
 *   decodes it (one row at a time); so does a header whose IDAT data is
 *   too small to inflate to the image (nothing image-sized is allocated
 *   for it). A 20000x20000 RGB PNG read by the pipeline takes the fast path.
 * - Compacting in place: the 12 bytes between payloads are saved first, and
 *   put back (payloads moved up again) whenever the fast path does not
 *   finish, so libpng then reads the file as it was. After a successful
 *   decode the caller's buffer is left rearranged.
 * - IMGPAR_PNG_FAST=0 in the environment (read once) disables the fast
 *   path; tests switch it with ip__png_fast_set_enabled. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codec_internal.h"

#define NOT_HANDLED 1

/* libpng's limits for one chunk (pnglibconf.h PNG_USER_CHUNK_MALLOC_MAX, and
 * PNG_UINT_31_MAX for every length field). */
#define CHUNK_MALLOC_MAX 8000000u
#define UINT31_MAX 0x7fffffffu

/* Bytes readable after the end of a zlib stream: inflate_strict loads 8
 * bytes at a time up to 16 bytes past the end. A single IDAT is followed
 * by its CRC and at least IEND (16 bytes); scratch copies get this padding. */
#define STREAM_PAD 16

/* Readable bytes after the inflated rows (4-byte pixel loads). */
#define ROWS_PAD 16

/* Scratch buffers up to this size stay with the thread between calls. */
#define SCRATCH_KEEP_MAX ((size_t)64 << 20)

/* Images whose inflated data is larger are left to libpng when the fast
 * path would need image-sized memory besides the output (libpng needs a
 * row): the palette and 16-bit cases, and IDAT data gathered from several
 * chunks into scratch. A variable so that tests can lower it. */
size_t ip__png_fast_max = (size_t)256 << 20;

/* Deflate's best case: a 258-byte match in two 1-bit codewords. */
#define DEFLATE_MAX_RATIO 1032

#define CHUNK(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define CHUNK_IHDR CHUNK('I', 'H', 'D', 'R')
#define CHUNK_PLTE CHUNK('P', 'L', 'T', 'E')
#define CHUNK_IDAT CHUNK('I', 'D', 'A', 'T')
#define CHUNK_IEND CHUNK('I', 'E', 'N', 'D')
#define CHUNK_tRNS CHUNK('t', 'R', 'N', 'S')
#define CHUNK_ipST CHUNK('i', 'p', 'S', 'T')   /* imgpar's strip layout: see inflate_parallel */

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- enable switch ---- */

/* 0 off, 1 on, 2 on but without SSE4.1 (tests reach the SSE2 code). */
static struct ip__switch fast_switch = {-1, "IMGPAR_PNG_FAST"};

void ip__png_fast_set_enabled(int enabled)
{
    ip__switch_set(&fast_switch, enabled >= 0 && enabled <= 2 ? enabled : 1);
}

/* ---- per-thread scratch ---- */

struct block_tables;

struct scratch {
    struct block_tables *tables; /* inflate_strict's dynamic-block tables */
    uint8_t *idat;          /* concatenated IDAT payloads + STREAM_PAD */
    size_t idat_cap;
    uint8_t *rows;          /* inflated filter bytes and rows */
    size_t rows_cap;
};

static pthread_key_t scratch_key;
static int scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
    struct scratch *s = p;

    if (!s)
        return;
    free(s->tables);
    free(s->idat);
    free(s->rows);
    free(s);
}

static void scratch_key_create(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* The calling thread's scratch, or a fresh one (*owned = 1: the caller
 * destroys it) when no key could be created. NULL when out of memory. */
static struct scratch *scratch_get(int *owned)
{
    struct scratch *s;

    pthread_once(&scratch_once, scratch_key_create);
    *owned = !scratch_key_ok;
    s = scratch_key_ok ? pthread_getspecific(scratch_key) : NULL;
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (scratch_key_ok && pthread_setspecific(scratch_key, s) != 0) {
        scratch_destroy(s);
        return NULL;
    }
    return s;
}

/* Makes *buf hold at least n bytes (contents not kept). */
static int scratch_reserve(uint8_t **buf, size_t *cap, size_t n)
{
    uint8_t *p;

    if (n <= *cap)
        return 0;
    free(*buf);
    *buf = NULL;
    *cap = 0;
    p = malloc(n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Drops buffers too large to keep for the next image. */
static void scratch_trim(struct scratch *s)
{
    if (s->idat_cap > SCRATCH_KEEP_MAX) {
        free(s->idat);
        s->idat = NULL;
        s->idat_cap = 0;
    }
    if (s->rows_cap > SCRATCH_KEEP_MAX) {
        free(s->rows);
        s->rows = NULL;
        s->rows_cap = 0;
    }
}

/* ---- chunk layer ---- */

struct png_head {
    uint32_t width, height;
    unsigned bit_depth, color_type;
    unsigned samples;          /* samples per pixel in the file (palette: 1) */
    unsigned bpp;              /* bytes per pixel: the filters' left distance */
    unsigned out_channels;     /* channels of the decoded image */
    size_t rowbytes;           /* bytes per row, without the filter byte */
    size_t filtered_size;      /* height * (1 + rowbytes): the inflated size */
    unsigned num_palette;      /* PLTE entries (0: no PLTE) */
    unsigned num_trans;        /* tRNS entries (palette images only) */
    uint8_t palette[256][4];   /* RGBA; alpha 255 past num_trans */
    size_t first_idat;         /* offset of the first IDAT chunk */
    unsigned idat_chunks;      /* consecutive IDAT chunks */
    size_t idat_len;           /* their payload bytes in total */
    const uint8_t *layout;     /* the first ipST chunk's body before IDAT (strip layout), or NULL */
    size_t layout_len;
};

static int chunk_name_valid(uint32_t name)
{
    int i;

    for (i = 0; i < 4; i++, name >>= 8) {
        unsigned c = name & 0xff;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

/* libpng's png_check_chunk_length limit for an IDAT chunk. */
static uint64_t idat_length_limit(const struct png_head *h)
{
    uint64_t row_factor = (uint64_t)h->width * h->samples * (h->bit_depth > 8 ? 2 : 1) + 1;
    uint64_t limit, rf;

    if (h->height > 0xffffffffu / row_factor) {
        limit = UINT31_MAX;
    } else {
        limit = (uint64_t)h->height * row_factor;
        rf = row_factor > 32566 ? 32566 : row_factor;
        limit += 6 + 5 * (limit / rf + 1);
        if (limit > UINT31_MAX)
            limit = UINT31_MAX;
    }
    return limit > CHUNK_MALLOC_MAX ? limit : CHUNK_MALLOC_MAX;
}

/* Checks IHDR and walks every chunk up to IEND. Returns 0 when the fast
 * path can decode the file, NOT_HANDLED otherwise. */
static int parse_chunks(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                        struct png_head *h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    enum { BEFORE_IDAT, IN_IDAT, AFTER_IDAT } state = BEFORE_IDAT;
    uint64_t idat_limit;
    size_t pos, bytes_per_sample;
    int have_trns = 0;

    memset(h, 0, sizeof *h);
    if (len < 8 + 25 || memcmp(data, sig, 8) != 0)
        return NOT_HANDLED;

    /* IHDR, first and 13 bytes long. */
    if (be32(data + 8) != 13 || be32(data + 12) != CHUNK_IHDR ||
        libdeflate_crc32(0, data + 12, 4 + 13) != be32(data + 29))
        return NOT_HANDLED;
    h->width = be32(data + 16);
    h->height = be32(data + 20);
    h->bit_depth = data[24];
    h->color_type = data[25];
    if (h->width == 0 || h->height == 0 || h->width > UINT31_MAX || h->height > UINT31_MAX ||
        h->width > opts->limits.max_dim || h->height > opts->limits.max_dim)
        return NOT_HANDLED;
    if (data[26] != 0 || data[27] != 0 || data[28] != 0)   /* compression, filter, interlace */
        return NOT_HANDLED;
    switch (h->color_type) {
    case 0: h->samples = 1; break;
    case 2: h->samples = 3; break;
    case 3: h->samples = 1; break;
    case 4: h->samples = 2; break;
    case 6: h->samples = 4; break;
    default: return NOT_HANDLED;
    }
    if (!(h->bit_depth == 8 || (h->bit_depth == 16 && h->color_type != 3)))
        return NOT_HANDLED;
    bytes_per_sample = h->bit_depth / 8;
    h->bpp = h->samples * (unsigned)bytes_per_sample;
    h->rowbytes = (size_t)h->width * h->bpp;   /* < 2^34: no overflow on 64-bit */
    if (h->rowbytes / h->bpp != h->width || h->rowbytes == SIZE_MAX ||
        h->height > SIZE_MAX / (h->rowbytes + 1))
        return NOT_HANDLED;
    h->filtered_size = (size_t)h->height * (h->rowbytes + 1);
    h->out_channels = h->color_type == 3 ? 3 : h->samples;
    idat_limit = idat_length_limit(h);

    for (pos = 8 + 25;;) {
        uint32_t length, name;
        const uint8_t *body;

        if (len - pos < 12)
            return NOT_HANDLED;               /* truncated: libpng decides */
        length = be32(data + pos);
        name = be32(data + pos + 4);
        if (length > UINT31_MAX || length > len - pos - 12 || !chunk_name_valid(name))
            return NOT_HANDLED;
        if (name == CHUNK_IDAT ? length > idat_limit : length > CHUNK_MALLOC_MAX)
            return NOT_HANDLED;
        body = data + pos + 8;
        if (libdeflate_crc32(0, data + pos + 4, 4 + (size_t)length) != be32(body + length))
            return NOT_HANDLED;

        if (name == CHUNK_IDAT) {
            if (state == AFTER_IDAT || length == 0)
                return NOT_HANDLED;
            if (h->color_type == 3 && h->num_palette == 0)
                return NOT_HANDLED;
            if (state == BEFORE_IDAT) {
                state = IN_IDAT;
                h->first_idat = pos;
            }
            h->idat_chunks++;
            h->idat_len += length;
        } else {
            if (state == IN_IDAT)
                state = AFTER_IDAT;
            if (name == CHUNK_IEND) {
                if (state != AFTER_IDAT || length != 0)
                    return NOT_HANDLED;
                break;
            }
            if (state == AFTER_IDAT) {
                /* libpng only CRC-checks chunks after the image data;
                 * anything critical there is unusual: decline. */
                if (!(name & 0x20000000u))
                    return NOT_HANDLED;
            } else if (name == CHUNK_PLTE) {
                /* Gray images: libpng errors; RGB(A): it reads and checks
                 * it, then imgpar ignores it. */
                if (h->num_palette || have_trns || h->color_type == 0 || h->color_type == 4 ||
                    length == 0 || length > 3 * 256 || length % 3 != 0)
                    return NOT_HANDLED;
                h->num_palette = length / 3;
                for (unsigned i = 0; i < h->num_palette; i++) {
                    memcpy(h->palette[i], body + 3 * i, 3);
                    h->palette[i][3] = 255;
                }
            } else if (name == CHUNK_tRNS) {
                if (h->color_type != 3 || have_trns || h->num_palette == 0 || length == 0 ||
                    length > h->num_palette)
                    return NOT_HANDLED;
                have_trns = 1;
                h->num_trans = length;
                for (unsigned i = 0; i < length; i++)
                    h->palette[i][3] = body[i];
            } else if (name == CHUNK_ipST) {
                if (!h->layout) {
                    h->layout = body;
                    h->layout_len = length;
                }
            } else if (!(name & 0x20000000u)) {
                return NOT_HANDLED;           /* IHDR again, or unknown critical */
            }
        }
        pos += 12 + (size_t)length;
    }
    if (h->color_type == 3 && have_trns)
        h->out_channels = 4;
    return 0;
}

/* Copies the payloads of the consecutive IDAT chunks into dst. */
static void gather_idat(const uint8_t *data, const struct png_head *h, uint8_t *dst)
{
    size_t pos = h->first_idat;
    unsigned i;

    for (i = 0; i < h->idat_chunks; i++) {
        uint32_t length = be32(data + pos);
        memcpy(dst, data + pos + 8, length);
        dst += length;
        pos += 12 + (size_t)length;
    }
}

/* In a buffer the caller lets us rearrange: moves the payloads of the
 * consecutive IDAT chunks down so that they follow the first one's, which
 * stays in place. The 12 bytes between two payloads (CRC, length, name)
 * are saved in gaps first, 12 per chunk after the first. Each move writes
 * below the next chunk's header, so the walk reads every header intact.
 * The stream then ends 12 bytes per chunk (and a CRC and IEND) before the
 * old end of the data: STREAM_PAD readable bytes are still there. */
static void compact_idat(uint8_t *data, const struct png_head *h, uint8_t *gaps)
{
    size_t pos = h->first_idat, dst = pos + 8;
    unsigned i;

    for (i = 0; i < h->idat_chunks; i++) {
        uint32_t length = be32(data + pos);

        if (i > 0) {
            memcpy(gaps + 12 * (size_t)(i - 1), data + pos - 4, 12);
            memmove(data + dst, data + pos + 8, length);
        }
        dst += length;
        pos += 12 + (size_t)length;
    }
}

/* Length of IDAT payload i after compact_idat: the first chunk's header
 * is in place, the others' lengths are in their saved gaps. */
static size_t compacted_length(const uint8_t *data, const struct png_head *h, const uint8_t *gaps, unsigned i)
{
    return i == 0 ? be32(data + h->first_idat) : be32(gaps + 12 * (size_t)(i - 1) + 4);
}

/* Undoes compact_idat, last chunk first: each payload moves back up
 * (over the places of those already restored) and its gap returns in
 * front of it. */
static void restore_idat(uint8_t *data, const struct png_head *h, const uint8_t *gaps)
{
    size_t first = h->first_idat + 8, at = first, dst = first;
    unsigned i;

    for (i = 1; i < h->idat_chunks; i++) {   /* where the last payload was, and is */
        size_t prev = compacted_length(data, h, gaps, i - 1);
        at += prev + 12;
        dst += prev;
    }
    for (i = h->idat_chunks - 1; i > 0; i--) {
        size_t prev = compacted_length(data, h, gaps, i - 1);

        memmove(data + at, data + dst, compacted_length(data, h, gaps, i));
        memcpy(data + at - 12, gaps + 12 * (size_t)(i - 1), 12);
        at -= prev + 12;
        dst -= prev;
    }
}

/* ---- inflate with zlib's acceptance rules ----
 *
 * Decode tables: a main table indexed by the next TBITS input bits, with
 * subtables for longer codewords. Entry layout (32 bits):
 *   bits 0-7   bits to drop: the codeword, plus the extra bits for length
 *              and distance symbols (subtable pointers: 0)
 *   bits 8-11  kind (K_*)
 *   bits 12-15 extra bits after the codeword (subtable pointers: index bits)
 *   bits 16-31 literal value, length or distance base, precode symbol
 *              (subtable pointers: subtable start) */
enum { K_LIT = 0, K_MATCH = 1, K_EOB = 2, K_BAD = 3, K_SUB = 4 };

#define E_DROP(e) ((e) & 0xff)
#define E_KIND(e) (((e) >> 8) & 0xf)
#define E_EXTRA(e) (((e) >> 12) & 0xf)
#define E_VAL(e) ((e) >> 16)
#define ENTRY(kind, extra, val) ((uint32_t)(kind) << 8 | (uint32_t)(extra) << 12 | (uint32_t)(val) << 16)

#define LIT_TBITS 11
#define DIST_TBITS 8
#define PRE_TBITS 7
#define LIT_TABLE_SIZE (2048 + 2048)
#define DIST_TABLE_SIZE (256 + 1024)

/* The fast loop's literal/length table: the main table again, but an entry
 * whose bits hold two whole literal codewords decodes both. Literal
 * entries: bit 7 set, bits 0-4 bits to drop, bit 5 two literals, bits 8-15
 * and 16-23 the literals. Other entries are the main table's (bit 7
 * clear); subtable pointers still point into the main table's array. */
#define M_LIT 0x80u
#define M_TWO 0x20u
#define M_DROP(e) ((e) & 0x1f)

/* Decode tables of one Huffman block. */
struct block_tables {
    uint32_t lit[LIT_TABLE_SIZE];
    uint32_t multi[1u << LIT_TBITS];
    uint32_t dist[DIST_TABLE_SIZE];
};

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                       6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Decode result of each symbol (symbols past the real ones are invalid, as
 * in zlib: length symbols 286/287 and distance symbols 30/31). */
static uint32_t lit_info[288], dist_info[32], pre_info[19];
static struct block_tables fixed_tables;
static int cpu_sse41;   /* the CPU has SSE4.1 (x86) */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

enum code_kind { CODE_PRECODE, CODE_LITLEN, CODE_DIST };

static unsigned bit_reverse(unsigned code, unsigned bits)
{
    unsigned r = 0;

    while (bits--) {
        r = (r << 1) | (code & 1);
        code >>= 1;
    }
    return r;
}

/* Canonical codewords: next[len] is the first codeword of each length. */
static void first_codes(const unsigned *count, unsigned *next)
{
    unsigned len, code = 0;

    next[0] = 0;
    for (len = 1; len < 16; len++) {
        code = (code + (len > 1 ? count[len - 1] : 0)) << 1;
        next[len] = code;
    }
}

/* Builds a decode table from codeword lengths with zlib's inflate_table
 * rules: over-subscribed codes are rejected; incomplete codes only for the
 * literal/length and distance codes and only as a single 1-bit codeword
 * (the other codeword is then invalid); an empty code only for distances
 * (every entry invalid). Returns 0 or -1. */
static int build_table(uint32_t *table, size_t table_size, unsigned tbits, const uint8_t *lens,
                       unsigned n, const uint32_t *info, enum code_kind kind)
{
    unsigned count[16] = {0}, next[16], sub_max[1u << LIT_TBITS];
    unsigned sym, len, max = 0, code;
    size_t tsize = (size_t)1 << tbits, used = tsize, i;
    int left;

    for (sym = 0; sym < n; sym++)
        count[lens[sym]]++;
    for (len = 1; len < 16; len++)
        if (count[len])
            max = len;
    if (max == 0) {
        if (kind != CODE_DIST)
            return -1;
        for (i = 0; i < tsize; i++)
            table[i] = ENTRY(K_BAD, 0, 0);
        return 0;
    }
    left = 1;
    for (len = 1; len < 16; len++) {
        left <<= 1;
        left -= (int)count[len];
        if (left < 0)
            return -1;
    }
    if (left > 0) {
        if (kind == CODE_PRECODE || max != 1)
            return -1;
        for (i = 0; i < tsize; i++)
            table[i] = ENTRY(K_BAD, 0, 0);
    }
    first_codes(count, next);

    /* Subtables: one per main-table prefix of the codewords longer than
     * tbits, sized by the longest codeword under that prefix. */
    if (max > tbits) {
        unsigned nxt[16];

        memcpy(nxt, next, sizeof nxt);
        memset(sub_max, 0, sizeof(unsigned) * tsize);
        for (sym = 0; sym < n; sym++) {
            len = lens[sym];
            if (len == 0)
                continue;
            code = bit_reverse(nxt[len]++, len);
            if (len > tbits) {
                unsigned prefix = code & (unsigned)(tsize - 1);
                if (len > sub_max[prefix])
                    sub_max[prefix] = len;
            }
        }
        for (i = 0; i < tsize; i++) {
            if (sub_max[i]) {
                unsigned sub_bits = sub_max[i] - tbits;
                if (used + ((size_t)1 << sub_bits) > table_size)
                    return -1;
                table[i] = ENTRY(K_SUB, sub_bits, used);
                used += (size_t)1 << sub_bits;
            }
        }
    }
    for (sym = 0; sym < n; sym++) {
        uint32_t e;

        len = lens[sym];
        if (len == 0)
            continue;
        code = bit_reverse(next[len]++, len);
        /* A match symbol's entry drops its extra bits too (read from the
         * bits before the drop: see EXTRA_BITS). */
        e = info[sym] | (len + (E_KIND(info[sym]) == K_MATCH ? E_EXTRA(info[sym]) : 0));
        if (len <= tbits) {
            for (i = code; i < tsize; i += (size_t)1 << len)
                table[i] = e;
        } else {
            /* The prefix's main entry points to its subtable (no shorter
             * codeword can share the prefix). */
            uint32_t sub = table[code & (unsigned)(tsize - 1)];
            size_t step = (size_t)1 << (len - tbits);
            for (i = code >> tbits; i < ((size_t)1 << E_EXTRA(sub)); i += step)
                table[E_VAL(sub) + i] = e;
        }
    }
    return 0;
}

/* Fills t->multi from t->lit (see M_LIT). */
static void build_multi(struct block_tables *t)
{
    unsigned i;

    for (i = 0; i < (1u << LIT_TBITS); i++) {
        uint32_t e1 = t->lit[i], e2, l1;

        if (E_KIND(e1) != K_LIT) {
            t->multi[i] = e1;
            continue;
        }
        l1 = E_DROP(e1);
        /* The codeword after the first: index bits l1 and up (the top l1
         * bits are unknown, so only a codeword that fits counts). */
        e2 = t->lit[i >> l1];
        if (E_KIND(e2) == K_LIT && l1 + E_DROP(e2) <= LIT_TBITS)
            t->multi[i] = M_LIT | M_TWO | (l1 + E_DROP(e2)) | E_VAL(e1) << 8 | E_VAL(e2) << 16;
        else
            t->multi[i] = M_LIT | l1 | E_VAL(e1) << 8;
    }
}

static void tables_init(void)
{
    uint8_t lens[288];
    unsigned i;

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    cpu_sse41 = __builtin_cpu_supports("sse4.1");
#endif

    for (i = 0; i < 256; i++)
        lit_info[i] = ENTRY(K_LIT, 0, i);
    lit_info[256] = ENTRY(K_EOB, 0, 0);
    for (i = 0; i < 29; i++)
        lit_info[257 + i] = ENTRY(K_MATCH, len_extra[i], len_base[i]);
    lit_info[286] = lit_info[287] = ENTRY(K_BAD, 0, 0);
    for (i = 0; i < 30; i++)
        dist_info[i] = ENTRY(K_MATCH, dist_extra[i], dist_base[i]);
    dist_info[30] = dist_info[31] = ENTRY(K_BAD, 0, 0);
    for (i = 0; i < 19; i++)
        pre_info[i] = ENTRY(K_LIT, 0, i);

    for (i = 0; i < 144; i++)
        lens[i] = 8;
    for (; i < 256; i++)
        lens[i] = 9;
    for (; i < 280; i++)
        lens[i] = 7;
    for (; i < 288; i++)
        lens[i] = 8;
    (void)build_table(fixed_tables.lit, LIT_TABLE_SIZE, LIT_TBITS, lens, 288, lit_info, CODE_LITLEN);
    build_multi(&fixed_tables);
    memset(lens, 5, 32);
    (void)build_table(fixed_tables.dist, DIST_TABLE_SIZE, DIST_TBITS, lens, 32, dist_info,
                      CODE_DIST);
}

/* Bit reader state is kept in locals (so that it lives in registers):
 * p next byte to load, buf the bits loaded and not used (low bit first),
 * n how many. A refill loads 8 bytes at p; p <= limit = end of data + 8
 * keeps that within STREAM_PAD bytes past the end (beyond it the bits
 * would come from past the data anyway: the stream is rejected). The bits
 * of buf above n are the next input bits too (or zero), never garbage. */
#define REFILL_WORD()                                                         \
    do {                                                                      \
        buf |= ip__le64(p) << n;                                                  \
        p += (63 - n) >> 3;                                                   \
        n |= 56;                                                              \
    } while (0)

#define REFILL_TO(min)                                                        \
    do {                                                                      \
        if (n < (min)) {                                                      \
            if (p > limit)                                                    \
                return -1;                                                    \
            REFILL_WORD();                                                    \
        }                                                                     \
    } while (0)

#define DROP(k) (buf >>= (k), n -= (k))
#define PEEK(k) ((unsigned)(buf & (((uint64_t)1 << (k)) - 1)))

/* Resolves a main-table entry that points to a subtable (needs 15 bits). */
#define RESOLVE(e, t, tbits)                                                  \
    do {                                                                      \
        if (E_KIND(e) == K_SUB)                                               \
            (e) = (t)[E_VAL(e) + (unsigned)((buf >> (tbits)) & ((1u << E_EXTRA(e)) - 1))]; \
    } while (0)

/* The extra bits of match entry e, from the bits as they were before e
 * was dropped. */
#define EXTRA_BITS(e, saved)                                                  \
    ((unsigned)((saved) >> (E_DROP(e) - E_EXTRA(e))) & ((1u << E_EXTRA(e)) - 1))

/* One symbol through table t; needs 15 bits (28 for a distance). */
#define DECODE(e, t, tbits, saved)                                            \
    do {                                                                      \
        (e) = (t)[PEEK(tbits)];                                               \
        RESOLVE(e, t, tbits);                                                 \
        (saved) = buf;                                                        \
        DROP(E_DROP(e));                                                      \
    } while (0)

struct zstate {
    const uint8_t *p, *limit;
    uint64_t buf;
    unsigned n;
};

/* Reads a dynamic block header into t, with zlib's checks. */
static int read_dynamic(struct zstate *zs, struct block_tables *t)
{
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                      11, 4, 12, 3, 13, 2, 14, 1, 15};
    const uint8_t *p = zs->p, *limit = zs->limit;
    uint64_t buf = zs->buf;
    unsigned n = zs->n;
    uint8_t pre_lens[19] = {0}, lens[286 + 30];
    uint32_t pre[1u << PRE_TBITS];
    unsigned nlen, ndist, ncode, i, have;

    REFILL_TO(48);
    nlen = 257 + PEEK(5);
    DROP(5);
    ndist = 1 + PEEK(5);
    DROP(5);
    ncode = 4 + PEEK(4);
    DROP(4);
    if (nlen > 286 || ndist > 30)
        return -1;                                  /* "too many length or distance symbols" */
    for (i = 0; i < ncode; i++) {
        REFILL_TO(3);
        pre_lens[order[i]] = (uint8_t)PEEK(3);
        DROP(3);
    }
    if (build_table(pre, 1u << PRE_TBITS, PRE_TBITS, pre_lens, 19, pre_info, CODE_PRECODE))
        return -1;                                  /* "invalid code lengths set" */
    for (have = 0; have < nlen + ndist;) {
        uint32_t e;
        uint64_t saved;
        unsigned sym, copy, val;

        REFILL_TO(PRE_TBITS + 7);
        DECODE(e, pre, PRE_TBITS, saved);
        (void)saved;
        sym = E_VAL(e);
        if (sym < 16) {
            lens[have++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16) {
            if (have == 0)
                return -1;                          /* "invalid bit length repeat" */
            val = lens[have - 1];
            copy = 3 + PEEK(2);
            DROP(2);
        } else if (sym == 17) {
            val = 0;
            copy = 3 + PEEK(3);
            DROP(3);
        } else {
            val = 0;
            copy = 11 + PEEK(7);
            DROP(7);
        }
        if (have + copy > nlen + ndist)
            return -1;                              /* "invalid bit length repeat" */
        memset(lens + have, (int)val, copy);
        have += copy;
    }
    if (lens[256] == 0)
        return -1;                                  /* "missing end-of-block" */
    if (build_table(t->lit, LIT_TABLE_SIZE, LIT_TBITS, lens, nlen, lit_info, CODE_LITLEN) ||
        build_table(t->dist, DIST_TABLE_SIZE, DIST_TBITS, lens + nlen, ndist, dist_info, CODE_DIST))
        return -1;
    build_multi(t);
    zs->p = p;
    zs->buf = buf;
    zs->n = n;
    return 0;
}

/* Copies a match of length bytes from distance back, writing up to 31
 * bytes past the end of it (the caller leaves that room). Chunks never
 * read bytes the same call has yet to write: chunk size <= distance. */
static inline void copy_match(uint8_t *dst, size_t distance, unsigned length)
{
    uint8_t *end = dst + length;
    const uint8_t *src = dst - distance;

    if (distance >= 16) {
        memcpy(dst, src, 16);
        memcpy(dst + 16, src + 16, 16);
        dst += 32;
        src += 32;
        while (dst < end) {
            memcpy(dst, src, 16);
            dst += 16;
            src += 16;
        }
    } else if (distance >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + 8, src + 8, 8);
        dst += 16;
        src += 16;
        while (dst < end) {
            memcpy(dst, src, 8);
            dst += 8;
            src += 8;
        }
    } else if (distance == 1) {
        uint64_t v = 0x0101010101010101ull * *src;
        do {
            memcpy(dst, &v, 8);
            memcpy(dst + 8, &v, 8);
            dst += 16;
        } while (dst < end);
    } else {
        /* Period 2..7: 8 bytes of the pattern, stored at steps of the
         * largest multiple of the period that fits in 8. */
        static const uint8_t step[8] = {0, 0, 8, 6, 8, 5, 6, 7};
        uint8_t pattern[16];
        uint64_t v;
        unsigned i;

        memcpy(pattern, src, 8);   /* the first `distance` bytes are the period */
        for (i = (unsigned)distance; i < 8; i++)
            pattern[i] = pattern[i - distance];
        memcpy(&v, pattern, 8);
        do {
            memcpy(dst, &v, 8);
            dst += step[distance];
        } while (dst < end);
    }
}

/* Room the fast loop needs past the output position: a longest match plus
 * copy_match's overshoot (an iteration's literals need less). */
#define FAST_OUT_ROOM (258 + 32)

/* The inflater between calls: the bit reader (kept in locals inside the
 * loops, as above), the output position and the block being decoded. */
struct zrun {
    const uint8_t *z;          /* the zlib stream: header, deflate data, Adler-32 */
    size_t zlen;
    const uint8_t *p;
    uint64_t buf;
    unsigned n;
    size_t pos;                /* output bytes before the next one */
    int final;                 /* the last block header read had BFINAL */
    const uint32_t *lit, *multi, *dist;  /* the current compressed block's tables; NULL between blocks */
    struct block_tables *dyn;
};

/* Input bits consumed, counted from z. */
static size_t zrun_bits(const struct zrun *r)
{
    return (size_t)(r->p - r->z) * 8 - r->n;
}

/* The zlib header's checks: deflate, FCHECK, no preset dictionary, window
 * <= 32K (a smaller window only when expect, the whole output, fits in it:
 * zlib measures distances against it in a way that depends on libpng's
 * buffering). Starts r at the first block. */
static int zrun_start(struct zrun *r, const uint8_t *z, size_t zlen, size_t expect, struct block_tables *dyn)
{
    unsigned cinfo;

    pthread_once(&tables_once, tables_init);
    memset(r, 0, sizeof *r);
    if (zlen < 2 + 1 + 4)
        return -1;
    cinfo = z[0] >> 4;
    if ((z[0] & 0x0f) != 8 || cinfo > 7 || ((unsigned)z[0] << 8 | z[1]) % 31 != 0 || (z[1] & 0x20))
        return -1;
    if (cinfo < 7 && expect > ((size_t)1 << (cinfo + 8)))
        return -1;
    r->z = z;
    r->zlen = zlen;
    r->p = z + 2;
    r->dyn = dyn;
    return 0;
}

/* Reads a block header. A compressed block: its tables are set, returns 0.
 * A stored block: *stored and *stored_len give its bytes (already passed
 * over), returns 1. -1 for anything zlib rejects. */
static int block_begin(struct zrun *r, const uint8_t **stored, size_t *stored_len)
{
    const uint8_t *start = r->z + 2, *p = r->p, *limit = r->z + r->zlen + 8;
    uint64_t buf = r->buf;
    unsigned n = r->n, type;

    REFILL_TO(3);
    r->final = (int)PEEK(1);
    type = PEEK(3) >> 1;
    DROP(3);
    if (type == 0) {
        size_t at, len;

        DROP(n & 7);
        at = (size_t)(p - start) - n / 8;
        if (at + 2 + 4 > r->zlen)
            return -1;
        len = (size_t)start[at] | (size_t)start[at + 1] << 8;
        if ((len ^ 0xffff) != ((size_t)start[at + 2] | (size_t)start[at + 3] << 8))
            return -1;                              /* "invalid stored block lengths" */
        at += 4;
        if (len > r->zlen - 2 - at)
            return -1;
        *stored = start + at;
        *stored_len = len;
        r->p = start + at + len;
        r->buf = 0;
        r->n = 0;
        return 1;
    }
    if (type == 1) {
        r->lit = fixed_tables.lit;
        r->multi = fixed_tables.multi;
        r->dist = fixed_tables.dist;
    } else if (type == 2) {
        struct zstate zs = {p, limit, buf, n};

        if (read_dynamic(&zs, r->dyn))
            return -1;
        p = zs.p;
        buf = zs.buf;
        n = zs.n;
        r->lit = r->dyn->lit;
        r->multi = r->dyn->multi;
        r->dist = r->dyn->dist;
    } else {
        return -1;                                  /* "invalid block type" */
    }
    r->p = p;
    r->buf = buf;
    r->n = n;
    return 0;
}

/* Bytes of a strip that wait for the bytes before it (strip-parallel
 * inflate, below): while a strip is inflated without its window, a byte
 * copied from before the strip is a placeholder, and so is one copied from
 * a placeholder. Each match that writes one is recorded, to be replayed
 * once the window is there. */
struct taint {
    size_t base;               /* the strip's first output position */
    uint64_t *bits;            /* a bit per strip byte: a placeholder */
    size_t mark_end;           /* one past the last placeholder, from base (0: none) */
    size_t rec_end;            /* one past the last byte a recorded match wrote, from base */
    struct replay *recs;       /* the matches that wrote placeholders, in order */
    size_t nrecs, cap;
    size_t max_recs;           /* more records than this: the strip is left over */
    int oom;                   /* a record could not be kept */
};

struct replay {
    uint32_t at;               /* output position, from base */
    uint16_t distance, length;
};

/* Does a match of length at pos from distance back read a placeholder or
 * a byte before the strip? */
static inline int taint_hit(const struct taint *t, size_t pos, size_t distance, unsigned length)
{
    size_t rel = pos - t->base, from, last, w0, w1;
    uint64_t m0, m1;

    if (distance > rel)
        return 1;
    from = rel - distance;
    if (from >= t->mark_end)
        return 0;
    last = from + length - 1;
    w0 = from >> 6;
    w1 = last >> 6;
    m0 = ~(uint64_t)0 << (from & 63);
    m1 = ~(uint64_t)0 >> (63 - (last & 63));
    if (w0 == w1)
        return (t->bits[w0] & m0 & m1) != 0;
    if (t->bits[w0] & m0)
        return 1;
    for (size_t w = w0 + 1; w < w1; w++)
        if (t->bits[w])
            return 1;
    return (t->bits[w1] & m1) != 0;
}

/* The n <= 64 bits of b from bit at. */
static inline uint64_t bits_get(const uint64_t *b, size_t at, unsigned n)
{
    unsigned o = at & 63;
    uint64_t v = b[at >> 6] >> o;

    if (o + n > 64)
        v |= b[(at >> 6) + 1] << (64 - o);
    return n == 64 ? v : v & (((uint64_t)1 << n) - 1);
}

/* Sets the bits of v (n <= 64 of them) in b from bit at. */
static inline void bits_or(uint64_t *b, size_t at, unsigned n, uint64_t v)
{
    unsigned o = at & 63;

    b[at >> 6] |= v << o;
    if (o + n > 64)
        b[(at >> 6) + 1] |= v >> (64 - o);
}

/* Writes a match that taint_hit found: its bytes from before the strip as
 * 0, the others copied (a copy of a placeholder is one too: whatever it
 * holds is replaced by the replay); its placeholders marked; the match
 * recorded. */
static void taint_copy(struct taint *t, uint8_t *out, size_t pos, size_t distance, unsigned length)
{
    size_t rel = pos - t->base, before = distance > rel ? distance - rel : 0, mark_end = t->mark_end;
    uint64_t *bits = t->bits;

    if (before > length)
        before = length;
    memset(out + pos, 0, before);
    for (size_t i = before; i < length; i++)
        out[pos + i] = out[pos + i - distance];
    /* Bits a chunk at a time; a chunk never reaches past the distance, so
     * it reads only bits already final (a copy may overlap itself). */
    for (size_t i = 0; i < before; i += 64) {
        unsigned c = before - i < 64 ? (unsigned)(before - i) : 64;

        bits_or(bits, rel + i, c, c == 64 ? ~(uint64_t)0 : ((uint64_t)1 << c) - 1);
        mark_end = rel + before;
    }
    for (size_t i = before, step = distance < 64 ? distance : 64; i < length; i += step) {
        unsigned c = length - i < step ? (unsigned)(length - i) : (unsigned)step;
        uint64_t v = bits_get(bits, rel + i - distance, c);

        if (v) {
            bits_or(bits, rel + i, c, v);
            mark_end = rel + i + 64 - (size_t)__builtin_clzll(v);
        }
    }
    t->mark_end = mark_end;
    if (rel + length > t->rec_end)
        t->rec_end = rel + length;
    if (t->nrecs == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        struct replay *recs = t->nrecs < t->max_recs ? realloc(t->recs, cap * sizeof *recs) : NULL;

        if (!recs) {
            t->oom = 1;
            return;
        }
        t->recs = recs;
        t->cap = cap;
    }
    t->recs[t->nrecs++] = (struct replay){(uint32_t)rel, (uint16_t)distance, (uint16_t)length};
}

/* Decodes the rest of the current compressed block into out, whose bytes
 * from r->pos up to end are this call's to write (nothing at or past end
 * is written), with zlib's checks: symbol validity, distances within the
 * output so far. With t, matches that read before t->base or from a
 * placeholder go through taint_copy. 0 at the end of the block (tables
 * cleared), -1 otherwise. */
static inline __attribute__((always_inline)) int block_run(struct zrun *r, uint8_t *out, size_t end,
                                                           struct taint *t)
{
    const uint8_t *z = r->z, *p = r->p, *limit = r->z + r->zlen + 8;
    const uint32_t *lit = r->lit, *multi = r->multi, *dist = r->dist;
    uint64_t buf = r->buf;
    unsigned n = r->n;
    size_t pos = r->pos, zlen = r->zlen;
    size_t fast_end = end > FAST_OUT_ROOM ? end - FAST_OUT_ROOM : 0;
    uint32_t e;

    /* Fast loop: input and output far from their ends (room for a
     * longest match plus copy_match's overshoot, or for the up to 8
     * literals of one iteration and a 2-byte store). Entry e is looked
     * up before the refill that follows (it needs only LIT_TBITS bits),
     * so the refill stays off the decode chain. */
    REFILL_TO(48);
    e = multi[PEEK(LIT_TBITS)];
    while (pos < fast_end && p <= z + zlen) {   /* two refills stay in STREAM_PAD */
        unsigned length;
        size_t distance;
        uint32_t d;
        uint64_t saved;

        REFILL_WORD();
        if (e & M_LIT) {
            /* Up to four literal entries on one refill (4 x 11 bits),
             * each one or two literals, stored as two bytes. */
#define TAKE_LITERAL_ENTRY()                                \
    do {                                                    \
        uint16_t v_ = (uint16_t)(e >> 8);                   \
        memcpy(out + pos, &v_, 2);                          \
        pos += 1 + ((e & M_TWO) != 0);                      \
        DROP(M_DROP(e));                                    \
        e = multi[PEEK(LIT_TBITS)];                         \
    } while (0)
            TAKE_LITERAL_ENTRY();
            if (e & M_LIT) {
                TAKE_LITERAL_ENTRY();
                if (e & M_LIT) {
                    TAKE_LITERAL_ENTRY();
                    if (e & M_LIT)
                        TAKE_LITERAL_ENTRY();
                }
            }
#undef TAKE_LITERAL_ENTRY
            continue;
        }
        RESOLVE(e, lit, LIT_TBITS);
        saved = buf;
        DROP(E_DROP(e));
        if (E_KIND(e) == K_LIT) {
            out[pos++] = (uint8_t)E_VAL(e);     /* a literal codeword > LIT_TBITS */
            e = multi[PEEK(LIT_TBITS)];
            continue;
        }
        if (E_KIND(e) != K_MATCH) {
            if (E_KIND(e) == K_EOB)
                goto block_done;
            return -1;                          /* "invalid literal/length code" */
        }
        length = E_VAL(e) + EXTRA_BITS(e, saved);
        DECODE(d, dist, DIST_TBITS, saved);
        if (E_KIND(d) != K_MATCH)
            return -1;                          /* "invalid distance code" */
        distance = E_VAL(d) + EXTRA_BITS(d, saved);
        if (distance > pos)
            return -1;                          /* "invalid distance too far back" */
        /* Next entry first, so that its lookup overlaps the copy. */
        REFILL_WORD();
        e = multi[PEEK(LIT_TBITS)];
        if (t && taint_hit(t, pos, distance, length))
            taint_copy(t, out, pos, distance, length);
        else
            copy_match(out + pos, distance, length);
        pos += length;
    }

    /* Careful loop: one symbol at a time, every bound checked. */
    for (;;) {
        unsigned length, distance;
        uint64_t saved;

        REFILL_TO(48);
        DECODE(e, lit, LIT_TBITS, saved);
        if (E_KIND(e) == K_LIT) {
            if (pos == end)
                return -1;                      /* "too much image data" */
            out[pos++] = (uint8_t)E_VAL(e);
            continue;
        }
        if (E_KIND(e) != K_MATCH) {
            if (E_KIND(e) == K_EOB)
                break;
            return -1;
        }
        length = E_VAL(e) + EXTRA_BITS(e, saved);
        DECODE(e, dist, DIST_TBITS, saved);
        if (E_KIND(e) != K_MATCH)
            return -1;
        distance = E_VAL(e) + EXTRA_BITS(e, saved);
        if (distance > pos || length > end - pos)
            return -1;
        if (t && taint_hit(t, pos, distance, length)) {
            taint_copy(t, out, pos, distance, length);
            pos += length;
            continue;
        }
        for (; length > 0; length--, pos++)
            out[pos] = out[pos - distance];
    }
block_done:
    r->p = p;
    r->buf = buf;
    r->n = n;
    r->pos = pos;
    r->lit = r->multi = r->dist = NULL;
    return 0;
}

/* block_run without and with placeholders. On x86-64 there are BMI2 clones
 * too (shrx: the decode chain is shift, mask, load), picked at load time;
 * the results are the same. Not under ThreadSanitizer: its ifunc resolver
 * runs before TSan starts and crashes. */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(__SANITIZE_THREAD__)
#if __has_attribute(target_clones)
#define DECODE_CLONES __attribute__((target_clones("bmi2", "default")))
#endif
#endif
#ifndef DECODE_CLONES
#define DECODE_CLONES
#endif
DECODE_CLONES static int block_bytes(struct zrun *r, uint8_t *out, size_t end)
{
    return block_run(r, out, end, NULL);
}

DECODE_CLONES static int block_tracked(struct zrun *r, uint8_t *out, size_t end, struct taint *t)
{
    return block_run(r, out, end, t);
}

/* Reads the next block's header and inflates the block into out, whose
 * bytes from r->pos up to end are this call's to write; with t, tracking
 * placeholders (block_tracked). 0, or -1 for anything zlib rejects. */
static int block_next(struct zrun *r, uint8_t *out, size_t end, struct taint *t)
{
    const uint8_t *stored;
    size_t stored_len;
    int rc = block_begin(r, &stored, &stored_len);

    if (rc < 0)
        return -1;
    if (rc == 0)
        return t ? block_tracked(r, out, end, t) : block_bytes(r, out, end);
    if (stored_len > end - r->pos)
        return -1;
    memcpy(out + r->pos, stored, stored_len);
    r->pos += stored_len;
    return 0;
}

/* ---- giving the file's pages back ----
 *
 * The pipeline's loader holds each file whole while it decodes it, and the
 * inflate is most of a PNG's decode: 16 loaders inflating 4 MB photos hold
 * 60 MB that the memory bound (decoded pixels + 64 MiB) leaves to its
 * slack. When the runner allows it (give_back: the loader's own buffer)
 * and the stream lies in the caller's writable buffer, inflate_strict
 * gives the whole pages it has read back to the kernel, at block
 * boundaries once a MiB more is behind it (MADV_DONTNEED: a
 * private anonymous page then reads as zeros), so a loader holds the part
 * of the file it has yet to read. Pages are given back only well behind
 * the bit reader (stored blocks read their bytes from the buffer). The
 * file can then no longer go to libpng: a decode that cannot finish on
 * the fast path after giving pages back returns IP__EREREAD, and the
 * caller reads the file again and decodes it without giving back (so
 * libpng decides, as before). */
size_t ip__png_give_back_step = (size_t)1 << 20;

struct give_back {
    uint8_t *next;             /* the first byte not yet given back (NULL: off) */
    uint8_t *end;              /* the end of the caller's buffer */
    int given;                 /* some pages were given back */
};

/* Gives back the whole pages from gb->next up to upto, once there are at
 * least ip__png_give_back_step bytes of them. */
static void give_back_upto(struct give_back *gb, const uint8_t *upto)
{
    uint8_t *done;

    if (upto > gb->end || upto < gb->next || (size_t)(upto - gb->next) < ip__png_give_back_step)
        return;
    done = ip__pages_give_back(gb->next, (size_t)(upto - gb->next));
    gb->given |= done != gb->next;
    gb->next = done;   /* NULL (refused): no more */
}

/* Inflates the zlib stream z[0..zlen) into out[0..expect) with zlib's (and
 * libpng's) acceptance rules: header, block types, stored lengths, code
 * construction, symbol validity, distances within the output so far, an
 * output of exactly expect bytes, the stream ending exactly at zlen, the
 * Adler-32. Returns 0, or -1 for anything zlib would reject (and, to be
 * safe, for the window-size case of zrun_start). z must have STREAM_PAD
 * readable bytes after zlen; dyn holds the tables of dynamic blocks.
 * IP_EINTR when runner's stop flag is seen (looked at before each block).
 * gb (or NULL): pages of z's buffer to give back as they are read. */
static int inflate_strict(const uint8_t *z, size_t zlen, uint8_t *out, size_t expect,
                          struct block_tables *dyn, const struct ip__strip_runner *runner,
                          struct give_back *gb)
{
    struct zrun r;

    if (zrun_start(&r, z, zlen, expect, dyn))
        return -1;
    do {
        if (ip__runner_stopped(runner))
            return IP_EINTR;
        if (block_next(&r, out, expect, NULL))
            return -1;
        /* The bit reader holds up to 8 bytes below r.p; 64 more for margin. */
        if (gb && gb->next && (size_t)(r.p - z) > 8 + 64)
            give_back_upto(gb, r.p - 8 - 64);
    } while (!r.final);
    if (r.pos != expect || (zrun_bits(&r) + 7) / 8 != zlen - 4)
        return -1;
    if (libdeflate_adler32(1, out, expect) != be32(z + zlen - 4))
        return -1;                                  /* "incorrect data check" */
    return 0;
}

/* ---- strip-parallel inflate ----
 *
 * imgpar's encoder writes a huge PNG as strips of rows, each deflated on
 * its own but primed with the 32 KiB before it and ended with a sync flush
 * (codec_png_write.c), and records where each strip starts in an ipST
 * chunk before the image data: rows per strip (4 bytes), strip count n (4
 * bytes), then for strips 1..n-1 the offset of its first byte in the zlib
 * stream (8 bytes each, big-endian). Given a runner, each strip is
 * inflated by one task, all at once:
 * - A strip starts with no window: the 32 KiB before it are still being
 *   inflated by another task. So a byte copied from before the strip is
 *   a placeholder, and so is a byte copied from a placeholder; each match
 *   that writes one is recorded (struct taint). Once 32 KiB have come with
 *   no placeholder, no distance can reach one, and the strip goes on as a
 *   plain inflate. (On photos the placeholders are dense in the first
 *   32 KiB and thin out, but a few chains of copies may last the strip.)
 * - Each strip must end exactly where the next begins, at a block
 *   boundary, with exactly its rows' bytes (the last with the final block,
 *   then the Adler-32). That makes the result the serial inflate's: the
 *   serial decoder would read the next block header at the same bit.
 * - A strip is completed (its recorded matches replayed in the order they
 *   were decoded) once the 32 KiB before it are final: the strip before is
 *   complete, or it is inflated and has no placeholder in its last 32 KiB
 *   (the usual case: so strips are completed in parallel, not one after
 *   another). Whichever task makes a strip ready completes it. A strip's
 *   Adler-32 is taken in two parts, after the bytes a replay may change
 *   and then of those, and the strips' are combined at the end.
 * - Memory stays small whatever the chunk says: a layout with a strip over
 *   ip__png_strip_bytes_max (16 MiB; imgpar writes about 4 MiB) is ignored,
 *   so a task's bitmap is at most 2 MiB; a strip with records over a 16th
 *   of ip__png_records_max (32 MiB), or whose records would take those held
 *   past it, is inflated again afterwards by one thread, in order, with its
 *   window there. Anything unexpected (a layout that does not
 *   match the stream, a stream zlib rejects, no memory) leaves the whole
 *   stream to inflate_strict, which decides. The chunk is only a hint: a
 *   wrong one costs time, never bytes.
 * - Measured on a 20000x20000 photo mosaic (286 strips): placeholders last
 *   about the first MiB of each 4 MiB strip, a third of the matches there
 *   are recorded (9.2 million in all), and the tasks' work is about 1.2x
 *   a serial inflate's; the replays are 1% of it. */

#define WINDOW 32768u

enum { PS_RUNNING, PS_FAILED, PS_DONE, PS_DEFERRED };

atomic_uint_fast64_t ip__png_strips_parallel, ip__png_strips_deferred, ip__png_parallel_declined,
    ip__png_strips_unfiltered;
size_t ip__png_records_max = (size_t)32 << 20;
size_t ip__png_strip_bytes_max = (size_t)16 << 20;

struct pstrip {
    size_t out_start, out_end;  /* its part of the inflated rows */
    size_t in_start, in_end;    /* its deflate data in z: up to the next strip's, the last's to zlen - 4 */
    /* Under pinflate.lock while the tasks run: */
    int state;                  /* PS_*: PS_DONE once inflated */
    int clean_tail;             /* inflated, and no placeholder in its last WINDOW bytes */
    int claimed, complete;      /* being completed; completed (its bytes final) */
    struct replay *recs;        /* matches to replay once the bytes before are final */
    size_t nrecs;
    size_t head_len;            /* bytes from out_start that the replay may change */
    uint32_t adler;             /* Adler-32 of its bytes after the head, then of all once completed */
};

struct pinflate {
    const uint8_t *z;
    size_t zlen;
    uint8_t *out;
    struct pstrip *strips;
    uint32_t n;
    pthread_mutex_t lock;
    size_t rec_bytes;           /* records held */
};

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Inflates strip s (the last one when last); returns its new state. When
 * tracking, the bytes before it may not be there yet. */
static int strip_inflate(struct pinflate *pi, struct pstrip *s, int last, int tracking,
                         struct block_tables *dyn, int *clean_tail)
{
    size_t strip_len = s->out_end - s->out_start;
    struct taint t = {s->out_start, NULL, 0, 0, NULL, 0, 0, ip__png_records_max / 16 / sizeof(struct replay), 0};
    int state = PS_FAILED;
    struct zrun r;

    if (tracking && !(t.bits = calloc(strip_len / 64 + 1, sizeof *t.bits)))
        return PS_DEFERRED;
    memset(&r, 0, sizeof r);
    r.z = pi->z;
    r.zlen = pi->zlen;
    r.p = pi->z + s->in_start;
    r.pos = s->out_start;
    r.dyn = dyn;
    for (;;) {
        size_t bits = zrun_bits(&r);

        if (r.final) {
            if (last && r.pos == s->out_end && (bits + 7) / 8 == s->in_end)
                state = PS_DONE;
            break;
        }
        if (bits >= s->in_end * 8) {
            if (!last && bits == s->in_end * 8 && r.pos == s->out_end)
                state = PS_DONE;
            break;
        }
        if (tracking && r.pos - s->out_start >= t.mark_end + WINDOW)
            tracking = 0;   /* no distance reaches a placeholder any more */
        if (block_next(&r, pi->out, s->out_end, tracking ? &t : NULL))
            break;
    }
    free(t.bits);
    *clean_tail = t.mark_end == 0 ? strip_len >= WINDOW : t.mark_end + WINDOW <= strip_len;
    if (state == PS_DONE) {
        pthread_mutex_lock(&pi->lock);
        if (t.oom || pi->rec_bytes + t.nrecs * sizeof *t.recs > ip__png_records_max)
            state = PS_DEFERRED;
        else
            pi->rec_bytes += t.nrecs * sizeof *t.recs;
        pthread_mutex_unlock(&pi->lock);
    }
    if (state == PS_DONE) {
        s->recs = t.recs;
        s->nrecs = t.nrecs;
        s->head_len = t.rec_end;
        s->adler = libdeflate_adler32(1, pi->out + s->out_start + t.rec_end, strip_len - t.rec_end);
    } else {
        free(t.recs);
    }
    return state;
}

/* Completes strip s, whose 32 KiB before are final: replays its records
 * and makes its Adler-32 whole. */
static void strip_complete(struct pstrip *s, uint8_t *out)
{
    uint8_t *dst = out + s->out_start;
    size_t strip_len = s->out_end - s->out_start;

    for (size_t i = 0; i < s->nrecs; i++) {
        const struct replay *rec = &s->recs[i];
        uint8_t *d = dst + rec->at;

        if (rec->distance >= rec->length)
            memcpy(d, d - rec->distance, rec->length);
        else
            for (unsigned j = 0; j < rec->length; j++)
                d[j] = d[(ptrdiff_t)j - rec->distance];
    }
    s->adler = (uint32_t)adler32_combine(libdeflate_adler32(1, dst, s->head_len), s->adler,
                                         (z_off_t)(strip_len - s->head_len));
}

/* Strip k can be completed now. The caller holds pi->lock. */
static int strip_ready(const struct pinflate *pi, uint32_t k)
{
    const struct pstrip *s = &pi->strips[k], *prev = k > 0 ? s - 1 : NULL;

    return k < pi->n && s->state == PS_DONE && !s->claimed &&
           (!prev || prev->complete || (prev->state == PS_DONE && prev->clean_tail));
}

/* Completes strip k and then each following strip that this makes ready.
 * Called with pi->lock held (released while replaying). */
static void complete_from(struct pinflate *pi, uint32_t k)
{
    for (; strip_ready(pi, k); k++) {
        struct pstrip *s = &pi->strips[k];

        s->claimed = 1;
        pthread_mutex_unlock(&pi->lock);
        strip_complete(s, pi->out);
        pthread_mutex_lock(&pi->lock);
        free(s->recs);
        s->recs = NULL;
        pi->rec_bytes -= s->nrecs * sizeof *s->recs;
        s->complete = 1;
    }
}

static int strip_task(void *ctx, uint32_t k, struct ip_error *err)
{
    struct pinflate *pi = ctx;
    struct pstrip *s = &pi->strips[k];
    struct block_tables *dyn = malloc(sizeof *dyn);
    int state = PS_DEFERRED, clean_tail = 0;

    (void)err;
    if (dyn)
        state = strip_inflate(pi, s, k + 1 == pi->n, k > 0, dyn, &clean_tail);
    free(dyn);
    pthread_mutex_lock(&pi->lock);
    s->state = state;
    s->clean_tail = clean_tail;
    complete_from(pi, k);       /* the strip before was final */
    complete_from(pi, k + 1);   /* this strip's tail is final */
    pthread_mutex_unlock(&pi->lock);
    return 0;
}

/* The strips of the ipST chunk for this image and stream: a calloc'd
 * array of *n, or NULL when the chunk does not fit them. */
static struct pstrip *layout_strips(const struct png_head *h, size_t zlen, uint32_t *n)
{
    const uint8_t *body = h->layout;
    size_t fb = h->rowbytes + 1;
    uint32_t rows, count;
    struct pstrip *s;

    if (!body || h->layout_len < 8)
        return NULL;
    rows = be32(body);
    count = be32(body + 4);
    if (rows == 0 || count < 2 || h->layout_len != 8 + 8 * ((size_t)count - 1) ||
        (uint64_t)(count - 1) * rows >= h->height || (uint64_t)count * rows < h->height)
        return NULL;
    if (!(s = calloc(count, sizeof *s)))
        return NULL;
    for (uint32_t k = 0; k < count; k++) {
        uint64_t end_row = (uint64_t)(k + 1) * rows < h->height ? (uint64_t)(k + 1) * rows : h->height;

        s[k].out_start = (size_t)k * rows * fb;
        s[k].out_end = (size_t)end_row * fb;
        if (s[k].out_end - s[k].out_start > ip__png_strip_bytes_max) {
            free(s);
            return NULL;
        }
        s[k].in_start = k == 0 ? 2 : (size_t)be64(body + 8 * k);
        s[k].in_end = zlen - 4;
        if (k > 0) {
            if (be64(body + 8 * k) >= zlen - 4 || s[k].in_start <= s[k - 1].in_start) {
                free(s);
                return NULL;
            }
            s[k - 1].in_end = s[k].in_start;
        }
    }
    *n = count;
    return s;
}

/* Inflates z into out as inflate_strict does, strip by strip on runner's
 * threads. Returns 0 (done), 1 (not done: inflate_strict decides) or the
 * runner's failure (err set). */
static int inflate_parallel(const struct png_head *h, const uint8_t *z, uint8_t *out,
                            const struct ip__strip_runner *runner, struct ip_error *err)
{
    struct pinflate pi;
    struct block_tables *dyn = NULL;
    uint32_t adler = 1;
    struct zrun r;
    int rc = 1;

    memset(&pi, 0, sizeof pi);
    pi.z = z;
    pi.zlen = h->idat_len;
    pi.out = out;
    if (zrun_start(&r, z, pi.zlen, h->filtered_size, NULL) || (z[0] >> 4) != 7 ||
        !(pi.strips = layout_strips(h, pi.zlen, &pi.n)))
        return 1;
    pthread_mutex_init(&pi.lock, NULL);
    if ((rc = runner->run(runner->runner_ctx, pi.n, strip_task, &pi, err)) != 0)
        goto done;
    rc = 1;
    /* In order: the strips left over (each with its window there now), and
     * those still to complete; then the Adler-32. */
    for (uint32_t k = 0; k < pi.n; k++) {
        struct pstrip *s = &pi.strips[k];
        int clean_tail;

        atomic_fetch_add(s->state == PS_DONE ? &ip__png_strips_parallel : &ip__png_strips_deferred, 1);
        if (s->state == PS_DEFERRED) {
            if (!dyn && !(dyn = malloc(sizeof *dyn)))
                goto done;
            s->state = strip_inflate(&pi, s, k + 1 == pi.n, 0, dyn, &clean_tail);
        }
        if (s->state != PS_DONE)
            goto done;
        if (!s->complete)
            strip_complete(s, out);
        s->complete = 1;
        adler = (uint32_t)adler32_combine(adler, s->adler, (z_off_t)(s->out_end - s->out_start));
    }
    if (adler == be32(z + pi.zlen - 4)) {
        rc = 0;
        if (runner->used)
            runner->used(runner->runner_ctx);
    }
done:
    if (rc == 1)
        atomic_fetch_add(&ip__png_parallel_declined, 1);
    for (uint32_t k = 0; k < pi.n; k++)
        free(pi.strips[k].recs);
    pthread_mutex_destroy(&pi.lock);
    free(pi.strips);
    free(dyn);
    return rc;
}

/* ---- unfiltering ---- */

static inline uint8_t paeth_pred(int a, int b, int c)
{
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);

    if (pb < pa) {
        a = b;
        pa = pb;
    }
    return (uint8_t)(pc < pa ? c : a);
}

/* Rows with a previous row (prev != NULL); dst may be src. Generic C with
 * bpp a compile-time constant after inlining. */
static inline __attribute__((always_inline)) void
unfilter_c(unsigned type, uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n,
           size_t bpp)
{
    size_t i;

    switch (type) {
    case 1:
        for (i = 0; i < bpp; i++)
            dst[i] = src[i];
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++)
            dst[i] = (uint8_t)(src[i] + prev[i]);
        break;
    case 3:
        for (i = 0; i < bpp; i++)
            dst[i] = (uint8_t)(src[i] + (prev[i] >> 1));
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + ((dst[i - bpp] + prev[i]) >> 1));
        break;
    case 4:
        for (i = 0; i < bpp; i++)
            dst[i] = (uint8_t)(src[i] + prev[i]);
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + paeth_pred(dst[i - bpp], prev[i], prev[i - bpp]));
        break;
    default:
        if (dst != src)
            memmove(dst, src, n);   /* unfilter_packed: dst overlaps src */
        break;
    }
}

#if defined(__SSE2__)
/* Loads 4 bytes for a 3- or 4-byte pixel: one byte past a 3-byte pixel is
 * always readable (a previous row is followed by the current one, and the
 * scratch rows have ROWS_PAD bytes after the last row); lane 3 is then
 * ignored. */
static inline __m128i load_px(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128((int)v);
}

static inline void store_px(uint8_t *p, __m128i v, size_t bpp)
{
    uint32_t x = (uint32_t)_mm_cvtsi128_si32(v);

    memcpy(p, &x, bpp);
}

/* Paeth and Average for 3 or 4 bytes per pixel, one pixel at a time in
 * 16-bit lanes (the row is a dependency chain through the left pixel).
 * Paeth as "the nearer of a and b (a on a tie), unless c is strictly
 * nearer than both", the same choice as the spec's order with a shorter
 * chain. */
static inline __attribute__((always_inline)) void
paeth_sse2(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n, size_t bpp)
{
    const __m128i zero = _mm_setzero_si128(), low = _mm_set1_epi16(0xff);
    __m128i a = zero, c = zero;
    size_t i;

    for (i = 0; i < n; i += bpp) {
        __m128i b = _mm_unpacklo_epi8(load_px(prev + i), zero);
        __m128i x = _mm_unpacklo_epi8(load_px(src + i), zero);
        __m128i bc = _mm_sub_epi16(b, c);
        __m128i pa = _mm_max_epi16(bc, _mm_sub_epi16(zero, bc));
        __m128i ac = _mm_sub_epi16(a, c);
        __m128i abc = _mm_add_epi16(ac, bc);
        __m128i pb = _mm_max_epi16(ac, _mm_sub_epi16(zero, ac));
        __m128i pc = _mm_max_epi16(abc, _mm_sub_epi16(zero, abc));
        __m128i take_b = _mm_cmpgt_epi16(pa, pb);
        __m128i ab = _mm_or_si128(_mm_and_si128(take_b, b), _mm_andnot_si128(take_b, a));
        __m128i take_c = _mm_cmpgt_epi16(_mm_min_epi16(pa, pb), pc);
        __m128i pred = _mm_or_si128(_mm_and_si128(take_c, c), _mm_andnot_si128(take_c, ab));
        a = _mm_and_si128(_mm_add_epi16(pred, x), low);
        store_px(dst + i, _mm_packus_epi16(a, a), bpp);
        c = b;
    }
}

/* The same with SSE4.1's pabsw, pblendvb and pmovzxbw (shorter chain);
 * used when the CPU has it. */
#if defined(__GNUC__) && !defined(__SSE4_1__)
#define HAVE_PAETH_SSE41 1
#include <smmintrin.h>

__attribute__((target("sse4.1"))) static void
paeth_sse41(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n, size_t bpp)
{
    const __m128i zero = _mm_setzero_si128(), low = _mm_set1_epi16(0xff);
    __m128i a = zero, c = zero;
    size_t i;

    for (i = 0; i < n; i += bpp) {
        __m128i b = _mm_cvtepu8_epi16(load_px(prev + i));
        __m128i x = _mm_cvtepu8_epi16(load_px(src + i));
        __m128i bc = _mm_sub_epi16(b, c);
        __m128i pa = _mm_abs_epi16(bc);
        __m128i ac = _mm_sub_epi16(a, c);
        __m128i pb = _mm_abs_epi16(ac);
        __m128i pc = _mm_abs_epi16(_mm_add_epi16(ac, bc));
        __m128i ab = _mm_blendv_epi8(a, b, _mm_cmpgt_epi16(pa, pb));
        __m128i pred = _mm_blendv_epi8(ab, c, _mm_cmpgt_epi16(_mm_min_epi16(pa, pb), pc));
        a = _mm_and_si128(_mm_add_epi16(pred, x), low);
        store_px(dst + i, _mm_packus_epi16(a, a), bpp);
        c = b;
    }
}

__attribute__((target("sse4.1"))) static void
paeth_sse41_3(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n)
{
    paeth_sse41(dst, src, prev, n, 3);
}

__attribute__((target("sse4.1"))) static void
paeth_sse41_4(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n)
{
    paeth_sse41(dst, src, prev, n, 4);
}
#endif

static inline __attribute__((always_inline)) void
avg_sse2(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n, size_t bpp)
{
    const __m128i zero = _mm_setzero_si128(), low = _mm_set1_epi16(0xff);
    __m128i a = zero;
    size_t i;

    for (i = 0; i < n; i += bpp) {
        __m128i b = _mm_unpacklo_epi8(load_px(prev + i), zero);
        __m128i x = _mm_unpacklo_epi8(load_px(src + i), zero);
        a = _mm_and_si128(_mm_add_epi16(_mm_srli_epi16(_mm_add_epi16(a, b), 1), x), low);
        store_px(dst + i, _mm_packus_epi16(a, a), bpp);
    }
}
#endif

/* One row of n bytes. prev is the unfiltered row above, NULL for the first
 * row (then Up is None, Paeth is Sub, Average halves the left byte only). */
static void unfilter_row(unsigned type, uint8_t *dst, const uint8_t *src, const uint8_t *prev,
                         size_t n, unsigned bpp, int sse41, int tail_readable)
{
    (void)sse41;   /* used only where the SSE4.1 Paeth is built */
    if (!prev) {
        size_t i;

        switch (type) {
        case 1:
        case 4:
            type = 1;
            break;
        case 3:
            for (i = 0; i < bpp && i < n; i++)
                dst[i] = src[i];
            for (; i < n; i++)
                dst[i] = (uint8_t)(src[i] + (dst[i - bpp] >> 1));
            return;
        default:
            type = 0;
            break;
        }
        /* Sub and None need no previous row. */
        prev = src;
    }
#if defined(__SSE2__)
    /* The SSE2 loops load 4 bytes per 3-byte pixel: one past src's row. */
    if ((bpp == 4 || (bpp == 3 && tail_readable)) && (type == 3 || type == 4)) {
#if defined(HAVE_PAETH_SSE41)
        if (type == 4 && sse41) {
            if (bpp == 3)
                paeth_sse41_3(dst, src, prev, n);
            else
                paeth_sse41_4(dst, src, prev, n);
            return;
        }
#endif
        if (type == 4) {
            if (bpp == 3)
                paeth_sse2(dst, src, prev, n, 3);
            else
                paeth_sse2(dst, src, prev, n, 4);
        } else {
            if (bpp == 3)
                avg_sse2(dst, src, prev, n, 3);
            else
                avg_sse2(dst, src, prev, n, 4);
        }
        return;
    }
#endif
    switch (bpp) {
    case 1: unfilter_c(type, dst, src, prev, n, 1); break;
    case 2: unfilter_c(type, dst, src, prev, n, 2); break;
    case 3: unfilter_c(type, dst, src, prev, n, 3); break;
    case 4: unfilter_c(type, dst, src, prev, n, 4); break;
    case 6: unfilter_c(type, dst, src, prev, n, 6); break;
    default: unfilter_c(type, dst, src, prev, n, 8); break;
    }
}

/* Unfilters rows [y0, y1) of the inflated data (rowbytes + 1 each, filter
 * byte first) into dst rows of dst_stride bytes; prev is the unfiltered row
 * above y0 (NULL: none). end_readable: bytes past the last row's input may
 * be read (scratch with padding), which lets the last row take the SIMD
 * loads too. sse41: the SSE4.1 Paeth may be used. dst == rows + 1 with
 * dst_stride == rowbytes + 1 unfilters in place; dst == rows with
 * dst_stride == rowbytes packs the rows in place, row y moving y + 1 bytes
 * down: every byte is read before a write reaches it, and row y - 1, the
 * previous row, is final before row y starts. */
static void unfilter_span(const struct png_head *h, const uint8_t *rows, uint8_t *dst, size_t dst_stride,
                          uint32_t y0, uint32_t y1, const uint8_t *prev, int end_readable, int sse41)
{
    size_t in_stride = h->rowbytes + 1;

    for (uint32_t y = y0; y < y1; y++) {
        const uint8_t *in = rows + (size_t)y * in_stride;
        uint8_t *out = dst + (size_t)y * dst_stride;

        unfilter_row(in[0], out, in + 1, prev, h->rowbytes, h->bpp, sse41, end_readable || y + 1 < h->height);
        prev = out;
    }
}

/* Unfilters the inflated rows at buf (nothing readable after them) into
 * rows of rowbytes at buf. */
static void unfilter_packed(const struct png_head *h, uint8_t *buf, int sse41)
{
    unfilter_span(h, buf, buf, h->rowbytes, 0, h->height, NULL, 0, sse41);
}

/* A huge PNG's strips unfiltered at once (unfilter_parallel). */
struct punfilter {
    const struct png_head *h;
    uint8_t *buf;      /* the inflated rows, rowbytes + 1 each, unfiltered to rowbytes each */
    uint32_t strip_rows;
    int sse41;
    uint8_t *heads;    /* strip k >= 1: the first y0 + 1 bytes of its first row, at head_at(k) */
};

/* Strip k starts at row y0 = k * strip_rows; its saved head is y0 + 1 bytes. */
static size_t head_at(const struct punfilter *pu, uint32_t k)
{
    /* sum over j = 1..k-1 of (j * strip_rows + 1) */
    return (size_t)k * (k - 1) / 2 * pu->strip_rows + (k - 1);
}

/* Strip k's rows unfiltered and packed, as unfilter_packed does for the
 * whole image: row y's rowbytes + 1 input bytes at y * (rowbytes + 1),
 * its rowbytes output bytes at y * rowbytes. Strips run at once, so for
 * k >= 1 the first y0 + 1 bytes of the first row's output, which lie over
 * the end of strip k - 1's input and over this row's filter byte (which
 * strip k - 1's SIMD loads may read), go to pu->heads and are put in place
 * when every strip is done. Every other byte a strip writes lies below its
 * own input and at or above its strip's input start, when rowbytes > y0:
 * unfilter_parallel checks that. The first row is None or Sub: it needs
 * no row above. */
static int unfilter_task(void *ctx, uint32_t k, struct ip_error *err)
{
    const struct punfilter *pu = ctx;
    const struct png_head *h = pu->h;
    size_t stride = h->rowbytes + 1, rb = h->rowbytes;
    uint32_t y0 = k * pu->strip_rows, y1 = h->height - y0 > pu->strip_rows ? y0 + pu->strip_rows : h->height;
    uint8_t *buf = pu->buf, *first;
    const uint8_t *in = buf + (size_t)y0 * stride;

    if (k == 0) {
        unfilter_span(h, buf, buf, rb, y0, y1, NULL, 0, pu->sse41);
        return 0;
    }
    if (!(first = malloc(rb)))
        return ip_error_set(err, IP_ENOMEM, "out of memory for a PNG strip");
    unfilter_row(in[0], first, in + 1, NULL, rb, h->bpp, pu->sse41, y0 + 1 < h->height);
    memcpy(pu->heads + head_at(pu, k), first, (size_t)y0 + 1);
    memcpy(buf + (size_t)y0 * rb + y0 + 1, first + y0 + 1, rb - y0 - 1);
    unfilter_span(h, buf, buf, rb, y0 + 1, y1, first, 0, pu->sse41);
    free(first);
    return 0;
}

/* After inflate_parallel: unfilters and packs the rows at buf by the
 * strips of the ipST layout on runner's threads (see unfilter_task). Only
 * when the first row of every strip is None or Sub, as imgpar has written
 * them since its PNG strips could be unfiltered apart
 * (ip__png_strip_first_sub), and rows are wider in bytes than the last
 * strip's first row number; else (files with Up, Average or Paeth there,
 * tall narrow images) it returns 1 and unfilter_packed runs. Returns 0, 1,
 * or the runner's failure (err set). */
static int unfilter_parallel(const struct png_head *h, uint8_t *buf, const struct ip__strip_runner *runner,
                             int sse41, struct ip_error *err)
{
    struct punfilter pu = {h, buf, be32(h->layout), sse41, NULL};
    size_t stride = h->rowbytes + 1;
    uint32_t n = (h->height + pu.strip_rows - 1) / pu.strip_rows;
    int rc;

    if ((uint64_t)(n - 1) * pu.strip_rows >= h->rowbytes)
        return 1;
    for (uint32_t k = 1; k < n; k++)
        if (buf[(size_t)k * pu.strip_rows * stride] > 1)
            return 1;
    if (!(pu.heads = malloc(head_at(&pu, n))))
        return 1;
    rc = runner->run(runner->runner_ctx, n, unfilter_task, &pu, err);
    if (rc == 0) {
        for (uint32_t k = 1; k < n; k++)
            memcpy(buf + (size_t)k * pu.strip_rows * h->rowbytes, pu.heads + head_at(&pu, k),
                   (size_t)k * pu.strip_rows + 1);
        atomic_fetch_add(&ip__png_strips_unfiltered, n);
    }
    free(pu.heads);
    return rc;
}

static int filter_bytes_valid(const struct png_head *h, const uint8_t *rows)
{
    size_t stride = h->rowbytes + 1;
    unsigned bad = 0;
    uint32_t y;

    for (y = 0; y < h->height; y++)
        bad |= rows[(size_t)y * stride] > 4;
    return !bad;
}

/* Largest palette index in the unfiltered rows (in place: row y at
 * rows + y * (rowbytes + 1) + 1). */
static unsigned max_index(const struct png_head *h, const uint8_t *rows)
{
    size_t stride = h->rowbytes + 1, x;
    uint8_t m = 0;
    uint32_t y;

    for (y = 0; y < h->height; y++) {
        const uint8_t *row = rows + (size_t)y * stride + 1;
        for (x = 0; x < h->rowbytes; x++)
            m = row[x] > m ? row[x] : m;
    }
    return m;
}

static void expand_palette(const struct png_head *h, const uint8_t *rows, struct ip_image *img)
{
    size_t stride = h->rowbytes + 1, x;
    uint32_t y;

    for (y = 0; y < h->height; y++) {
        const uint8_t *row = rows + (size_t)y * stride + 1;
        uint8_t *out = img->pixels + (size_t)y * img->stride;

        if (img->channels == 4) {
            for (x = 0; x < h->width; x++)
                memcpy(out + 4 * x, h->palette[row[x]], 4);
        } else {
            /* 4-byte copies overlapping the next pixel, except the last. */
            for (x = 0; x + 1 < h->width; x++)
                memcpy(out + 3 * x, h->palette[row[x]], 4);
            memcpy(out + 3 * x, h->palette[row[x]], 3);
        }
    }
}

static void scale_16(const struct png_head *h, const uint8_t *rows, struct ip_image *img)
{
    size_t stride = h->rowbytes + 1, samples = (size_t)h->width * h->samples, x;
    uint32_t y;

    for (y = 0; y < h->height; y++) {
        const uint8_t *row = rows + (size_t)y * stride + 1;
        uint8_t *out = img->pixels + (size_t)y * img->stride;

        for (x = 0; x < samples; x++)
            out[x] = ip__scale_16_to_8((uint16_t)(row[2 * x] << 8 | row[2 * x + 1]));
    }
}

/* ---- entry point ---- */

/* Inflates the stream z and makes the image: 0, NOT_HANDLED, or a
 * negative code from ip__pixels_alloc. gb: as for inflate_strict. */
static int decode_stream(const struct png_head *h, const uint8_t *z, const struct ip_decode_opts *opts,
                         const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err,
                         struct scratch *s, int sse41, struct give_back *gb)
{
    int rc, strips;

    if (!s->tables && !(s->tables = malloc(sizeof *s->tables)))
        return NOT_HANDLED;
    if (h->color_type != 3 && h->bit_depth == 8) {
        /* Straight into the output: its buffer has rows of rowbytes + 1, the
         * inflated rows are unfiltered in place and packed to rowbytes. */
        rc = ip__pixels_alloc_room(opts, out, h->width, h->height, h->out_channels, h->rowbytes + 1, err);
        if (rc)
            return rc;
        rc = runner && runner->run && h->layout ? inflate_parallel(h, z, out->pixels, runner, err) : 1;
        strips = rc == 0;
        if (rc == 1) {
            int zrc = inflate_strict(z, h->idat_len, out->pixels, h->filtered_size, s->tables, runner, gb);
            rc = zrc == IP_EINTR ? ip_error_set(err, zrc, "interrupted") : zrc ? NOT_HANDLED : 0;
        }
        if (rc < 0) {   /* the runner's failure, or stopped */
            ip__pixels_free(opts, out);
            return rc;
        }
        if (rc || !filter_bytes_valid(h, out->pixels)) {
            ip__pixels_free(opts, out);
            return NOT_HANDLED;
        }
        rc = strips ? unfilter_parallel(h, out->pixels, runner, sse41, err) : 1;
        if (rc < 0) {
            ip__pixels_free(opts, out);
            return rc;
        }
        if (rc)
            unfilter_packed(h, out->pixels, sse41);
        return 0;
    }

    if (scratch_reserve(&s->rows, &s->rows_cap, h->filtered_size + ROWS_PAD))
        return NOT_HANDLED;
    memset(s->rows + h->filtered_size, 0, ROWS_PAD);
    rc = inflate_strict(z, h->idat_len, s->rows, h->filtered_size, s->tables, runner, gb);
    if (rc == IP_EINTR)
        return ip_error_set(err, rc, "interrupted");
    if (rc || !filter_bytes_valid(h, s->rows))
        return NOT_HANDLED;

    unfilter_span(h, s->rows, s->rows + 1, h->rowbytes + 1, 0, h->height, NULL, 1, sse41);
    if (h->color_type == 3) {
        if (max_index(h, s->rows) >= h->num_palette)
            return NOT_HANDLED;   /* libpng: "Read palette index exceeding num_palette" */
        rc = ip__pixels_alloc(opts, out, h->width, h->height, h->out_channels, err);
        if (rc)
            return rc;
        expand_palette(h, s->rows, out);
    } else {   /* 16 bits: parse_chunks declines every other depth */
        rc = ip__pixels_alloc(opts, out, h->width, h->height, h->out_channels, err);
        if (rc)
            return rc;
        scale_16(h, s->rows, out);
    }
    return 0;
}

static int decode(const uint8_t *data, size_t len, uint8_t *writable, const struct ip_decode_opts *opts,
                  const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err,
                  struct scratch *s, int sse41)
{
    struct png_head h;
    struct give_back gb;
    uint8_t *gaps = NULL;
    size_t ignored;
    int rc, direct, compact;

    if (parse_chunks(data, len, opts, &h))
        return NOT_HANDLED;
    /* The limits, before any image-sized allocation (as ip__pixels_alloc
     * would check them; failures are left to the libpng path's message). */
    if (ip_image_check(h.width, h.height, h.out_channels, &opts->limits, &ignored, NULL))
        return NOT_HANDLED;
    if (h.idat_len > SIZE_MAX - STREAM_PAD)
        return NOT_HANDLED;
    /* Data that cannot inflate to the image (a hostile header): no scratch. */
    if (h.filtered_size / DEFLATE_MAX_RATIO > h.idat_len)
        return NOT_HANDLED;
    /* Several IDATs are compacted in place when the caller allows it and
     * the saved gaps stay small (a file of tiny IDATs is gathered). */
    direct = h.color_type != 3 && h.bit_depth == 8;
    compact = writable && h.idat_chunks > 1 && h.idat_chunks - 1 <= h.idat_len / 64 + 1024;
    if (h.filtered_size > ip__png_fast_max && (!direct || (h.idat_chunks > 1 && !compact)))
        return NOT_HANDLED;
    /* Pages are given back only from the caller's buffer (not gathered scratch). */
    gb.next = writable && runner && runner->give_back && (h.idat_chunks == 1 || compact) ? writable : NULL;
    gb.end = gb.next ? writable + len : NULL;
    gb.given = 0;

    if (h.idat_chunks > 1 && !compact) {
        if (scratch_reserve(&s->idat, &s->idat_cap, h.idat_len + STREAM_PAD))
            return NOT_HANDLED;
        gather_idat(data, &h, s->idat);
        memset(s->idat + h.idat_len, 0, STREAM_PAD);
        return decode_stream(&h, s->idat, opts, runner, out, err, s, sse41, NULL);
    }
    if (h.idat_chunks > 1) {
        gaps = malloc(12 * (size_t)(h.idat_chunks - 1));
        if (!gaps)
            return NOT_HANDLED;
        compact_idat(writable, &h, gaps);
    }
    /* One IDAT is followed by its CRC and IEND: >= STREAM_PAD bytes. */
    rc = decode_stream(&h, data + h.first_idat + 8, opts, runner, out, err, s, sse41, &gb);
    if (rc == NOT_HANDLED && gb.given)
        rc = IP__EREREAD;   /* the file is gone: the caller reads it again */
    else if (rc && gaps && !gb.given)   /* libpng reads the file next, or the caller may report it */
        restore_idat(writable, &h, gaps);
    free(gaps);
    return rc;
}

int ip__png_decode_fast(const uint8_t *data, size_t len, uint8_t *writable, const struct ip_decode_opts *opts,
                        const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err)
{
    struct scratch *s;
    int owned, rc, mode;

    mode = ip__switch_get(&fast_switch);
    if (!mode)
        return NOT_HANDLED;
    pthread_once(&tables_once, tables_init);
    s = scratch_get(&owned);
    if (!s)
        return NOT_HANDLED;
    rc = decode(data, len, writable == data ? writable : NULL, opts, runner, out, err, s, mode == 1 && cpu_sse41);
    if (owned)
        scratch_destroy(s);
    else
        scratch_trim(s);
    return rc;
}
