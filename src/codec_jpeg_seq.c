/* Where the strips of a huge sequential JPEG without restart markers start.
 *
 * DESIGN
 * - Why: without restart markers a sequential JPEG is one entropy-coded
 *   segment. The state at MCU row r (the bit where it starts and the DC
 *   predictions) is known only by decoding everything before it, so such
 *   a file decoded on one core: 1.75x at 16 cores on a 20000x20000 JPEG
 *   (BENCHMARKS.md), where a file with restart markers gets 10x.
 * - How: speculative decoding. Huffman codes fall into step: a decoder
 *   started at a wrong bit soon starts an MCU at the same bit as the true
 *   decoder, and from there both decode the same (an MCU's parse depends
 *   only on the bits from its start; the DC predictions shift values, not
 *   the parse). The guesses decode leniently (seq_block: a bad code or a
 *   run past coefficient 63 ends the block instead of failing), so a wrong
 *   guess runs on until it falls into step; the strips later decode
 *   strictly, so bad data still fails there. The segment is cut into
 *   chunks of about ip__jpeg_seq_chunk bytes.
 *   Phase 0, every chunk at once: decode from the chunk's first byte as if
 *   an MCU started there, dropping the coefficients; record where each of
 *   the first WINDOW MCUs starts (a chunk of fewer MCUs goes on past its
 *   end to WINDOW_PAST), and every CHECK_EVERY-th MCU's state (MCU count
 *   and DC predictions counted from the chunk's start), until an MCU
 *   starts past the chunk.
 *   Phase 1, every chunk at once: go on into the next chunk until an MCU
 *   starts at the same bit as one of the next chunk's window MCUs: there
 *   the next chunk is in step (the meeting).
 *   ip__jpeg_seq_finish, on one thread, chains them: chunk 0 is in step
 *   from its first bit; at the meeting of chunk k (in step) and chunk k + 1
 *   the true MCU count and predictions are chunk k's plus chunk k's
 *   offsets, which gives chunk k + 1's offsets, and every checkpoint of
 *   chunk k + 1 from there on is a true state. A chunk that met the next
 *   before it was in step itself (a small one) looks again from where it
 *   is; one that met none (the next never fell into step within its
 *   window: short chunks, or the blocks of an MCU sharing tables, which
 *   can keep a guess a block out of step for good) is followed on this
 *   thread, keeping checkpoints, to the next chunk it meets or to the end.
 *   The last chunk must end, in step, after exactly the frame's MCUs. A
 *   strip starts from the nearest true state before its first MCU and
 *   skips the MCUs between (ip__jpeg_prog_open_seq).
 * - Anything else fails it, and the file is decoded whole by libjpeg with
 *   its usual result: the wrong number of MCUs, whole bytes left before
 *   EOI, data running out; and a bad code anywhere makes a strip fail. The
 *   pixels never depend on the chunking.
 * - Cost: phase 0 is a second Huffman pass over the file (without stores),
 *   spread over the cores; each chunk's start until it falls into step
 *   (usually a few MCUs) is decoded twice.
 * - Threads: within a phase, calls for different chunks on any threads;
 *   finish and locate after the last. Memory: WINDOW records per chunk
 *   (32 KiB) and one per CHECK_EVERY MCUs (about 1 MiB for 20000x20000). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "codec_jpeg_bits.h"

#define WINDOW 1024u
#define WINDOW_PAST 256u   /* a small chunk's window goes on past it to this many MCUs */
#define CHECK_EVERY 64
#define MAX_CHUNKS 256u
#define MAX_ENDS 8   /* MCUs of under 8 bits at the end of the data (flat images) */

size_t ip__jpeg_seq_chunk = 256u << 10;

struct chunk {
    size_t from, to;                 /* the chunk: MCUs that start in these bytes */
    struct ip__jpeg_seq_at *win;     /* where its first WINDOW MCUs start */
    uint32_t nwin;
    struct ip__jpeg_seq_at *cps;     /* every CHECK_EVERY-th MCU */
    size_t ncps, capcps;
    int done;                        /* phase 0 reached the chunk's end */
    struct bits br;                  /* there: the reader, at the first MCU past the chunk */
    struct ip__jpeg_seq_at at;       /* and the state */
    int64_t ends[MAX_ENDS];          /* last chunk: MCU counts at which only padding was left */
    int nends;
    int met;                         /* phase 1 met the next chunk ... */
    struct ip__jpeg_seq_at meet;     /* ... with this state ... */
    uint32_t meet_j;                 /* ... at the next chunk's window record meet_j */
};

