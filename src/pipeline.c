/* The pipeline: the whole data flow in one place.
 *
 *   source --next()--> loaders (--io-threads)     read + decode into the arena
 *                      (an image filtered whole: the loader also filters it, or has a
 *                       --procs worker filter it, then encodes, writes and reports it)
 *          --load_q--> dispatcher (1 thread)      cut into bands, submit to the executor
 *          --exec----> serial | threads | procs   ip_chain_run_rows on each band
 *          --wait()--> completer (1 thread)       last band done -> image done
 *          --write_q-> writers (--writers)        encode, temp file, rename
 *          --------->  on_result, exactly once per task
 *
 * DESIGN
 * - Whole images stay on their loader: an image that is not cut into bands
 *   is filtered, encoded and written by the loader thread that decoded it
 *   (ip__filter_inline, then the writer's ip__writer_finish), skipping the
 *   dispatcher, the completer and the writers. Under --threads the loader
 *   runs the filter itself; under --procs it hands the job to a worker
 *   process and sleeps until the worker's reply wakes it (the executor's
 *   run()); --no-filter has nothing to hand. That saves the thread
 *   hand-offs (all four per image under --threads; under --procs only the
 *   two to the worker and back are left) and, under --threads, keeps the
 *   pixels in that core's caches (320x240 photos: 11% off the wall time at
 *   -j1, 36% at -j2 under --threads; BENCHMARKS.md). Bands, --serial (the
 *   reference, one band at a time), and fewer --io-threads than -j take the
 *   stages above. The bytes are the same.
 * - Memory: an image occupies an in-flight slot (--queue) from before it is
 *   read until it is reported, and its pixels (decoded + filtered) one arena
 *   block (--mem) from decode until encoded. Both queues hold at most
 *   --queue items, so pushes never block on them and nothing can deadlock;
 *   peak memory depends on --queue and --mem, never on the number of files.
 * - Cores: -j is a budget of CPU tokens. Decoding, each filter band and
 *   encoding hold one token; waiting holds none. So at most -j cores are
 *   busy whatever the thread counts, and idle stages lend their cores.
 *   A huge image's decode (a JPEG with restart markers, a PNG that imgpar
 *   wrote in strips) and encode (PNG or JPEG) run as strip teams (team.c):
 *   the owning loader or writer borrows idle tokens for helper threads, one
 *   strip per token.
 * - Splitting: a band is [y0,y1) output rows; the kernels read their halo
 *   from the whole source, so bands are independent and byte-identical to a
 *   whole-image run. auto uses bands when images are fewer than workers or
 *   an image is larger than its share of --mem.
 * - Shutdown: the loaders close load_q when the source ends; the dispatcher
 *   submits an END sentinel; the completer stops after END once every band
 *   is back and closes write_q; writers drain it and exit. Cancel makes every
 *   blocking call return IP_EINTR; items left anywhere are reported as
 *   interrupted from the live registry, after every thread is joined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "codec_internal.h"
#include "pipeline_internal.h"

#define MAX_THREADS 1024

const char *ip_stage_name(enum ip_stage stage)
{
    static const char *const names[IP_STAGE_COUNT] = {
        "read", "decode", "filter", "encode", "write", "wait_load", "wait_filter", "wait_write",
    };
    return (unsigned)stage < IP_STAGE_COUNT ? names[stage] : "unknown";
}

long ip_peak_rss_kb(void)
{
    /* VmHWM: the high-water mark of this process image. getrusage's
     * ru_maxrss also keeps what the forked child of the launching program
     * held before it exec'd imgpar (a Python test's tens of MiB). */
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    long kb = -1;
    struct rusage ru;

    if (f) {
        while (kb < 0 && fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) != 1)
                kb = -1;
        fclose(f);
    }
    if (kb >= 0)
        return kb;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

const char *ip_split_name(enum ip_split split)
{
    switch (split) {
    case IP_SPLIT_AUTO: return "auto";
    case IP_SPLIT_IMAGE: return "image";
    case IP_SPLIT_STRIPS: return "strips";
    }
    return "unknown";
}

void ip_pipeline_config_default(struct ip_pipeline_config *c)
{
    memset(c, 0, sizeof *c);
    ip_chain_default(&c->chain);
    ip_decode_opts_default(&c->decode);
    ip_encode_opts_default(&c->encode);
    c->exec = IP_EXEC_THREADS;
    c->split = IP_SPLIT_AUTO;
}

