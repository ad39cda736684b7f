/* Loader stage: read files and decode them into the arena.
 *
 * DESIGN: --io-threads threads each take the next task from the source
 * (under src_lock), take an in-flight slot (--queue), read the whole file
 * into one buffer (4 MiB per call, stopping at a cancel between calls),
 * and decode it straight into an arena block that holds both the decoded
 * image and room for the filter output, so no pixels are ever copied
 * between stages. Decoding holds a CPU token (-j); waiting for
 * arena memory (--mem) gives the token back. A file that fails is reported
 * at once and costs nothing else. A decoded image that the pipeline lets
 * stay here (ip__filter_inline: filtered whole under --threads or --procs,
 * or no filter at all) is filtered (or a worker process filters it while
 * this thread waits), encoded and written by this thread
 * (ip__writer_finish) with its own scratch and output buffer; any other
 * goes on to the dispatcher. The last loader to finish closes the load
 * queue; cancellation makes every blocking call return IP_EINTR.
 * A huge sequential JPEG is decoded by a strip team (decode_team; without
 * restart markers the team first finds where its strips start), and a
 * huge PNG that imgpar wrote in strips is inflated by one (the decoder is
 * lent run_strips). A huge image decoded on one core (any other PNG; a
 * progressive JPEG) would spend about a fifth
 * of its decode in the kernel, clearing the fresh pages it writes: a
 * prefault helper (below) does that on an idle core, ahead of the decoder.
 * When the loaders together could hold much input at once (IP__HELD_MAX),
 * a PNG's decode is let give the file's pages back as it inflates them
 * (codec_png_fast.c); if it then fails, the file is read again and decoded
 * without that, so the error is the usual one.
 * Every whole decode is also lent the pipeline's cancel flag, so Ctrl-C
 * stops a huge image's single-threaded decode in milliseconds (the
 * decoders look at it between deflate blocks, rows, or libjpeg steps);
 * only stb_image's formats decode to the end first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec_internal.h"
#include "pipeline_internal.h"

#define ALIGN_UP(x) (((x) + 63u) & ~(size_t)63u)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14; older kernels refuse it (EINVAL) */
#endif
#define PREFAULT_STEP (2u << 20)

/* IMGPAR_PREFAULT=0 in the environment turns the prefault helper off
 * (benchmarks compare the two in one binary). */
static struct ip__switch prefault_switch = {-1, "IMGPAR_PREFAULT"};

/* The prefault helper: one thread, on a CPU token that was free, asks the
 * kernel to map the decoded image's pages writable (MADV_POPULATE_WRITE),
 * 2 MiB at a time from the top, the order in which the decoder writes
 * them. The kernel clears each page as it maps it; it never writes a byte
 * the decoder wrote (a page already mapped is left as it is), so the
 * pixels are the same with or without it. It stops at the end, or after
 * the step it is on (the first always runs) when the decode ends (stop)
 * or the pipeline is cancelled. */
struct prefault {
    struct ip_pipeline *p;
    uint8_t *base;
    size_t len;
    atomic_int stop;
    pthread_t thread;
    int running;             /* the thread was started and not yet joined */
    uint64_t busy_ns;        /* the helper's time, counted as decoding */
};