struct ip__jpeg_seq {
    struct ip__jpeg_seq_scan sc;
    struct huff tables[8];
    int64_t total;                   /* MCUs in the scan */
    uint32_t per_row;
    uint32_t window;                 /* window records per chunk (WINDOW or fewer) */
    uint32_t nchunks;
    struct chunk *chunks;
    struct ip__jpeg_seq_at *known;   /* after finish: true states, in order */
    size_t nknown;
};

const struct ip__jpeg_seq_scan *ip__jpeg_seq_scan(const struct ip__jpeg_seq *s)
{
    return &s->sc;
}

uint32_t ip__jpeg_seq_chunks(const struct ip__jpeg_seq *s)
{
    return s->nchunks;
}

uint32_t ip__jpeg_seq_mcus_per_row(const struct ip__jpeg_seq *s)
{
    return s->per_row;
}

/* The bit offset in the file of the next bit the reader gives, or
 * UINT64_MAX once it has given padding. The bits in the buffer came from
 * the bytes before p, a stuffed 0xFF 0x00 counting as one. */
static uint64_t bits_pos(const struct bits *b, const uint8_t *data)
{
    int left = b->n - b->pad, bytes;
    const uint8_t *q = b->p;

    if (left < 0)
        return UINT64_MAX;
    bytes = (left + 7) >> 3;
    for (int i = 0; i < bytes; i++)
        q -= q[-1] == 0x00 && q[-2] == 0xFF ? 2 : 1;
    return 8 * (uint64_t)(q - data) + (uint64_t)((8 - (left & 7)) & 7);
}

/* Only padding is left before EOI. */
static int at_end(struct bits *b, const struct ip__jpeg_seq_scan *q)
{
    if (b->n < 57)
        refill(b);
    return b->pad > 0 && b->n - b->pad < 8 && b->p == q->data + q->end;
}

static int push_cp(struct chunk *c, const struct ip__jpeg_seq_at *st)
{
    if (c->ncps == c->capcps) {
        size_t cap = c->capcps ? 2 * c->capcps : 64;
        struct ip__jpeg_seq_at *n = realloc(c->cps, cap * sizeof *n);

        if (!n)
            return IP_ENOMEM;
        c->cps = n;
        c->capcps = cap;
    }
    c->cps[c->ncps++] = *st;
    return 0;
}

/* A reader at bit `pos` of the file. */

/* Phase 0 for chunk k. */
static int chunk_run(struct ip__jpeg_seq *s, uint32_t k)
{
    struct chunk *c = &s->chunks[k];
    const struct ip__jpeg_seq_scan *q = &s->sc;
    int last = k + 1 == s->nchunks;
    size_t from = c->from;
    struct ip__jpeg_seq_at st;
    struct bits b;

    if (from > q->start && q->data[from - 1] == 0xFF)
        from++;   /* a stuffed zero: start after it */
    memset(&st, 0, sizeof st);
    bits_start(&b, q->data, from, q->end);
    for (;;) {
        int end;

        st.pos = bits_pos(&b, q->data);
        if (st.pos == UINT64_MAX)
            return 0;   /* the data ran out inside the MCU before: not in step */
        if (!last && !c->done && st.pos >= 8 * (uint64_t)c->to) {
            c->br = b;
            c->at = st;
            c->done = 1;
        }
        if (!last && c->done && (c->nwin >= WINDOW_PAST || c->nwin == s->window))
            return 0;
        end = last && at_end(&b, q) && c->nends < MAX_ENDS;
        if (c->nwin < s->window)
            c->win[c->nwin++] = st;
        if (!c->done && st.mcu % CHECK_EVERY == 0 && push_cp(c, &st))
            return IP_ENOMEM;
        if (end) {
            /* Under 8 bits left: the scan's end if this chunk is in step,
             * unless they hold more MCUs (a flat image's last blocks take
             * 6 bits each); ip__jpeg_seq_finish picks. The chunk goes on
             * until the data runs out. */
            c->ends[c->nends++] = st.mcu;
            c->done = 1;
        }
        seq_mcu_skip(&b, q, st.dc, 1);
        st.mcu++;
    }
}