void ip_pipeline_config_resolve(struct ip_pipeline_config *c)
{
    if (c->jobs <= 0)
        c->jobs = online_cpus();
    if (c->jobs > MAX_THREADS)
        c->jobs = MAX_THREADS;
    /* Threads only hold a core while they compute (CPU tokens), so each stage
     * may have as many threads as there are cores without oversubscribing. */
    if (c->io_threads <= 0)
        c->io_threads = c->jobs;
    if (c->writers <= 0)
        c->writers = c->jobs;
    if (c->io_threads > MAX_THREADS)
        c->io_threads = MAX_THREADS;
    if (c->writers > MAX_THREADS)
        c->writers = MAX_THREADS;
    if (c->queue <= 0)
        c->queue = 2 * c->jobs + 2;
    if (c->mem == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t phys = (pages > 0 && psize > 0) ? (uint64_t)pages * (uint64_t)psize : (4ull << 30);
        c->mem = phys / 4;
        if (c->mem > (2ull << 30))
            c->mem = 2ull << 30;
    }
}

void ip__stage_add(struct ip_pipeline *p, struct ip__item *item, enum ip_stage stage, uint64_t ns)
{
    if (!ns)
        return;
    atomic_fetch_add(&p->busy_ns[stage], ns);
    if (item)
        item->stage_ns[stage] += ns;
}

void ip__item_register(struct ip_pipeline *p, struct ip__item *item)
{
    pthread_mutex_lock(&p->result_lock);
    item->live_next = p->live;
    if (p->live)
        p->live->live_prev = item;
    p->live = item;
    pthread_mutex_unlock(&p->result_lock);
}

void ip__item_finish(struct ip_pipeline *p, struct ip__item *item, enum ip_result_status status)
{
    struct ip_result r;

    if (item->block) {
        ip__arena_free(p->arena, item->block);
        item->block = NULL;
    }
    memset(&r, 0, sizeof r);
    r.index = item->index;
    r.in_path = item->in_path;
    r.out_path = item->out_path;
    r.status = status;
    r.err = item->err;
    r.in_format = item->in_format;
    r.out_format = item->out_format != IP_FORMAT_UNKNOWN ? item->out_format
                   : item->in_format == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
    r.width = item->src.width;
    r.height = item->src.height;
    r.channels = item->in_channels;
    r.bytes_in = item->bytes_in;
    r.bytes_out = item->bytes_out;
    r.attempts = item->attempts;
    memcpy(r.stage_ns, item->stage_ns, sizeof r.stage_ns);

    pthread_mutex_lock(&p->result_lock);
    if (item->live_prev)
        item->live_prev->live_next = item->live_next;
    else if (p->live == item)
        p->live = item->live_next;
    if (item->live_next)
        item->live_next->live_prev = item->live_prev;
    if (status == IP_RESULT_OK) {
        p->stats.images_ok++;
        p->stats.megapixels += (double)item->src.width * item->src.height / 1e6;
    } else if (status == IP_RESULT_FAILED) {
        p->stats.images_failed++;
    } else {
        p->stats.images_skipped++;
    }
    if (p->cfg.on_result)
        p->cfg.on_result(p->cfg.cb_ctx, &r);
    pthread_mutex_unlock(&p->result_lock);

    if (item->holds_slot)
        ip__sem_release(&p->inflight);
    free(item->in_path);
    free(item->out_path);
    free(item);
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

int ip_pipeline_create(struct ip_pipeline **out, const struct ip_pipeline_config *config,
                       struct ip_error *err)
{
    struct ip_pipeline *p;
    struct ip_exec_config ec;
    int rc;

    *out = NULL;
    p = calloc(1, sizeof *p);
    if (!p)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    p->cfg = *config;
    ip_pipeline_config_resolve(&p->cfg);
    p->workers = p->cfg.exec == IP_EXEC_SERIAL ? 1 : p->cfg.jobs;
    p->ops = ip_exec_ops_get(p->cfg.exec);
    if (!p->ops) {
        rc = ip_error_set(err, IP_EINVAL, "unknown executor");
        goto fail_struct;
    }
    /* Test-only fault injection, read once here (see README, "Testing"). */
    p->test_stall = env_dup("IMGPAR_TEST_STALL");
    p->test_crash = env_dup("IMGPAR_TEST_CRASH");
    p->test_stall_pidfile = env_dup("IMGPAR_TEST_STALL_PIDFILE");
    {
        const char *v = getenv("IMGPAR_TEST_PNG_STRIP_MIN");
        if (v && *v)
            ip__png_strip_min = (size_t)strtoull(v, NULL, 10);
    }

    rc = ip__arena_create(&p->arena, (size_t)p->cfg.mem, p->cfg.exec == IP_EXEC_PROCS, err);
    if (rc)
        goto fail_struct;
    memset(&ec, 0, sizeof ec);
    ec.workers = p->workers;
    ec.chain = &p->cfg.chain;
    ec.stall_pidfile = p->test_stall_pidfile;
    rc = p->ops->init(&p->ex, &ec, err);
    if (rc)
        goto fail_arena;
    if (ip__queue_init(&p->load_q, (size_t)p->cfg.queue) != 0) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory");
        goto fail_exec;
    }
    if (ip__queue_init(&p->write_q, (size_t)p->cfg.queue) != 0) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory");
        goto fail_load_q;
    }
    ip__sem_init(&p->inflight, p->cfg.queue);
    ip__sem_init(&p->cpu, p->cfg.jobs);
    pthread_mutex_init(&p->src_lock, NULL);
    pthread_mutex_init(&p->result_lock, NULL);
    *out = p;
    return 0;

