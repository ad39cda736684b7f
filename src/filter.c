/* Filter chain and band engine.
 *
 * DESIGN: ip_chain_run_rows computes output rows [y0, y1) of a chain of
 * filters, reading src rows y0 - halo .. y1 + halo (clamped) and writing only
 * those dst rows. It runs on whichever thread or process the executor gives
 * the band, touches nothing shared but src (read) and its own dst rows, and
 * keeps its working memory in a caller-owned struct ip_scratch, so bands can
 * run concurrently and a whole-image run is just the band [0, height).
 *
 * Rows are pulled through the chain one at a time: stage k's output row y is
 * produced on demand by stage_row(k, y), which asks stage k-1 for the rows it
 * needs. Each stage sees its input rows requested in increasing order, each
 * exactly once per call, so:
 *  - gray is pointwise: it converts the previous stage's row straight into the
 *    buffer its consumer gave it (a blur's pad row), so the pixels are touched
 *    once and no intermediate image exists;
 *  - a blur keeps a ring of its horizontal-pass rows (2r+1 rows, box 2r+2) and
 *    runs the vertical pass over the ring into the consumer's buffer; a box
 *    also keeps running vertical sums across the band.
 * Memory is therefore width * channels * sum(2 r_k + 2) elements plus a few
 * rows, whatever the band height, and nothing is recomputed inside a band;
 * only the halo rows are recomputed by the neighbouring band.
 *
 * Every index is reflected (BORDER_REFLECT_101) in global image coordinates
 * for the stage's own input, and every output element is a fixed function
 * of its input window (integer arithmetic, or double with one fixed order of
 * operations where filter_blur.c says so), so any band split gives the
 * bytes of the whole-image run.
 *
 * The scratch block grows (never shrinks) to the largest layout seen and is
 * carved into the per-stage buffers at the start of each call. Scratch
 * memory is mapped from the kernel, never taken from malloc: a --procs
 * worker forked again by the I/O thread allocates it while the parent's
 * other threads may hold an allocator's lock (glibc's malloc is fork-safe,
 * ASan's is not, and the child would wait for that lock forever). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "imgpar/filter.h"
#include "filter_internal.h"

#define SCRATCH_ALIGN 64
#define SCRATCH_ROUND 65536   /* block sizes, so that growth maps seldom */

struct ip_scratch {
    unsigned char *block;   /* carved into the stage buffers of one call */
    size_t capacity;        /* usable bytes in block */
};

enum { BUF_IN_ROW, BUF_PAD, BUF_RING, BUF_ROWS, BUF_VSUM, BUF_ALPHA_TAPS, BUF_COUNT };

struct stage {
    const struct ip_filter *filter;
    uint32_t in_channels;
    int alpha;              /* blur of a 2- or 4-channel image: premultiplied path */
    int passthrough;        /* gray of a 1- or 2-channel image: returns its input */
    size_t off[BUF_COUNT];  /* byte offsets in the scratch block, before carving */
    uint8_t *in_row;        /* where the previous stage writes a row this stage reads */
    void *pad;              /* width + 2r pixels: one input row with reflected margins */
    unsigned char *ring;    /* ring_rows horizontal-pass rows, row y in slot y % ring_rows */
    size_t ring_rows, ring_row_bytes;
    const void **rows;      /* 2r + 1 ring rows the vertical pass reads */
    void *vsum;             /* box: running vertical window sums */
    double *alpha_taps;     /* Gaussian with alpha: its half kernel in double, r + 1 taps */
    int64_t next_row;       /* next horizontal row to compute, -1 before the first */
    int64_t last_out;       /* box: output row whose window vsum holds, -1 if none */
};

struct run {
    const struct ip_image *src;
    uint32_t width, height;
    int count;
    struct stage stages[IP_CHAIN_MAX];
};

void ip_chain_init(struct ip_chain *chain)
{
    memset(chain, 0, sizeof *chain);
}

static struct ip_filter *chain_append(struct ip_chain *chain, enum ip_filter_kind kind)
{
    struct ip_filter *f;

    if (chain->count < 0 || chain->count >= IP_CHAIN_MAX)
        return NULL;
    f = &chain->filters[chain->count];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    return f;
}