/* From reader b and state st of chunk k (in step there), on until an MCU
 * starts where one of chunk k + 1's window MCUs did. */
static void meet(struct ip__jpeg_seq *s, uint32_t k, struct bits b, struct ip__jpeg_seq_at st)
{
    struct chunk *c = &s->chunks[k], *n = c + 1;
    uint32_t j = 0;

    c->met = 0;
    for (;;) {
        st.pos = bits_pos(&b, s->sc.data);
        if (st.pos == UINT64_MAX)
            return;
        while (j < n->nwin && n->win[j].pos < st.pos)
            j++;
        if (j == n->nwin)
            return;   /* not in step within the window */
        if (n->win[j].pos == st.pos) {
            c->meet = st;
            c->meet_j = j;
            c->met = 1;
            return;
        }
        seq_mcu_skip(&b, &s->sc, st.dc, 1);
        st.mcu++;
    }
}

/* Phase 1 for chunk k: on from its end into chunk k + 1. */
static int chunk_meet(struct ip__jpeg_seq *s, uint32_t k)
{
    struct chunk *c = &s->chunks[k];

    if (c->done && c[1].done)
        meet(s, k, c->br, c->at);
    return 0;
}

/* Chunk k from the window MCU where it is in step (a chunk smaller than
 * the distance to that MCU met the next one before it: again from there). */
static void meet_again(struct ip__jpeg_seq *s, uint32_t k, const struct ip__jpeg_seq_at *in_step)
{
    struct bits b;

    bits_at(&b, s->sc.data, in_step->pos, s->sc.end);
    meet(s, k, b, *in_step);
}

int ip__jpeg_seq_find(struct ip__jpeg_seq *s, int phase, uint32_t k)
{
    if (k >= s->nchunks)
        return 0;
    if (phase == 0)
        return chunk_run(s, k);
    return k + 1 < s->nchunks ? chunk_meet(s, k) : 0;
}

/* x shifted by the offsets d (MCU count and DC predictions). */
static struct ip__jpeg_seq_at shifted(const struct ip__jpeg_seq_at *x, const struct ip__jpeg_seq_at *d)
{
    struct ip__jpeg_seq_at r = *x;

    r.mcu += d->mcu;
    for (int i = 0; i < 4; i++)
        r.dc[i] += d->dc[i];
    return r;
}

/* The offsets that make `local` (a chunk's own count) read as `truth`. */
static struct ip__jpeg_seq_at offsets(const struct ip__jpeg_seq_at *truth, const struct ip__jpeg_seq_at *local)
{
    struct ip__jpeg_seq_at d;

    memset(&d, 0, sizeof d);
    d.mcu = truth->mcu - local->mcu;
    for (int i = 0; i < 4; i++)
        d.dc[i] = truth->dc[i] - local->dc[i];
    return d;
}

/* Appends a true state (in order of MCU). */
static int add_known(struct ip__jpeg_seq *s, const struct ip__jpeg_seq_at *x, size_t *cap)
{
    if (x->mcu == s->total)
        return 0;   /* the end of the scan, where no strip starts */
    if (x->mcu < 0 || x->mcu > s->total || (s->nknown && x->mcu < s->known[s->nknown - 1].mcu))
        return DECLINE;
    if (s->nknown == *cap) {
        size_t n = *cap ? 2 * *cap : 256;
        struct ip__jpeg_seq_at *k = realloc(s->known, n * sizeof *k);

        if (!k)
            return IP_ENOMEM;
        s->known = k;
        *cap = n;
    }
    s->known[s->nknown++] = *x;
    return 0;
}

#define FOLLOWED_TO_END 2

/* Chunk k is in step at *here (its own count, offsets *d), and did not meet
 * chunk k + 1 (which never fell into step within its window): decode from
 * here on this thread, keeping a true state every CHECK_EVERY MCUs, until
 * an MCU starts where one of a later chunk's window MCUs did (0: *k, *here
 * and *d are that chunk's) or the frame's last MCU ends the data
 * (FOLLOWED_TO_END). */