fail_load_q:
    ip__queue_destroy(&p->load_q);
fail_exec:
    p->ops->fini(p->ex);
fail_arena:
    ip__arena_destroy(p->arena);
fail_struct:
    free(p->test_stall);
    free(p->test_crash);
    free(p->test_stall_pidfile);
    free(p);
    return rc;
}

void ip_pipeline_cancel(struct ip_pipeline *p)
{
    if (atomic_exchange(&p->cancelled, 1))
        return;
    ip__queue_cancel(&p->load_q);
    ip__queue_cancel(&p->write_q);
    ip__sem_cancel(&p->inflight);
    ip__sem_cancel(&p->cpu);
    ip__arena_cancel(p->arena);
    p->ops->cancel(p->ex);
}

static int use_strips(const struct ip_pipeline *p, const struct ip__item *item, uint64_t total)
{
    size_t bytes = item->src.stride * item->src.height + item->dst.stride * item->dst.height;

    switch (p->cfg.split) {
    case IP_SPLIT_IMAGE: return 0;
    case IP_SPLIT_STRIPS: return 1;
    case IP_SPLIT_AUTO: break;
    }
    if (p->workers <= 1)
        return 0;
    return (total > 0 && total < (uint64_t)p->workers) || bytes > p->cfg.mem / (uint64_t)p->workers;
}

/* The job that filters rows [y0, y1) of item. */
static struct ip_job band_job(struct ip__item *item, uint32_t y0, uint32_t y1)
{
    struct ip_job job;

    memset(&job, 0, sizeof job);
    job.kind = IP_JOB_BAND;
    job.tag = item;
    job.src = item->src;
    job.dst = item->dst;
    job.y0 = y0;
    job.y1 = y1;
    job.test_flags = item->test_flags;
    return job;
}

/* Cuts item into bands and submits them. Returns 0 or IP_EINTR. */
static int dispatch(struct ip_pipeline *p, struct ip__item *item, uint64_t total)
{
    uint32_t h = item->src.height, band = h;

    if (use_strips(p, item, total)) {
        uint32_t halo = ip_chain_halo(&p->cfg.chain);
        uint32_t want = (uint32_t)((h + 4u * (uint32_t)p->workers - 1) / (4u * (uint32_t)p->workers));
        uint32_t min = 2 * halo > 16 ? 2 * halo : 16;
        band = want > min ? want : min;
    }
    item->bands_left = (h + band - 1) / band;
    for (uint32_t y = 0; y < h; y += band) {
        struct ip_job job = band_job(item, y, h - y > band ? y + band : h);

        if (ip__sem_acquire(&p->cpu, NULL) != 0)
            return IP_EINTR;
        atomic_fetch_add(&p->jobs_submitted, 1);
        if (p->ops->submit(p->ex, &job) != 0) {
            ip__sem_release(&p->cpu);
            return IP_EINTR;
        }
    }
    return 0;
}