int ip_chain_add_gray(struct ip_chain *chain, enum ip_gray_weights weights)
{
    struct ip_filter *f;

    if (!chain || (weights != IP_GRAY_601 && weights != IP_GRAY_709))
        return IP_EINVAL;
    if (!(f = chain_append(chain, IP_FILTER_GRAY)))
        return IP_EINVAL;
    f->gray = weights;
    chain->count++;
    return 0;
}

int ip_chain_add_gauss(struct ip_chain *chain, double sigma)
{
    struct ip_filter *f;

    /* Written so that NaN fails too. */
    if (!chain || !(sigma > 0.0 && sigma <= 100.0))
        return IP_EINVAL;
    if (!(f = chain_append(chain, IP_FILTER_GAUSS)))
        return IP_EINVAL;
    f->sigma = sigma;
    ip__gauss_taps(sigma, &f->radius, f->taps);
    chain->count++;
    return 0;
}

int ip_chain_add_box(struct ip_chain *chain, int radius)
{
    struct ip_filter *f;

    if (!chain || radius < 1 || radius > IP_BLUR_MAX_RADIUS)
        return IP_EINVAL;
    if (!(f = chain_append(chain, IP_FILTER_BOX)))
        return IP_EINVAL;
    f->radius = radius;
    chain->count++;
    return 0;
}

void ip_chain_default(struct ip_chain *chain)
{
    ip_chain_init(chain);
    ip_chain_add_gray(chain, IP_GRAY_601);
    ip_chain_add_gauss(chain, 2.0);
}

static uint32_t gray_channels(uint32_t channels)
{
    return channels == 3 ? 1 : channels == 4 ? 2 : channels;
}

uint32_t ip_chain_out_channels(const struct ip_chain *chain, uint32_t in_channels)
{
    for (int k = 0; k < chain->count && k < IP_CHAIN_MAX; k++)
        if (chain->filters[k].kind == IP_FILTER_GRAY)
            in_channels = gray_channels(in_channels);
    return in_channels;
}

uint32_t ip_chain_halo(const struct ip_chain *chain)
{
    uint32_t halo = 0;

    for (int k = 0; k < chain->count && k < IP_CHAIN_MAX; k++)
        if (chain->filters[k].kind != IP_FILTER_GRAY && chain->filters[k].radius > 0)
            halo += (uint32_t)chain->filters[k].radius;
    return halo;
}