static int follow(struct ip__jpeg_seq *s, uint32_t *k, struct ip__jpeg_seq_at *here, struct ip__jpeg_seq_at *d,
                  size_t *cap, const atomic_int *stop)
{
    struct ip__jpeg_seq_at st = *here, truth;
    uint32_t t = *k + 1, j = 0;   /* the chunk whose window is searched, and where */
    struct bits b;
    int rc;

    bits_at(&b, s->sc.data, here->pos, s->sc.end);
    for (;;) {
        const struct chunk *n = &s->chunks[t];

        st.pos = bits_pos(&b, s->sc.data);
        if (st.pos == UINT64_MAX)
            return DECLINE;
        if (at_end(&b, &s->sc) && st.mcu + d->mcu == s->total)
            return FOLLOWED_TO_END;
        while (j < n->nwin && n->win[j].pos < st.pos)
            j++;
        if (j < n->nwin && n->win[j].pos == st.pos) {
            truth = shifted(&st, d);
            *here = n->win[j];
            *d = offsets(&truth, here);
            *k = t;
            return 0;
        }
        if (j == n->nwin && t + 1 < s->nchunks) {
            t++;   /* past chunk t's window: try the next chunk's */
            j = 0;
            continue;
        }
        truth = shifted(&st, d);
        if (st.mcu % 4096 == 0 && stop && atomic_load_explicit(stop, memory_order_relaxed))
            return DECLINE;   /* the caller is stopping: it will not use the plan */
        if (st.mcu % CHECK_EVERY == 0 && truth.mcu > s->known[s->nknown - 1].mcu) {
            rc = add_known(s, &truth, cap);
            if (rc)
                return rc;
        }
        seq_mcu_skip(&b, &s->sc, st.dc, 1);
        st.mcu++;
    }
}

int ip__jpeg_seq_finish(struct ip__jpeg_seq *s, const atomic_int *stop)
{
    struct ip__jpeg_seq_at d, here, truth;   /* d: offsets of chunk k, true state minus its own count */
    size_t cap = 0;
    uint32_t k = 0;
    int rc;

    free(s->known);
    s->known = NULL;
    s->nknown = 0;
    /* Chunk 0 is in step from the first bit, or the data is bad there. */
    if (!s->chunks[0].done || s->chunks[0].nwin == 0 || s->chunks[0].win[0].pos != 8 * (uint64_t)s->sc.start)
        return DECLINE;
    here = s->chunks[0].win[0];
    memset(&d, 0, sizeof d);
    for (;;) {
        struct chunk *c = &s->chunks[k];

        truth = shifted(&here, &d);
        rc = add_known(s, &truth, &cap);
        for (size_t i = 0; !rc && i < c->ncps; i++) {
            if (c->cps[i].pos > here.pos) {
                truth = shifted(&c->cps[i], &d);
                rc = add_known(s, &truth, &cap);
            }
        }
        if (rc)
            return rc;
        if (k + 1 == s->nchunks) {
            /* In step to the end: it ran out of data after exactly the
             * frame's MCUs (the padding after them holds no whole byte). */
            for (int i = 0; c->done && i < c->nends; i++)
                if (c->ends[i] + d.mcu == s->total)
                    return 0;
            return DECLINE;
        }
        if (c->met && c->meet.pos < here.pos)
            meet_again(s, k, &here);   /* it met chunk k + 1 before it was in step itself */
        if (c->met) {
            truth = shifted(&c->meet, &d);
            here = s->chunks[k + 1].win[c->meet_j];
            d = offsets(&truth, &here);
            k++;
            continue;
        }
        rc = follow(s, &k, &here, &d, &cap, stop);
        if (rc == FOLLOWED_TO_END)
            return 0;
        if (rc)
            return rc;
    }
}

void ip__jpeg_seq_locate(const struct ip__jpeg_seq *s, int64_t mcu, struct ip__jpeg_seq_at *at)
{
    size_t lo = 0, hi = s->nknown;   /* known[lo].mcu <= mcu < known[hi].mcu */

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->known[mid].mcu <= mcu)
            lo = mid;
        else
            hi = mid;
    }
    *at = s->known[lo];
}

void ip__jpeg_seq_close(struct ip__jpeg_seq *s)
{
    if (!s)
        return;
    for (uint32_t k = 0; s->chunks && k < s->nchunks; k++) {
        free(s->chunks[k].win);
        free(s->chunks[k].cps);
    }
    free(s->chunks);
    free(s->known);
    free(s);
}

/* One of the frame's tables for ip__jpeg_huff_build. */
static int build(struct huff *h, const JHUFF_TBL *t, int is_dc)
{
    struct table_def def;

    memset(&def, 0, sizeof def);
    ip__jpeg_table_def(&def, t);
    return ip__jpeg_huff_build(h, &def, is_dc) ? DECLINE : 0;
}