/* Records a filtered band's time, attempts and failure on its item. */
static void band_done(struct ip_pipeline *p, struct ip__item *item, const struct ip_job *job)
{
    ip__stage_add(p, item, IP_STAGE_FILTER, job->busy_ns);
    if (job->attempts > item->attempts)
        item->attempts = job->attempts;
    if (job->status && !item->err.code) {
        if (job->status == IP_EWORKER)
            ip_error_set(&item->err, IP_EWORKER, "worker process died twice while filtering");
        else
            ip_error_set(&item->err, job->status, "filter failed: %s", ip_strerror(job->status));
    }
}

/* IMGPAR_INLINE=0 in the environment hands every image on between the
 * stages (tests compare the two paths; benchmarks measure the difference). */
static struct ip__switch inline_switch = {-1, "IMGPAR_INLINE"};

int ip__filter_inline(struct ip_pipeline *p, struct ip__item *item, struct ip_scratch **scratch)
{
    struct ip_job job;
    int rc = 0;

    /* Fewer loaders than cores could not keep them busy on their own. */
    if (p->cfg.io_threads < p->cfg.jobs || !ip__switch_get(&inline_switch))
        return 0;
    if (!p->cfg.no_filter) {
        int here = p->cfg.exec == IP_EXEC_THREADS;

        /* --serial has no run(): its one filter thread sees every band. */
        if ((!here && !p->ops->run) || use_strips(p, item, p->source->total_hint))
            return 0;
        if (here && !*scratch && !(*scratch = ip_scratch_new()))
            return 0;
        if (ip__sem_acquire(&p->cpu, NULL) != 0) {
            ip_error_set(&item->err, IP_EINTR, "interrupted");
            return 1;
        }
        job = band_job(item, 0, item->src.height);
        if (here)
            ip__job_run(&p->cfg.chain, &job, *scratch);
        else
            rc = p->ops->run(p->ex, &job);
        ip__sem_release(&p->cpu);
        if (rc) {
            ip_error_set(&item->err, IP_EINTR, "interrupted");
            return 1;
        }
        band_done(p, item, &job);
    }
    atomic_fetch_add(&p->whole_on_loader, 1);
    return 1;
}

static void *dispatcher_main(void *arg)
{
    struct ip_pipeline *p = arg;
    struct ip_job end;
    void *ptr;

    for (;;) {
        uint64_t wait_ns = 0;
        int rc = ip__queue_pop(&p->load_q, &ptr, &wait_ns);

        ip__stage_add(p, NULL, IP_STAGE_WAIT_FILTER, wait_ns);
        if (rc != 0)
            break;
        struct ip__item *item = ptr;
        if (p->cfg.no_filter) {
            if (ip__queue_push(&p->write_q, item, NULL) != 0)
                break;
            continue;
        }
        if (dispatch(p, item, p->source->total_hint) != 0)
            break;
    }
    memset(&end, 0, sizeof end);
    end.kind = IP_JOB_END;
    p->ops->submit(p->ex, &end);
    return NULL;
}

static void *completer_main(void *arg)
{
    struct ip_pipeline *p = arg;
    uint64_t completed = 0;
    int end_seen = 0;

    while (!end_seen || completed < atomic_load(&p->jobs_submitted)) {
        struct ip_job job;

        if (p->ops->wait(p->ex, &job) != 0)
            break;
        if (job.kind == IP_JOB_END) {
            end_seen = 1;
            continue;
        }
        completed++;
        ip__sem_release(&p->cpu);
        struct ip__item *item = job.tag;
        band_done(p, item, &job);
        if (--item->bands_left == 0 && ip__queue_push(&p->write_q, item, NULL) != 0)
            break;
    }
    ip__queue_close(&p->write_q);
    return NULL;
}

int ip_pipeline_run(struct ip_pipeline *p, struct ip_source *source, struct ip_stats *stats,
                    struct ip_error *err)
{
    pthread_t *loaders = NULL, *writers = NULL, dispatcher, completer;
    int nl = 0, nw = 0, have_dispatcher = 0, have_completer = 0, rc = 0;
    uint64_t t0 = ip__now_ns();

    if (p->ran)
        return ip_error_set(err, IP_EINVAL, "a pipeline runs once");
    p->ran = 1;
    memset(&p->stats, 0, sizeof p->stats);
    for (int s = 0; s < IP_STAGE_COUNT; s++)
        atomic_store(&p->busy_ns[s], 0);
    atomic_store(&p->jobs_submitted, 0);
    atomic_store(&p->strip_decodes, 0);
    atomic_store(&p->whole_on_loader, 0);
    p->source = source;
    p->source_done = 0;
    p->source_error = 0;
    p->next_index = 0;
    p->loaders_left = p->cfg.io_threads;