static void *map_bytes(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct ip_scratch *ip_scratch_new(void)
{
    return map_bytes(sizeof(struct ip_scratch));   /* zero-filled */
}

void ip_scratch_free(struct ip_scratch *scratch)
{
    if (scratch) {
        if (scratch->block)
            munmap(scratch->block, scratch->capacity);
        munmap(scratch, sizeof *scratch);
    }
}

/* The chain is plain data that may come from anywhere (a forked worker, a
 * hand-built struct): check what the kernels rely on for their arithmetic. */
static int filter_valid(const struct ip_filter *f)
{
    int32_t total = 0;

    switch (f->kind) {
    case IP_FILTER_GRAY:
        return f->gray == IP_GRAY_601 || f->gray == IP_GRAY_709;
    case IP_FILTER_BOX:
        return f->radius >= 1 && f->radius <= IP_BLUR_MAX_RADIUS;
    case IP_FILTER_GAUSS:
        if (!(f->sigma > 0.0 && f->sigma <= 100.0) || f->radius != ip__gauss_radius(f->sigma))
            return 0;
        for (int i = 0; i <= 2 * f->radius; i++) {
            if (f->taps[i] < 0 || f->taps[i] > (1 << IP_GAUSS_SHIFT)
                || f->taps[i] != f->taps[2 * f->radius - i])
                return 0;
            total += f->taps[i];
        }
        return total == (1 << IP_GAUSS_SHIFT);
    }
    return 0;
}

static int image_valid(const struct ip_image *img, size_t *row_bytes)
{
    if (!img || !img->pixels || img->width == 0 || img->height == 0
        || img->channels < 1 || img->channels > 4)
        return 0;
    if (ip_mul_size(img->width, img->channels, row_bytes) != 0 || img->stride < *row_bytes)
        return 0;
    return 1;
}

/* Appends a buffer of a*b*c bytes at an aligned offset; -1 on overflow. */
static int plan_buffer(size_t *total, size_t *off, size_t a, size_t b, size_t c)
{
    size_t bytes, start;

    if (ip_mul_size(a, b, &bytes) != 0 || ip_mul_size(bytes, c, &bytes) != 0)
        return -1;
    start = (*total + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
    if (start < *total || bytes > SIZE_MAX - start - SCRATCH_ALIGN)
        return -1;
    *off = start;
    *total = start + bytes;
    return 0;
}

/* Fills in the stages and the scratch layout; returns the bytes needed. */
static int plan_run(struct run *run, const struct ip_chain *chain, uint32_t channels,
                    size_t *total)
{
    const size_t width = run->width;

    *total = 0;
    for (int k = 0; k < run->count; k++) {
        struct stage *st = &run->stages[k];
        const struct ip_filter *f = &chain->filters[k];
        size_t r = f->radius > 0 ? (size_t)f->radius : 0;
        size_t elem, padded, window;
        int rc = 0;

        memset(st, 0, sizeof *st);
        st->filter = f;
        st->in_channels = channels;
        st->next_row = -1;
        st->last_out = -1;
        if (f->kind == IP_FILTER_GRAY) {
            st->passthrough = channels < 3;
            if (!st->passthrough)
                rc = plan_buffer(total, &st->off[BUF_IN_ROW], width, channels, 1);
            channels = gray_channels(channels);
            if (rc)
                return IP_ETOOBIG;
            continue;
        }
        st->alpha = channels == 2 || channels == 4;
        window = 2 * r + 1 + (f->kind == IP_FILTER_BOX);
        st->ring_rows = window < run->height ? window : run->height;
        if (f->kind == IP_FILTER_GAUSS)
            elem = st->alpha ? sizeof(double) : sizeof(uint16_t);
        else
            elem = sizeof(uint32_t);
        padded = width + 2 * r;
        rc |= ip_mul_size(width * channels, elem, &st->ring_row_bytes);
        if (st->alpha)
            rc |= plan_buffer(total, &st->off[BUF_IN_ROW], width, channels, 1);
        rc |= plan_buffer(total, &st->off[BUF_PAD], padded, channels,
                          st->alpha ? sizeof(uint16_t) : 1);
        rc |= plan_buffer(total, &st->off[BUF_RING], st->ring_rows, width * channels, elem);
        rc |= plan_buffer(total, &st->off[BUF_ROWS], 2 * r + 1, sizeof(void *), 1);
        if (f->kind == IP_FILTER_BOX)
            rc |= plan_buffer(total, &st->off[BUF_VSUM], width, channels,
                              st->alpha ? sizeof(uint64_t) : sizeof(uint32_t));
        if (f->kind == IP_FILTER_GAUSS && st->alpha)
            rc |= plan_buffer(total, &st->off[BUF_ALPHA_TAPS], r + 1, sizeof(double), 1);
        if (rc)
            return IP_ETOOBIG;
    }
    return 0;
}

static int scratch_reserve(struct ip_scratch *scratch, size_t bytes)
{
    unsigned char *block;

    if (bytes <= scratch->capacity)
        return 0;
    bytes = (bytes + SCRATCH_ROUND - 1) / SCRATCH_ROUND * SCRATCH_ROUND;   /* mmap: page-aligned */
    block = map_bytes(bytes);
    if (!block)
        return IP_ENOMEM;
    if (scratch->block)
        munmap(scratch->block, scratch->capacity);
    scratch->block = block;
    scratch->capacity = bytes;
    return 0;
}

static void carve(struct run *run, unsigned char *block)
{
    if (!block)
        return;     /* nothing to carve: only pass-through stages */
    for (int k = 0; k < run->count; k++) {
        struct stage *st = &run->stages[k];
        st->in_row = block + st->off[BUF_IN_ROW];
        st->pad = block + st->off[BUF_PAD];
        st->ring = block + st->off[BUF_RING];
        st->rows = (const void **)(void *)(block + st->off[BUF_ROWS]);
        st->vsum = block + st->off[BUF_VSUM];
        st->alpha_taps = (double *)(void *)(block + st->off[BUF_ALPHA_TAPS]);
        if (st->alpha && st->filter->kind == IP_FILTER_GAUSS)
            ip__gauss_weights(st->filter->sigma, st->filter->radius, st->alpha_taps);
    }
}

/* Reflected margins of a pad row whose middle (width pixels) is filled. */
#define FILL_MARGINS(T, pad, width, channels, r)                                    \
    do {                                                                            \
        T *mid_ = (T *)(pad) + (size_t)(r) * (channels);                            \
        for (int x_ = 1; x_ <= (r); x_++) {                                         \
            uint32_t l_ = ip__reflect101(-x_, (width));                             \
            uint32_t h_ = ip__reflect101((int64_t)(width) - 1 + x_, (width));       \
            for (uint32_t c_ = 0; c_ < (channels); c_++) {                          \
                mid_[-(int64_t)x_ * (channels) + c_] = mid_[(size_t)l_ * (channels) + c_]; \
                mid_[((size_t)(width) - 1 + (size_t)x_) * (channels) + c_] =        \
                    mid_[(size_t)h_ * (channels) + c_];                             \
            }                                                                       \
        }                                                                           \
    } while (0)

static const uint8_t *stage_row(struct run *run, int k, uint32_t y, uint8_t *buf);

/* Horizontal pass of stage k's input row y into its ring slot. */
static void fill_ring(struct run *run, int k, uint32_t y)
{
    struct stage *st = &run->stages[k];
    const struct ip_filter *f = st->filter;
    const int r = f->radius;
    const uint32_t c = st->in_channels, width = run->width;
    const size_t n = (size_t)width * c;
    void *slot = st->ring + (y % st->ring_rows) * st->ring_row_bytes;

    if (!st->alpha) {
        uint8_t *mid = (uint8_t *)st->pad + (size_t)r * c;
        const uint8_t *in = stage_row(run, k - 1, y, mid);
        if (in != mid)
            memcpy(mid, in, n);
        FILL_MARGINS(uint8_t, st->pad, width, c, r);
        if (f->kind == IP_FILTER_GAUSS)
            ip__gauss_h(st->pad, n, c, f->taps + r, r, slot);
        else
            ip__box_h(st->pad, width, c, r, slot);
    } else {
        uint16_t *mid = (uint16_t *)st->pad + (size_t)r * c;
        ip__premultiply(stage_row(run, k - 1, y, st->in_row), width, c, mid);
        FILL_MARGINS(uint16_t, st->pad, width, c, r);
        if (f->kind == IP_FILTER_GAUSS)
            ip__gauss_h_alpha(st->pad, n, c, st->alpha_taps, r, slot);
        else
            ip__box_h_alpha(st->pad, width, c, r, slot);
    }
}

static const void *ring_row(const struct stage *st, int64_t y, uint32_t height)
{
    return st->ring + (ip__reflect101(y, height) % st->ring_rows) * st->ring_row_bytes;
}

/* Output row y of blur stage k into out (width * channels bytes). */
static void blur_row(struct run *run, int k, uint32_t y, uint8_t *out)
{
    struct stage *st = &run->stages[k];
    const struct ip_filter *f = st->filter;
    const int r = f->radius;
    const uint32_t c = st->in_channels, width = run->width, height = run->height;
    const size_t n = (size_t)width * c;
    int64_t lo = (int64_t)y - r < 0 ? 0 : (int64_t)y - r;
    int64_t hi = (int64_t)y + r + 1 > height ? height : (int64_t)y + r + 1;

    if (st->next_row < 0)
        st->next_row = lo;
    while (st->next_row < hi)
        fill_ring(run, k, (uint32_t)st->next_row++);
    for (int j = 0; j <= 2 * r; j++)
        st->rows[j] = ring_row(st, (int64_t)y - r + j, height);

    if (f->kind == IP_FILTER_GAUSS) {
        if (st->alpha)
            ip__gauss_v_alpha(st->rows, width, c, st->alpha_taps, r, out);
        else
            ip__gauss_v(st->rows, n, f->taps + r, r, out);
        return;
    }

    if (st->last_out >= 0 && st->last_out + 1 == (int64_t)y) {
        const uint32_t *add = ring_row(st, (int64_t)y + r, height);
        const uint32_t *sub = ring_row(st, (int64_t)y - r - 1, height);
        if (st->alpha)
            ip__box_v_step_alpha(st->vsum, add, sub, n);
        else
            ip__box_v_step(st->vsum, add, sub, n);
    } else {
        memset(st->vsum, 0, n * (st->alpha ? sizeof(uint64_t) : sizeof(uint32_t)));
        for (int j = 0; j <= 2 * r; j++) {
            if (st->alpha)
                ip__box_v_step_alpha(st->vsum, st->rows[j], NULL, n);
            else
                ip__box_v_step(st->vsum, st->rows[j], NULL, n);
        }
    }
    st->last_out = y;
    if (st->alpha)
        ip__box_v_out_alpha(st->vsum, width, c, r, out);
    else
        ip__box_v_out(st->vsum, n, r, out);
}

/* Output row y of stage k (k < 0: the source). Returns a pointer to the row:
 * buf, which the stage filled, or a row it passes through unchanged. */
static const uint8_t *stage_row(struct run *run, int k, uint32_t y, uint8_t *buf)
{
    struct stage *st;

    if (k < 0)
        return run->src->pixels + (size_t)y * run->src->stride;
    st = &run->stages[k];
    if (st->passthrough)
        return stage_row(run, k - 1, y, buf);
    if (st->filter->kind == IP_FILTER_GRAY) {
        const uint8_t *in = stage_row(run, k - 1, y, st->in_row);
        ip__gray_row(in, buf, run->width, st->in_channels, st->filter->gray);
        return buf;
    }
    blur_row(run, k, y, buf);
    return buf;
}

int ip_chain_run_rows(const struct ip_chain *chain, const struct ip_image *src,
                      struct ip_image *dst, uint32_t y0, uint32_t y1, struct ip_scratch *scratch)
{
    struct run run;
    struct ip_scratch *owned = NULL;
    size_t src_row, dst_row, need;
    uintptr_t s0, s1, d0, d1;
    int rc;

    if (!chain || chain->count < 0 || chain->count > IP_CHAIN_MAX)
        return IP_EINVAL;
    for (int k = 0; k < chain->count; k++)
        if (!filter_valid(&chain->filters[k]))
            return IP_EINVAL;
    if (!image_valid(src, &src_row) || !image_valid(dst, &dst_row))
        return IP_EINVAL;
    if (dst->width != src->width || dst->height != src->height
        || dst->channels != ip_chain_out_channels(chain, src->channels))
        return IP_EINVAL;
    if (y0 > y1 || y1 > src->height)
        return IP_EINVAL;
    /* Blurs read rows around the ones they write: src and dst must not overlap. */
    s0 = (uintptr_t)src->pixels;
    s1 = s0 + (src->height - 1) * src->stride + src_row;
    d0 = (uintptr_t)dst->pixels;
    d1 = d0 + (dst->height - 1) * dst->stride + dst_row;
    if (s0 < d1 && d0 < s1)
        return IP_EINVAL;
    if (y0 == y1)
        return 0;

    run.src = src;
    run.width = src->width;
    run.height = src->height;
    run.count = chain->count;
    if ((rc = plan_run(&run, chain, src->channels, &need)) != 0)
        return rc;
    if (!scratch) {
        if (!(owned = scratch = ip_scratch_new()))
            return IP_ENOMEM;
    }
    if ((rc = scratch_reserve(scratch, need)) != 0)
        goto fail;
    carve(&run, scratch->block);

    for (uint32_t y = y0; y < y1; y++) {
        uint8_t *out = dst->pixels + (size_t)y * dst->stride;
        const uint8_t *row = stage_row(&run, run.count - 1, y, out);
        if (row != out)
            memcpy(out, row, dst_row);
    }
    rc = 0;
fail:
    ip_scratch_free(owned);
    return rc;
}

int ip_chain_run(const struct ip_chain *chain, const struct ip_image *src,
                 struct ip_image *dst, struct ip_scratch *scratch)
{
    if (!src)
        return IP_EINVAL;
    return ip_chain_run_rows(chain, src, dst, 0, src->height, scratch);
}