static void *prefault_main(void *arg)
{
    struct prefault *pf = arg;
    uint64_t t0 = ip__now_ns();

    for (size_t off = 0; off < pf->len; off += PREFAULT_STEP) {
        size_t n = pf->len - off < PREFAULT_STEP ? pf->len - off : PREFAULT_STEP;
        if (off > 0 && (atomic_load(&pf->stop) || atomic_load(&pf->p->cancelled)))
            break;
        if (madvise(pf->base + off, n, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
            break;   /* not supported here: the decoder faults the pages in itself */
    }
    pf->busy_ns = ip__now_ns() - t0;
    ip__sem_release(&pf->p->cpu);
    return NULL;
}

/* Starts the helper over [base, base + len) if a CPU token is free now. */
static void prefault_start(struct prefault *pf, struct ip_pipeline *p, uint8_t *base, size_t len)
{
    if (ip__sem_try_acquire(&p->cpu) != 0)
        return;
    pf->p = p;
    pf->base = base;
    pf->len = len;
    atomic_init(&pf->stop, 0);
    pf->busy_ns = 0;
    pf->running = pthread_create(&pf->thread, NULL, prefault_main, pf) == 0;
    if (!pf->running)
        ip__sem_release(&p->cpu);
}

/* Stops and joins the helper (before its block is freed, or once decoded). */
static void prefault_stop(struct prefault *pf, struct ip__item *item)
{
    if (!pf->running)
        return;
    atomic_store(&pf->stop, 1);
    pthread_join(pf->thread, NULL);
    pf->running = 0;
    ip__stage_add(pf->p, item, IP_STAGE_DECODE, pf->busy_ns);
}

struct alloc_ctx {
    struct ip_pipeline *p;
    struct ip__item *item;
    int prefault;            /* the decode runs on this thread alone: a helper may prefault */
    int strips_used;         /* the decode was spread over a team (strips_used) */
    struct prefault pf;
    void **last_block;       /* this loader's previous block: the next goes there if it can */
};

static int arena_alloc_cb(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err)
{
    struct alloc_ctx *ac = ctx;
    struct ip_pipeline *p = ac->p;
    size_t src_bytes, dst_bytes = 0, total;
    uint64_t wait_ns = 0;
    void *block;
    int rc;

    if (ip_mul_size(shape->stride, shape->height, &src_bytes) != 0)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u too large", shape->width, shape->height);
    if (!p->cfg.no_filter) {
        uint32_t oc = ip_chain_out_channels(&p->cfg.chain, shape->channels);
        rc = ip_image_check(shape->width, shape->height, oc, &p->cfg.decode.limits, &dst_bytes, err);
        if (rc)
            return rc;
    }
    total = ALIGN_UP(src_bytes) + dst_bytes;
    if (total < src_bytes)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u too large", shape->width, shape->height);
    rc = ip__arena_alloc(p->arena, total, 0, *ac->last_block, &block, NULL, err);
    if (rc == IP_ENOMEM) {
        /* Budget full: give the core back while we wait for a writer to free memory. */
        ip__sem_release(&p->cpu);
        rc = ip__arena_alloc(p->arena, total, 1, *ac->last_block, &block, &wait_ns, err);
        if (rc == 0)
            ip_error_clear(err);   /* the first try's "budget exhausted" is not this file's error */
        ip__stage_add(p, NULL, IP_STAGE_WAIT_LOAD, wait_ns);
        if (ip__sem_acquire(&p->cpu, NULL) != 0 && rc == 0) {
            ip__arena_free(p->arena, block);
            rc = ip_error_set(err, IP_EINTR, "interrupted");
        }
    }
    if (rc)
        return rc;
    ac->item->block = block;
    *ac->last_block = block;
    *pixels = block;
    if (ac->prefault && src_bytes >= IP_PNG_STRIP_MIN && p->cfg.jobs > 1 && ip__switch_get(&prefault_switch))
        prefault_start(&ac->pf, p, block, src_bytes);
    if (!p->cfg.no_filter) {
        struct ip_image *d = &ac->item->dst;
        d->width = shape->width;
        d->height = shape->height;
        d->channels = ip_chain_out_channels(&p->cfg.chain, shape->channels);
        d->stride = (size_t)d->width * d->channels;
        d->pixels = (uint8_t *)block + ALIGN_UP(src_bytes);
    }
    return 0;
}

static void arena_free_cb(void *ctx, uint8_t *pixels)
{
    struct alloc_ctx *ac = ctx;

    prefault_stop(&ac->pf, ac->item);
    ip__arena_free(ac->p->arena, pixels);
    if (ac->item->block == pixels)
        ac->item->block = NULL;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Takes the next task from the source; NULL at the end. */
static struct ip__item *next_item(struct ip_pipeline *p)
{
    struct ip__item *item = NULL;
    struct ip_task task;
    int rc;

    pthread_mutex_lock(&p->src_lock);
    if (p->source_done || atomic_load(&p->cancelled))
        goto out;
    memset(&task, 0, sizeof task);
    rc = p->source->next(p->source->ctx, &task);
    if (rc <= 0) {
        p->source_done = 1;
        if (rc < 0)
            p->source_error = rc;
        goto out;
    }
    item = calloc(1, sizeof *item);
    if (item) {
        item->in_path = strdup(task.in_path);
        item->out_path = strdup(task.out_path ? task.out_path : "");
        if (!item->in_path || !item->out_path) {
            free(item->in_path);
            free(item->out_path);
            free(item);
            item = NULL;
        }
    }
    if (!item) {
        p->source_done = 1;
        p->source_error = IP_ENOMEM;
        goto out;
    }
    item->index = p->next_index++;
    ip__item_register(p, item);
    item->out_format = task.out_format;
    if (p->test_stall && strcmp(base_name(item->in_path), p->test_stall) == 0)
        item->test_flags |= IP_JOB_TEST_STALL;
    if (p->test_crash && strcmp(base_name(item->in_path), p->test_crash) == 0)
        item->test_flags |= IP_JOB_TEST_CRASH;
out:
    pthread_mutex_unlock(&p->src_lock);
    return item;
}

struct decode_strips {
    const struct ip__jpeg_plan *plan;
    struct ip_image img;
};

static int decode_strip(void *ctx, uint32_t k, struct ip_error *err)
{
    struct decode_strips *d = ctx;

    return ip__jpeg_plan_decode(d->plan, k, &d->img, err);
}

/* A phase of finding the strips of a JPEG without restart markers. */
struct plan_prep {
    struct ip__jpeg_plan *plan;
    int phase;
};

static int prep_task(void *ctx, uint32_t k, struct ip_error *err)
{
    struct plan_prep *pp = ctx;
    int rc = ip__jpeg_plan_prep(pp->plan, pp->phase, k);

    return rc < 0 ? ip_error_set(err, rc, "out of memory finding JPEG strips") : 0;
}

/* A huge sequential JPEG is decoded by a strip team (team.c,
 * codec_jpeg_strips.c), with the same pixels as a whole decode; without
 * restart markers the team first finds where the strips start
 * (codec_jpeg_seq.c: two phases, one task per chunk). Returns 0
 * (decoded into item->src), IP_EINTR, or 1: decode it whole, because the
 * file has no plan or a strip failed (the whole decode then gives the
 * file's usual error). The caller holds a CPU token. */
static int decode_team(struct ip_pipeline *p, struct ip__item *item, const struct ip_buf *buf,
                       const struct ip_decode_opts *opts)
{
    struct ip__jpeg_plan *plan = ip__jpeg_plan_strips(buf->data, buf->len, opts);
    struct decode_strips d = {plan, {0}};
    struct ip_image shape;
    struct ip_error err;
    int rc;

    if (!plan)
        return 1;
    shape = ip__jpeg_plan_shape(plan);
    ip_error_clear(&err);
    rc = 0;
    for (int phase = 0; phase < 2 && rc == 0 && ip__jpeg_plan_prep_count(plan); phase++) {
        struct plan_prep pp = {plan, phase};

        rc = ip__team_run(p, item, IP_STAGE_DECODE, ip__jpeg_plan_prep_count(plan), prep_task, &pp, &err);
    }
    if (rc == 0 && ip__jpeg_plan_ready(plan, &p->cancelled) != 0)
        rc = 1;   /* strips not found: decode it whole */
    if (rc == 0)
        rc = ip__pixels_alloc(opts, &d.img, shape.width, shape.height, shape.channels, &err);
    if (rc == 0)
        rc = ip__team_run(p, item, IP_STAGE_DECODE, ip__jpeg_plan_count(plan), decode_strip, &d, &err);
    ip__jpeg_plan_free(plan);
    if (rc == 0 && !atomic_load(&p->cancelled)) {
        item->src = d.img;
        atomic_fetch_add(&p->strip_decodes, 1);
        return 0;
    }
    ip__pixels_free(opts, &d.img);
    if (rc == IP_EINTR || atomic_load(&p->cancelled))
        return ip_error_set(&item->err, IP_EINTR, "interrupted");
    return 1;
}

/* The strip runner lent to a whole decode (ip__decode_owned): a huge PNG
 * that imgpar wrote in strips is inflated by a strip team (codec_png_fast.c).
 * The prefault helper stops first: the team's threads touch their own
 * pages, and the helper holds a token that a team thread could use. */
static int run_strips(void *ctx, uint32_t n, ip__strip_fn fn, void *fn_ctx, struct ip_error *err)
{
    struct alloc_ctx *ac = ctx;

    prefault_stop(&ac->pf, ac->item);
    return ip__team_run(ac->p, ac->item, IP_STAGE_DECODE, n, fn, fn_ctx, err);
}

static void strips_used(void *ctx)
{
    struct alloc_ctx *ac = ctx;

    ac->strips_used = 1;
}

/* IMGPAR_DECODE_GRAY=0 in the environment keeps the gray in the chain
 * (tests compare the two; benchmarks measure the difference). */
static struct ip__switch decode_gray_switch = {-1, "IMGPAR_DECODE_GRAY"};

static int decode_gray_enabled(void)
{
    return ip__switch_get(&decode_gray_switch);
}

static int load_one(struct ip_pipeline *p, struct ip__item *item, struct ip_buf *buf, void **last_block)
{
    struct ip_decode_opts opts = p->cfg.decode;
    struct alloc_ctx ac = {.p = p, .item = item, .last_block = last_block};
    struct ip_allocator alloc = {arena_alloc_cb, arena_free_cb, &ac};
    /* A team only at -j > 1; Ctrl-C stops a whole decode whatever -j. */
    struct ip__strip_runner runner = {p->cfg.jobs > 1 ? run_strips : NULL, strips_used, &ac, &p->cancelled, 0};
    enum ip_format fmt = IP_FORMAT_UNKNOWN;
    uint64_t t0;
    int rc;

    t0 = ip__now_ns();
    ip_buf_free(buf);
    rc = ip__file_read(item->in_path, opts.limits.max_file_size, &p->cancelled, buf, &item->err);
    ip__stage_add(p, item, IP_STAGE_READ, ip__now_ns() - t0);
    if (rc)
        return rc;
    item->bytes_in = buf->len;
    runner.give_back = (size_t)p->cfg.io_threads * buf->len > IP__HELD_MAX;

    if (ip__sem_acquire(&p->cpu, NULL) != 0)
        return ip_error_set(&item->err, IP_EINTR, "interrupted");
    t0 = ip__now_ns();
    opts.allocator = &alloc;
    /* Luma-only JPEG decoding replaces a leading Rec.601 gray (the JPEG's own Y).
     * Otherwise a leading gray is done by the JPEG decoder, row by row as
     * it makes them (the same kernel, the same bytes, without an RGB image
     * in memory); the chain's gray then passes the 1 channel through. */
    if (!p->cfg.no_filter && p->cfg.chain.count > 0 && p->cfg.chain.filters[0].kind == IP_FILTER_GRAY) {
        opts.jpeg_luma_only = opts.jpeg_luma_only && p->cfg.chain.filters[0].gray == IP_GRAY_601;
        opts.gray = opts.jpeg_luma_only || !decode_gray_enabled() ? 0 : (int)p->cfg.chain.filters[0].gray;
    } else {
        opts.jpeg_luma_only = 0;
        opts.gray = 0;
    }
    rc = 1;
    if (p->cfg.jobs > 1 && opts.decoder == IP_DECODER_NATIVE &&
        ip_format_detect(buf->data, buf->len) == IP_FORMAT_JPEG) {
        rc = decode_team(p, item, buf, &opts);
        fmt = IP_FORMAT_JPEG;
    }
    if (rc == 1) {   /* the file is read again below only for a JPEG's header */
        ac.prefault = 1;
        for (;;) {
            rc = ip__decode_owned(buf->data, buf->len, &opts, &runner, &item->src, &fmt, &item->err);
            prefault_stop(&ac.pf, item);
            if (rc != IP__EREREAD)
                break;
            /* A PNG that the fast path gave up on after giving pages back:
             * read again, decoded without giving back. */
            runner.give_back = 0;
            ip_error_clear(&item->err);
            ip_buf_free(buf);
            if ((rc = ip__file_read(item->in_path, opts.limits.max_file_size, &p->cancelled, buf, &item->err)))
                break;
        }
        if (rc == 0 && ac.strips_used)
            atomic_fetch_add(&p->strip_decodes, 1);
    }
    ip__stage_add(p, item, IP_STAGE_DECODE, ip__now_ns() - t0);
    ip__sem_release(&p->cpu);
    item->in_channels = item->src.channels;
    if (rc == 0 && opts.gray && fmt == IP_FORMAT_JPEG && item->src.channels == 1) {
        struct ip_decode_opts plain = opts;
        struct ip_image shape;
        struct ip_error shape_err;

        plain.gray = 0;   /* the header read again: was it colour? */
        if (ip__jpeg_shape(buf->data, buf->len, &plain, &shape, &shape_err) == 0 && shape.channels != 1)
            item->in_channels = 3;   /* RGB, or CMYK made RGB (shape says 0) */
    }
    ip_buf_free(buf);
    item->in_format = fmt;
    if (rc && !item->err.code)
        ip_error_set(&item->err, rc, "%s", ip_strerror(rc));
    return rc;
}

void *ip__loader_main(void *arg)
{
    struct ip_pipeline *p = arg;
    struct ip_buf buf = {0}, enc = {0};
    struct ip_scratch *scratch = NULL;
    struct ip__item *item;
    void *last_block = NULL;   /* where this loader's previous image was */

    while ((item = next_item(p)) != NULL) {
        uint64_t wait_ns = 0;

        if (ip__sem_acquire(&p->inflight, &wait_ns) != 0) {
            ip_error_set(&item->err, IP_EINTR, "interrupted");
            ip__item_finish(p, item, IP_RESULT_FAILED);
            break;
        }
        item->holds_slot = 1;
        ip__stage_add(p, NULL, IP_STAGE_WAIT_LOAD, wait_ns);
        if (load_one(p, item, &buf, &last_block) != 0) {
            ip__item_finish(p, item, IP_RESULT_FAILED);
            continue;
        }
        /* A whole image goes on here, from decode to output file: no hand-offs. */
        if (ip__filter_inline(p, item, &scratch)) {
            ip__writer_finish(p, item, &enc);
            continue;
        }
        wait_ns = 0;
        if (ip__queue_push(&p->load_q, item, &wait_ns) != 0) {
            ip_error_set(&item->err, IP_EINTR, "interrupted");
            ip__item_finish(p, item, IP_RESULT_FAILED);
            break;
        }
        ip__stage_add(p, NULL, IP_STAGE_WAIT_LOAD, wait_ns);
    }
    /* The input is exhausted (or the run cancelled): no image starts any more. */
    ip__arena_drain(p->arena);
    ip_buf_free(&buf);
    ip_buf_free(&enc);
    ip_scratch_free(scratch);
    pthread_mutex_lock(&p->src_lock);
    if (--p->loaders_left == 0)
        ip__queue_close(&p->load_q);
    pthread_mutex_unlock(&p->src_lock);
    return NULL;
}