    loaders = calloc((size_t)p->cfg.io_threads, sizeof *loaders);
    writers = calloc((size_t)p->cfg.writers, sizeof *writers);
    if (!loaders || !writers) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory");
        goto out;
    }
    for (; nw < p->cfg.writers; nw++)
        if (pthread_create(&writers[nw], NULL, ip__writer_main, p) != 0)
            break;
    if (pthread_create(&completer, NULL, completer_main, p) == 0)
        have_completer = 1;
    if (pthread_create(&dispatcher, NULL, dispatcher_main, p) == 0)
        have_dispatcher = 1;
    for (; nl < p->cfg.io_threads; nl++)
        if (pthread_create(&loaders[nl], NULL, ip__loader_main, p) != 0)
            break;
    if (nw == 0 || nl == 0 || !have_completer || !have_dispatcher) {
        rc = ip_error_set(err, IP_ENOMEM, "cannot start pipeline threads");
        ip_pipeline_cancel(p);
    }
    if (nl < p->cfg.io_threads) {
        /* The loaders that never started will not close load_q. */
        pthread_mutex_lock(&p->src_lock);
        p->loaders_left -= p->cfg.io_threads - nl;
        if (p->loaders_left == 0)
            ip__queue_close(&p->load_q);
        pthread_mutex_unlock(&p->src_lock);
    }

    for (int i = 0; i < nl; i++)
        pthread_join(loaders[i], NULL);
    if (have_dispatcher)
        pthread_join(dispatcher, NULL);
    if (have_completer)
        pthread_join(completer, NULL);
    else
        ip__queue_close(&p->write_q);
    for (int i = 0; i < nw; i++)
        pthread_join(writers[i], NULL);

out:
    /* Anything still live was cut off by cancellation. */
    for (;;) {
        struct ip__item *item;
        pthread_mutex_lock(&p->result_lock);
        item = p->live;
        pthread_mutex_unlock(&p->result_lock);
        if (!item)
            break;
        if (!item->err.code)
            ip_error_set(&item->err, IP_EINTR, "interrupted");
        ip__item_finish(p, item, IP_RESULT_FAILED);
    }
    p->stats.wall_s = (double)(ip__now_ns() - t0) / 1e9;
    for (int s = 0; s < IP_STAGE_COUNT; s++)
        p->stats.busy_ns[s] = atomic_load(&p->busy_ns[s]);
    p->stats.peak_rss_kb = ip_peak_rss_kb();
    p->stats.worker_peak_rss_kb = p->ops->worker_peak_rss_kb ? p->ops->worker_peak_rss_kb(p->ex) : 0;
    p->stats.jobs = p->cfg.jobs;
    p->stats.io_threads = p->cfg.io_threads;
    p->stats.writers = p->cfg.writers;
    p->stats.queue = p->cfg.queue;
    p->stats.workers = p->workers;
    p->stats.mem = ip__arena_size(p->arena);
    p->stats.peak_pixel_bytes = ip__arena_peak(p->arena);
    p->stats.strip_decodes = atomic_load(&p->strip_decodes);
    p->stats.whole_on_loader = atomic_load(&p->whole_on_loader);
    if (stats)
        *stats = p->stats;
    free(loaders);
    free(writers);
    if (rc == 0 && atomic_load(&p->cancelled))
        rc = ip_error_set(err, IP_EINTR, "interrupted");
    if (rc == 0 && p->source_error)
        rc = ip_error_set(err, p->source_error, "reading the input list failed: %s",
                          ip_strerror(p->source_error));
    return rc;
}

void ip_pipeline_destroy(struct ip_pipeline *p)
{
    if (!p)
        return;
    p->ops->fini(p->ex);
    ip__arena_destroy(p->arena);
    ip__sem_destroy(&p->cpu);
    ip__sem_destroy(&p->inflight);
    ip__queue_destroy(&p->write_q);
    ip__queue_destroy(&p->load_q);
    pthread_mutex_destroy(&p->result_lock);
    pthread_mutex_destroy(&p->src_lock);
    free(p->test_stall);
    free(p->test_crash);
    free(p->test_stall_pidfile);
    free(p);
}