/* The SOS segment (libjpeg's get_sos and jdhuff.c's start_pass checks):
 * every component once, Ss 0, Se 63, Ah and Al 0, defined tables. */
static int parse_scan(struct ip__jpeg_seq *s, const struct ip__jpeg_prog_frame *f, const uint8_t *q)
{
    int n = q[0];

    if (n != f->ncomp)
        return DECLINE;
    s->sc.ncomp = n;
    s->sc.nblk = 0;
    for (int i = 0; i < n; i++) {
        int t = q[2 + 2 * i], j = ip__jpeg_scan_comp(f, s->sc.comp, i, q[1 + 2 * i]), blocks;

        if (j < 0)
            return DECLINE;
        s->sc.comp[i] = j;
        if ((t >> 4) >= NUM_HUFF_TBLS || (t & 15) >= NUM_HUFF_TBLS || build(&s->tables[2 * i], f->dc[t >> 4], 1) ||
            build(&s->tables[2 * i + 1], f->ac[t & 15], 0))
            return DECLINE;
        s->sc.dc[i] = &s->tables[2 * i];
        s->sc.ac[i] = &s->tables[2 * i + 1];
        blocks = n == 1 ? 1 : f->comp[j].h * f->comp[j].v;
        if (s->sc.nblk + blocks > 10)
            return DECLINE;   /* libjpeg's D_MAX_BLOCKS_IN_MCU */
        for (int b = 0; b < blocks; b++)
            s->sc.blk[s->sc.nblk++] = (uint8_t)i;
    }
    if (q[1 + 2 * n] != 0 || q[2 + 2 * n] != 63 || q[3 + 2 * n] != 0)
        return DECLINE;
    return 0;
}

int ip__jpeg_seq_open(const struct ip__jpeg_prog_frame *f, const uint8_t *data, size_t len, size_t scan,
                      struct ip__jpeg_seq **out)
{
    struct ip__jpeg_seq *s;
    size_t sos, end, bytes, chunk = ip__jpeg_seq_chunk ? ip__jpeg_seq_chunk : 1;
    int rc;

    *out = NULL;
    if (f->ncomp < 1 || f->ncomp > 4 || f->restart_interval || scan >= len || ip__jpeg_find_sos(data, scan, &sos))
        return DECLINE;
    end = ip__jpeg_next_marker(data, len, scan);
    if (end + 1 >= len || data[end + 1] != 0xD9 || end == scan)
        return DECLINE;   /* another scan, a stray marker, or no EOI */
    s = calloc(1, sizeof *s);
    if (!s)
        return IP_ENOMEM;
    s->sc.data = data;
    s->sc.len = len;
    s->sc.start = scan;
    s->sc.end = end;
    rc = parse_scan(s, f, data + sos + 4);
    if (f->ncomp == 1) {
        s->per_row = f->comp[0].bw;
        s->total = (int64_t)f->comp[0].bw * f->comp[0].bh;
    } else {
        s->per_row = (f->width + 8u * (uint32_t)f->max_h - 1) / (8u * (uint32_t)f->max_h);
        s->total = (int64_t)s->per_row * ((f->height + 8u * (uint32_t)f->max_v - 1) / (8u * (uint32_t)f->max_v));
    }
    /* A window never holds more MCUs than the scan (small files). */
    s->window = s->total < WINDOW ? (uint32_t)s->total + 1 : WINDOW;
    bytes = end - scan;
    s->nchunks = bytes / chunk < 1 ? 1 : bytes / chunk > MAX_CHUNKS ? MAX_CHUNKS : (uint32_t)(bytes / chunk);
    if (!rc && (s->chunks = calloc(s->nchunks, sizeof *s->chunks)) == NULL)
        rc = IP_ENOMEM;
    for (uint32_t k = 0; !rc && k < s->nchunks; k++) {
        struct chunk *c = &s->chunks[k];

        c->from = scan + (size_t)((uint64_t)bytes * k / s->nchunks);
        c->to = scan + (size_t)((uint64_t)bytes * (k + 1) / s->nchunks);
        c->win = malloc(s->window * sizeof *c->win);
        if (!c->win)
            rc = IP_ENOMEM;
    }
    if (rc) {
        ip__jpeg_seq_close(s);
        return rc;
    }
    *out = s;
    return 0;
}
