/* Benchmark driver: runs the real pipeline over every configuration and
 * measures it (the `imgpar bench` subcommand is a thin front end to this).
 *
 * DESIGN
 * - Order: one reference run (serial, -j1, split image) first, whose output
 *   checksums (FNV-1a 64 over each whole file) every later run must match;
 *   then for each strategy, each split, each j ascending: `warmup` runs and
 *   `repeat` measured runs. serial runs at j=1 only: it ignores -j.
 * - Isolation: each run (warm-up, measured, and the reference) runs in a
 *   child process of its own, forked by the calling thread, as each imgpar
 *   command is a process of its own. The child is single-threaded when it
 *   creates the pipeline (the procs executor forks its workers there), its
 *   ru_maxrss is the peak of that run alone (plus what it inherited,
 *   reported as start_rss_kb; no allocator state is carried over from an
 *   earlier run), and a run that crashes cannot take the bench down. The
 *   child dies with the bench (PR_SET_PDEATHSIG), never prints, and leaves
 *   with _exit, so the caller's atexit handlers and stdio buffers stay the
 *   caller's.
 * - A run: ip_pipeline_create + ip_pipeline_run + ip_pipeline_destroy,
 *   timed together on CLOCK_MONOTONIC (what a user of the CLI waits for;
 *   the pipeline's own run-only time is kept in the sample's stats). Then,
 *   untimed, every output is read back, checksummed, compared with the
 *   reference and unlinked, so the next run must write every output again.
 * - Protocol: the child writes fixed-size struct msg records to a pipe:
 *   MSG_OUTPUT per reference output, MSG_RUN for its run, MSG_END with its
 *   ru_maxrss. The parent polls the pipe every 0.1 s so ip_bench_cancel
 *   (an atomic flag) stops a bench promptly: the child is SIGKILLed (its
 *   procs workers follow through their own PDEATHSIG) and reaped.
 * - Output writers (CSV, JSON, SVG) only write to the FILE * they are given. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>
#if __has_include(<libdeflate.h>)
#include <libdeflate.h>
#endif
#if __has_include(<zlib.h>)
#include <zlib.h>
#endif

#include "imgpar/bench.h"
#include "imgpar/version.h"
#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

enum { MSG_OUTPUT = 1, MSG_RUN, MSG_END };

/* One record from a child to the bench process. */
struct msg {
    int type;                        /* MSG_* */
    int run;                         /* MSG_RUN: index among the configuration's runs */
    struct ip_bench_sample sample;   /* MSG_RUN */
    uint64_t index;                  /* MSG_OUTPUT: task index */
    struct ip_bench_output output;   /* MSG_OUTPUT */
    long maxrss_kb, start_rss_kb;    /* MSG_END */
    char text[IP_ERROR_MSG_MAX];     /* MSG_RUN: first failure, "PATH: reason" */
};

struct ip_bench {
    struct ip_bench_config cfg;      /* lists point at the copies below */
    struct ip_task *tasks;           /* copies; strings owned here */
    enum ip_exec_kind *strategies;
    enum ip_split *splits;
    int *jobs;                       /* sorted, unique, 1 included */
    struct ip_bench_report report;
    atomic_int cancelled;
    pid_t parent;
    uint64_t t0_ns;                  /* ip_bench_run started */
    size_t runs_done, runs_total;
    double runs_wall_s;              /* summed wall time of finished runs, for the ETA */
    char ref_msg[IP_ERROR_MSG_MAX];  /* why the reference run failed */
};

/* ---- small helpers ---- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* A "Key:   value kB" line of /proc/self/status, in KiB; 0 if absent. */
static long proc_status_kb(const char *key)
{
    char line[256];
    size_t klen = strlen(key);
    long v = 0;
    FILE *f = fopen("/proc/self/status", "re");

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static uint64_t fnv1a64_update(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Checksums a whole file with a fixed buffer (no allocation, so it does
 * not move the child's peak RSS). Returns 0, or -1 when it cannot be read. */
static int file_checksum(const char *path, struct ip_bench_output *out)
{
    uint8_t buf[1 << 16];
    uint64_t h = 0xcbf29ce484222325ull, bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    memset(out, 0, sizeof *out);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        h = fnv1a64_update(h, buf, (size_t)n);
        bytes += (uint64_t)n;
    }
    close(fd);
    out->present = 1;
    out->bytes = bytes;
    out->fnv1a64 = h;
    return 0;
}

/* ---- machine ---- */

void ip_bench_machine_get(struct ip_bench_machine *m)
{
    struct utsname u;
    cpu_set_t set;
    char line[512];
    FILE *f;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    time_t now = time(NULL);
    struct tm tm;

    memset(m, 0, sizeof *m);
    copy_str(m->cpu_model, sizeof m->cpu_model, "unknown");
    f = fopen("/proc/cpuinfo", "re");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon || (strncmp(line, "model name", 10) && strncmp(line, "Model", 5) &&
                           strncmp(line, "cpu model", 9)))
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            copy_str(m->cpu_model, sizeof m->cpu_model, colon);
            break;
        }
        fclose(f);
    }
    m->online_cpus = online_cpus();
    m->affinity_cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : m->online_cpus;
    m->mem_bytes = (pages > 0 && psize > 0) ? (uint64_t)pages * (uint64_t)psize : 0;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%.40s %.60s %.20s", u.sysname, u.release, u.machine);
    else
        copy_str(m->kernel, sizeof m->kernel, "unknown");
#if defined(__clang__)
    copy_str(m->compiler, sizeof m->compiler, "clang " __clang_version__);
#elif defined(__GNUC__)
    copy_str(m->compiler, sizeof m->compiler, "gcc " __VERSION__);
#else
    copy_str(m->compiler, sizeof m->compiler, "unknown");
#endif
    copy_str(m->libpng, sizeof m->libpng, png_get_libpng_ver(NULL));
#ifdef LIBJPEG_TURBO_VERSION
    copy_str(m->libjpeg, sizeof m->libjpeg, "libjpeg-turbo " STR(LIBJPEG_TURBO_VERSION));
#else
    snprintf(m->libjpeg, sizeof m->libjpeg, "libjpeg %d", JPEG_LIB_VERSION);
#endif
#ifdef LIBDEFLATE_VERSION_STRING
    copy_str(m->libdeflate, sizeof m->libdeflate, LIBDEFLATE_VERSION_STRING);
#endif
#ifdef ZLIB_VERSION
    copy_str(m->zlib, sizeof m->zlib, zlibVersion());
#endif
    copy_str(m->imgpar, sizeof m->imgpar, ip_version());
    if (gmtime_r(&now, &tm))
        strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (getloadavg(m->loadavg, 1) != 1)
        m->loadavg[0] = NAN;
    m->loadavg[1] = NAN;
}

/* ---- configuration ---- */

void ip_bench_config_default(struct ip_bench_config *c)
{
    static const enum ip_exec_kind strategies[] = {IP_EXEC_SERIAL, IP_EXEC_THREADS, IP_EXEC_PROCS};
    static const enum ip_split splits[] = {IP_SPLIT_IMAGE, IP_SPLIT_STRIPS};
    static const int jobs[] = {1};

    memset(c, 0, sizeof *c);
    ip_pipeline_config_default(&c->pipeline);
    c->strategies = strategies;
    c->n_strategies = 3;
    c->splits = splits;
    c->n_splits = 2;
    c->jobs = jobs;
    c->n_jobs = 1;
    c->repeat = 3;
    c->warmup = 1;
}

static void free_tasks(struct ip_task *tasks, size_t n)
{
    for (size_t i = 0; tasks && i < n; i++) {
        free((char *)tasks[i].in_path);
        free((char *)tasks[i].out_path);
    }
    free(tasks);
}

void ip_bench_destroy(struct ip_bench *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->report.n_results; i++)
        free(b->report.results[i].samples);
    free(b->report.results);
    free(b->report.reference);
    free_tasks(b->tasks, b->cfg.n_tasks);
    free(b->strategies);
    free(b->splits);
    free(b->jobs);
    free(b);
}

int ip_bench_create(struct ip_bench **out, const struct ip_bench_config *cfg, struct ip_error *err)
{
    struct ip_bench *b;
    size_t n_jobs = 0, n_results = 0, k = 0;
    int rc;

    *out = NULL;
    if (!cfg->n_tasks || !cfg->tasks)
        return ip_error_set(err, IP_EINVAL, "no inputs to benchmark");
    if (!cfg->n_strategies || !cfg->n_splits || !cfg->strategies || !cfg->splits)
        return ip_error_set(err, IP_EINVAL, "no strategy or split to benchmark");
    if (cfg->repeat < 1 || cfg->warmup < 0 || cfg->repeat > 1000000 || cfg->warmup > 1000000)
        return ip_error_set(err, IP_EINVAL, "repeat must be >= 1 and warmup >= 0");
    if (cfg->n_jobs > IP_BENCH_MAX_JOBS || cfg->n_strategies > 16 || cfg->n_splits > 16)
        return ip_error_set(err, IP_EINVAL, "too many configurations");
    for (size_t i = 0; i < cfg->n_jobs; i++)
        if (cfg->jobs[i] < 1 || cfg->jobs[i] > IP_BENCH_MAX_JOBS)
            return ip_error_set(err, IP_EINVAL, "jobs must be in 1..%d", IP_BENCH_MAX_JOBS);
    for (size_t i = 0; i < cfg->n_strategies; i++)
        if (!ip_exec_ops_get(cfg->strategies[i]))
            return ip_error_set(err, IP_EINVAL, "unknown strategy");

    b = calloc(1, sizeof *b);
    if (!b)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    b->cfg = *cfg;
    b->cfg.n_tasks = 0;   /* counts copied tasks until all are */
    b->tasks = calloc(cfg->n_tasks, sizeof *b->tasks);
    b->strategies = malloc(cfg->n_strategies * sizeof *b->strategies);
    b->splits = malloc(cfg->n_splits * sizeof *b->splits);
    b->jobs = malloc((cfg->n_jobs + 1) * sizeof *b->jobs);
    b->report.reference = calloc(cfg->n_tasks, sizeof *b->report.reference);
    if (!b->tasks || !b->strategies || !b->splits || !b->jobs || !b->report.reference)
        goto oom;
    for (size_t i = 0; i < cfg->n_tasks; i++) {
        char *in = strdup(cfg->tasks[i].in_path), *outp = strdup(cfg->tasks[i].out_path);
        if (!in || !outp) {
            free(in);
            free(outp);
            goto oom;
        }
        b->tasks[i].in_path = in;
        b->tasks[i].out_path = outp;
        b->tasks[i].out_format = cfg->tasks[i].out_format;
        b->cfg.n_tasks = i + 1;
    }
    memcpy(b->strategies, cfg->strategies, cfg->n_strategies * sizeof *b->strategies);
    memcpy(b->splits, cfg->splits, cfg->n_splits * sizeof *b->splits);
    /* j: sorted, unique, 1 included. */
    b->jobs[n_jobs++] = 1;
    for (size_t i = 0; i < cfg->n_jobs; i++)
        b->jobs[n_jobs++] = cfg->jobs[i];
    qsort(b->jobs, n_jobs, sizeof *b->jobs, cmp_int);
    k = 1;
    for (size_t i = 1; i < n_jobs; i++)
        if (b->jobs[i] != b->jobs[k - 1])
            b->jobs[k++] = b->jobs[i];
    n_jobs = k;
    b->cfg.tasks = b->tasks;
    b->cfg.strategies = b->strategies;
    b->cfg.splits = b->splits;
    b->cfg.jobs = b->jobs;
    b->cfg.n_jobs = n_jobs;
    if (b->cfg.online_cpus <= 0)
        b->cfg.online_cpus = online_cpus();

    for (size_t s = 0; s < cfg->n_strategies; s++)
        n_results += cfg->n_splits * (cfg->strategies[s] == IP_EXEC_SERIAL ? 1 : n_jobs);
    b->report.results = calloc(n_results, sizeof *b->report.results);
    if (!b->report.results)
        goto oom;
    b->report.n_results = n_results;
    k = 0;
    for (size_t s = 0; s < cfg->n_strategies; s++) {
        for (size_t p = 0; p < cfg->n_splits; p++) {
            size_t nj = cfg->strategies[s] == IP_EXEC_SERIAL ? 1 : n_jobs;
            for (size_t j = 0; j < nj; j++) {
                struct ip_bench_result *r = &b->report.results[k++];
                r->exec = cfg->strategies[s];
                r->split = cfg->splits[p];
                r->jobs = b->jobs[j];
                r->oversubscribed = r->jobs > b->cfg.online_cpus;
                r->min_s = r->median_s = r->median_cpu_s = NAN;
                r->images_per_s = r->megapixels_per_s = NAN;
                r->speedup = r->efficiency = r->karp_flatt = r->speedup_vs_serial = NAN;
                r->samples = calloc((size_t)(cfg->warmup + cfg->repeat), sizeof *r->samples);
                if (!r->samples)
                    goto oom;
            }
        }
    }

    ip_bench_machine_get(&b->report.machine);
    b->report.pipeline = cfg->pipeline;
    b->report.pipeline.on_result = NULL;
    b->report.pipeline.cb_ctx = NULL;
    b->report.repeat = cfg->repeat;
    b->report.warmup = cfg->warmup;
    b->report.tasks = b->tasks;
    b->report.n_tasks = b->cfg.n_tasks;
    b->report.reference_wall_s = NAN;
    b->report.rss_method = "each run (warm-up or measured) runs in its own forked child process; a "
                           "configuration's peak RSS is the largest getrusage ru_maxrss of those "
                           "children (each includes start_rss_kb inherited at fork); "
                           "worker = largest ru_maxrss a procs worker reported";
    for (size_t i = 0; i < b->cfg.n_tasks; i++) {
        struct stat st;
        if (stat(b->tasks[i].in_path, &st) == 0)
            b->report.bytes_in += (uint64_t)st.st_size;
    }
    b->parent = getpid();
    atomic_init(&b->cancelled, 0);
    *out = b;
    return 0;

oom:
    rc = ip_error_set(err, IP_ENOMEM, "out of memory");
    ip_bench_destroy(b);
    return rc;
}

void ip_bench_cancel(struct ip_bench *b)
{
    atomic_store(&b->cancelled, 1);
}

const struct ip_bench_report *ip_bench_report_get(const struct ip_bench *b)
{
    return &b->report;
}

/* ---- the child: runs one configuration ---- */

struct child_ctx {
    uint64_t failed;
    char first_failure[IP_ERROR_MSG_MAX];
};

static void child_on_result(void *ctx, const struct ip_result *r)
{
    struct child_ctx *c = ctx;

    if (r->status != IP_RESULT_FAILED)
        return;
    if (!c->failed++)
        snprintf(c->first_failure, sizeof c->first_failure, "%.120s: %.120s", r->in_path,
                 r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
}

struct task_source {
    const struct ip_task *tasks;
    size_t n, next;
};

static int task_next(void *ctx, struct ip_task *task)
{
    struct task_source *s = ctx;

    if (s->next >= s->n)
        return 0;
    *task = s->tasks[s->next++];
    return 1;
}

static void send_msg(int fd, const struct msg *m)
{
    const char *p = (const char *)m;
    size_t left = sizeof *m;

    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(3);   /* the bench is gone */
        p += n;
        left -= (size_t)n;
    }
}

/* User + system CPU seconds of this process and of its reaped children. */
static double cpu_seconds(void)
{
    struct rusage self, kids;
    double s = 0;

    if (getrusage(RUSAGE_SELF, &self) == 0)
        s += (double)self.ru_utime.tv_sec + (double)self.ru_stime.tv_sec +
             ((double)self.ru_utime.tv_usec + (double)self.ru_stime.tv_usec) / 1e6;
    if (getrusage(RUSAGE_CHILDREN, &kids) == 0)
        s += (double)kids.ru_utime.tv_sec + (double)kids.ru_stime.tv_sec +
             ((double)kids.ru_utime.tv_usec + (double)kids.ru_stime.tv_usec) / 1e6;
    return s;
}

/* One timed run; fills m->sample and m->text. The procs workers are reaped
 * by ip_pipeline_destroy, so their CPU time is in RUSAGE_CHILDREN by then. */
static void child_run(const struct ip_bench *b, const struct ip_pipeline_config *pc,
                      struct child_ctx *cc, struct msg *m)
{
    struct ip_pipeline *p = NULL;
    struct task_source ts = {b->tasks, b->cfg.n_tasks, 0};
    struct ip_source src = {task_next, &ts, b->cfg.n_tasks};
    struct ip_error err;
    uint64_t t0;
    double cpu0;
    int rc;

    ip_error_clear(&err);
    cc->failed = 0;
    cc->first_failure[0] = '\0';
    cpu0 = cpu_seconds();
    t0 = ip__now_ns();
    rc = ip_pipeline_create(&p, pc, &err);
    if (rc == 0) {
        rc = ip_pipeline_run(p, &src, &m->sample.stats, &err);
        ip_pipeline_destroy(p);
    }
    m->sample.wall_s = (double)(ip__now_ns() - t0) / 1e9;
    m->sample.cpu_s = cpu_seconds() - cpu0;
    m->sample.status = rc;
    if (rc)
        snprintf(m->text, sizeof m->text, "%s", err.msg[0] ? err.msg : ip_strerror(rc));
    else if (cc->failed)
        snprintf(m->text, sizeof m->text, "%s", cc->first_failure);
}

/* Runs run number r of a configuration (res NULL: the reference run). */
static void __attribute__((noreturn))
child_main(const struct ip_bench *b, const struct ip_bench_result *res, int r, int fd)
{
    struct ip_pipeline_config pc = b->report.pipeline;
    struct child_ctx cc;
    struct rusage ru;
    struct msg m;
    long start_rss;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != b->parent)
        _exit(0);
    start_rss = proc_status_kb("VmRSS");
    memset(&cc, 0, sizeof cc);
    pc.exec = res ? res->exec : IP_EXEC_SERIAL;
    pc.jobs = res ? res->jobs : 1;
    pc.split = res ? res->split : IP_SPLIT_IMAGE;
    pc.on_result = child_on_result;
    pc.cb_ctx = &cc;

    memset(&m, 0, sizeof m);
    m.type = MSG_RUN;
    m.run = r;
    m.sample.warmup = res ? r < b->cfg.warmup : 0;
    m.sample.first_mismatch = UINT64_MAX;
    child_run(b, &pc, &cc, &m);
    for (size_t i = 0; i < b->cfg.n_tasks; i++) {
        struct ip_bench_output o;
        const char *path = b->tasks[i].out_path;
        if (file_checksum(path, &o) != 0)
            memset(&o, 0, sizeof o);
        unlink(path);
        if (!res) {
            struct msg om;
            memset(&om, 0, sizeof om);
            om.type = MSG_OUTPUT;
            om.index = i;
            om.output = o;
            send_msg(fd, &om);
            continue;
        }
        const struct ip_bench_output *ref = &b->report.reference[i];
        if (o.present != ref->present || o.bytes != ref->bytes || o.fnv1a64 != ref->fnv1a64) {
            if (!m.sample.mismatches++)
                m.sample.first_mismatch = i;
        }
    }
    send_msg(fd, &m);
    memset(&m, 0, sizeof m);
    m.type = MSG_END;
    m.start_rss_kb = start_rss;
    m.maxrss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    send_msg(fd, &m);
    _exit(0);
}

/* ---- the parent ---- */

static void progress(struct ip_bench *b, const struct ip_bench_result *res, size_t config, int run,
                     double last_wall_s)
{
    struct ip_bench_progress p;
    double elapsed = (double)(ip__now_ns() - b->t0_ns) / 1e9;

    if (!b->cfg.on_progress)
        return;
    memset(&p, 0, sizeof p);
    p.result = res;
    p.config = config;
    p.n_configs = b->report.n_results;
    p.run = run;
    p.n_runs = res ? b->cfg.warmup + b->cfg.repeat : 1;
    p.n_warmup = res ? b->cfg.warmup : 0;
    p.runs_done = b->runs_done;
    p.runs_total = b->runs_total;
    p.last_wall_s = last_wall_s;
    p.elapsed_s = elapsed;
    p.eta_s = b->runs_done ? b->runs_wall_s / (double)b->runs_done * (double)(b->runs_total - b->runs_done)
                           : -1.0;
    b->cfg.on_progress(b->cfg.cb_ctx, &p);
}

/* Takes one record from a child. */
static void take_msg(struct ip_bench *b, struct ip_bench_result *res, size_t config,
                     const struct msg *m)
{
    struct ip_bench_report *rep = &b->report;

    switch (m->type) {
    case MSG_OUTPUT:
        if (!res && m->index < rep->n_tasks)
            rep->reference[m->index] = m->output;
        break;
    case MSG_RUN:
        b->runs_done++;
        b->runs_wall_s += m->sample.wall_s;
        if (!res) {
            rep->reference_wall_s = m->sample.wall_s;
            rep->images = m->sample.stats.images_ok;
            rep->megapixels = m->sample.stats.megapixels;
            rep->failed += m->sample.stats.images_failed;
            if ((m->sample.status || m->sample.stats.images_failed) && !b->ref_msg[0])
                copy_str(b->ref_msg, sizeof b->ref_msg, m->text[0] ? m->text : "some files failed");
            progress(b, NULL, config, 1, m->sample.wall_s);
            break;
        }
        if (m->run >= 0 && m->run < b->cfg.warmup + b->cfg.repeat) {
            res->samples[m->run] = m->sample;
            if (m->run + 1 > res->n_samples)
                res->n_samples = m->run + 1;
        }
        res->failed += m->sample.stats.images_failed;
        res->mismatches += m->sample.mismatches;
        if (m->sample.stats.worker_peak_rss_kb > res->worker_peak_rss_kb)
            res->worker_peak_rss_kb = m->sample.stats.worker_peak_rss_kb;
        if (m->sample.stats.peak_pixel_bytes > res->peak_pixel_bytes)
            res->peak_pixel_bytes = m->sample.stats.peak_pixel_bytes;
        res->mem_bound_kb = (long)(res->peak_pixel_bytes / 1024) + IP_BENCH_MEM_SLACK_KB;
        if (!res->status && m->sample.status) {
            res->status = m->sample.status;
            copy_str(res->msg, sizeof res->msg, m->text);
        }
        if (!res->msg[0] && m->sample.stats.images_failed)
            copy_str(res->msg, sizeof res->msg, m->text);
        if (!res->msg[0] && m->sample.mismatches && m->sample.first_mismatch < rep->n_tasks)
            snprintf(res->msg, sizeof res->msg, "%s: output differs from the serial reference",
                     rep->tasks[m->sample.first_mismatch].in_path);
        progress(b, res, config, m->run + 1, m->sample.wall_s);
        break;
    case MSG_END:
        if (res) {
            if (m->maxrss_kb > res->peak_rss_kb)
                res->peak_rss_kb = m->maxrss_kb;
            res->start_rss_kb = m->start_rss_kb;
        }
        break;
    }
}

/* Forks a child for run number run of one configuration (res NULL: the
 * reference) and collects its records. Returns 0, IP_EINTR when cancelled,
 * or IP_EWORKER when the child could not be started or died (reason in err). */
static int run_child(struct ip_bench *b, struct ip_bench_result *res, size_t config, int run,
                     struct ip_error *err)
{
    struct msg m;
    size_t have = 0;
    int fds[2], status = 0, got_end = 0, rc = 0;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return ip_error_set(err, IP_EWORKER, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        rc = ip_error_set(err, IP_EWORKER, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(b, res, run, fds[1]);
    }
    close(fds[1]);
    progress(b, res, config, run, 0.0);

    for (;;) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        ssize_t n;

        if (atomic_load(&b->cancelled)) {
            kill(pid, SIGKILL);
            rc = IP_EINTR;
            ip_error_set(err, IP_EINTR, "interrupted");
            break;
        }
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = read(fds[0], (char *)&m + have, sizeof m - have);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (have < sizeof m)
            continue;
        have = 0;
        if (m.type == MSG_END)
            got_end = 1;
        take_msg(b, res, config, &m);
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* Killed (by the cancel above, or anything else): it may have died
     * between creating its shared memory object and unlinking the name. */
    if (rc || WIFSIGNALED(status))
        ip__shm_sweep_stale();
    if (rc)
        return rc;
    if (!got_end || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[64];
        if (WIFSIGNALED(status))
            snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
        else
            snprintf(why, sizeof why, "exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return ip_error_set(err, IP_EWORKER, "bench child process %s", why);
    }
    return 0;
}

/* Min, median and the derived figures of one configuration. */
static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void summarize(struct ip_bench_result *r)
{
    double walls[64], *w = walls;
    int n = 0, nearest = -1;

    if (r->n_samples > 64) {
        w = malloc((size_t)r->n_samples * sizeof *w);
        if (!w)
            return;
    }
    for (int i = 0; i < r->n_samples; i++)
        if (!r->samples[i].warmup && r->samples[i].status == 0)
            w[n++] = r->samples[i].cpu_s;
    if (n > 0)
        r->median_cpu_s = median_of(w, n);
    n = 0;
    for (int i = 0; i < r->n_samples; i++)
        if (!r->samples[i].warmup && r->samples[i].status == 0)
            w[n++] = r->samples[i].wall_s;
    if (n > 0) {
        r->median_s = median_of(w, n);
        r->min_s = w[0];
        for (int i = 0; i < r->n_samples; i++) {
            const struct ip_bench_sample *s = &r->samples[i];
            if (s->warmup || s->status)
                continue;
            if (nearest < 0 || fabs(s->wall_s - r->median_s) < fabs(r->samples[nearest].wall_s - r->median_s))
                nearest = i;
        }
        const struct ip_stats *st = &r->samples[nearest].stats;
        memcpy(r->busy_ns, st->busy_ns, sizeof r->busy_ns);
        r->images = st->images_ok;
        r->megapixels = st->megapixels;
        if (r->median_s > 0) {
            r->images_per_s = (double)r->images / r->median_s;
            r->megapixels_per_s = r->megapixels / r->median_s;
        }
    }
    if (w != walls)
        free(w);
}

static const struct ip_bench_result *find_result(const struct ip_bench_report *rep,
                                                 enum ip_exec_kind exec, enum ip_split split, int jobs)
{
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        if (r->exec == exec && r->split == split && r->jobs == jobs)
            return r;
    }
    return NULL;
}

static void derive(struct ip_bench_report *rep)
{
    for (size_t i = 0; i < rep->n_results; i++)
        summarize(&rep->results[i]);
    rep->mismatches = 0;
    rep->failed_configs = 0;
    for (size_t i = 0; i < rep->n_results; i++) {
        struct ip_bench_result *r = &rep->results[i];
        const struct ip_bench_result *one = find_result(rep, r->exec, r->split, 1);
        const struct ip_bench_result *serial = find_result(rep, IP_EXEC_SERIAL, r->split, 1);
        double p = r->jobs;

        rep->mismatches += r->mismatches;
        rep->failed += r->failed;
        if (r->status)
            rep->failed_configs++;
        if (!(r->median_s > 0))
            continue;
        if (one && one->median_s > 0) {
            r->speedup = one->median_s / r->median_s;
            r->efficiency = r->speedup / p;
            if (r->jobs > 1)
                r->karp_flatt = (1.0 / r->speedup - 1.0 / p) / (1.0 - 1.0 / p);
        }
        if (serial && serial->median_s > 0)
            r->speedup_vs_serial = serial->median_s / r->median_s;
    }
}

int ip_bench_run(struct ip_bench *b, struct ip_error *err)
{
    struct ip_bench_report *rep = &b->report;
    struct ip_error cerr;
    int rc;

    b->t0_ns = ip__now_ns();
    b->runs_done = 0;
    b->runs_total = 1 + rep->n_results * (size_t)(b->cfg.warmup + b->cfg.repeat);
    b->runs_wall_s = 0;

    rc = run_child(b, NULL, 0, 0, err);
    if (rc)
        return rc;
    if (b->ref_msg[0] || rep->failed)
        return ip_error_set(err, IP_EINVAL, "the serial reference run failed: %s",
                            b->ref_msg[0] ? b->ref_msg : "some files failed");
    rep->failed = 0;
    rep->bytes_out = 0;
    for (size_t i = 0; i < rep->n_tasks; i++)
        rep->bytes_out += rep->reference[i].bytes;
    if (b->cfg.test_corrupt_reference && rep->n_tasks)
        rep->reference[0].fnv1a64 ^= 1;

    for (size_t i = 0; i < rep->n_results; i++) {
        struct ip_bench_result *r = &rep->results[i];

        /* Until a run fails: the rest of this configuration is not run. */
        for (int run = 0; run < b->cfg.warmup + b->cfg.repeat && !r->status; run++) {
            ip_error_clear(&cerr);
            rc = run_child(b, r, i, run, &cerr);
            if (rc == IP_EINTR) {
                derive(rep);
                return ip_error_set(err, IP_EINTR, "interrupted");
            }
            if (rc && !r->status) {
                r->status = rc;
                copy_str(r->msg, sizeof r->msg, cerr.msg);
            }
        }
    }
    derive(rep);
    rep->bench_peak_rss_kb = ip_peak_rss_kb();
    if (getloadavg(&rep->machine.loadavg[1], 1) != 1)
        rep->machine.loadavg[1] = NAN;
    return 0;
}

/* ---- writers ---- */

static double ns_s(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void csv_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.9g", v);
    else
        fputs(",", f);
}

static void chain_text(char *buf, size_t cap, const struct ip_pipeline_config *pc)
{
    size_t len = 0;

    buf[0] = '\0';
    if (pc->no_filter) {
        snprintf(buf, cap, "none (--no-filter)");
        return;
    }
    for (int i = 0; i < pc->chain.count && len < cap; i++) {
        const struct ip_filter *fl = &pc->chain.filters[i];
        int n = 0;
        switch (fl->kind) {
        case IP_FILTER_GRAY: n = snprintf(buf + len, cap - len, "%sgray(%d)", i ? " " : "", (int)fl->gray); break;
        case IP_FILTER_GAUSS: n = snprintf(buf + len, cap - len, "%sgauss(%g)", i ? " " : "", fl->sigma); break;
        case IP_FILTER_BOX: n = snprintf(buf + len, cap - len, "%sbox(%d)", i ? " " : "", fl->radius); break;
        }
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (!pc->chain.count)
        snprintf(buf, cap, "copy");
}

static const char *decoder_name(enum ip_decoder d)
{
    return d == IP_DECODER_STB ? "stb" : "native";
}

int ip_bench_write_csv(FILE *f, const struct ip_bench_report *rep)
{
    const struct ip_bench_machine *m = &rep->machine;
    char chain[256];

    chain_text(chain, sizeof chain, &rep->pipeline);
    fprintf(f, "# imgpar bench %s, %s\n", m->imgpar, m->date);
    fprintf(f, "# cpu_model: %s\n# online_cpus: %d\n# affinity_cpus: %d\n# mem_bytes: %llu\n",
            m->cpu_model, m->online_cpus, m->affinity_cpus, (unsigned long long)m->mem_bytes);
    fprintf(f, "# kernel: %s\n# compiler: %s\n# libpng: %s\n# libjpeg: %s\n# libdeflate: %s\n# zlib: %s\n",
            m->kernel, m->compiler, m->libpng, m->libjpeg, m->libdeflate, m->zlib);
    fprintf(f, "# loadavg_start: %.2f\n# loadavg_end: %.2f\n", m->loadavg[0], m->loadavg[1]);
    fprintf(f, "# inputs: %zu\n# images: %llu\n# megapixels: %.6f\n# bytes_in: %llu\n# bytes_out: %llu\n",
            rep->n_tasks, (unsigned long long)rep->images, rep->megapixels,
            (unsigned long long)rep->bytes_in, (unsigned long long)rep->bytes_out);
    fprintf(f, "# chain: %s\n# png_level: %d\n# jpeg_quality: %d\n# decoder: %s\n# repeat: %d\n# warmup: %d\n",
            chain, rep->pipeline.encode.png_level, rep->pipeline.encode.jpeg_quality,
            decoder_name(rep->pipeline.decode.decoder), rep->repeat, rep->warmup);
    fprintf(f, "# reference_wall_s: %.9g\n# wall_s: pipeline create+run+destroy; run_s: the pipeline's own run time\n",
            rep->reference_wall_s);
    fprintf(f, "# rss: %s\n", rep->rss_method);
    fputs("strategy,split,jobs,oversubscribed,run,warmup,status,wall_s,cpu_s,run_s,images,failed,megapixels,"
          "mismatches",
          f);
    for (int s = 0; s < IP_STAGE_COUNT; s++)
        fprintf(f, ",%s_s", ip_stage_name((enum ip_stage)s));
    fputs(",run_peak_rss_kb,run_worker_peak_rss_kb,run_peak_pixel_bytes,min_s,median_s,median_cpu_s,images_per_s,"
          "mp_per_s,speedup,efficiency,karp_flatt,speedup_vs_serial,peak_rss_kb,start_rss_kb,worker_peak_rss_kb,"
          "peak_pixel_bytes,mem_bound_kb,config_status\n",
          f);
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        for (int k = 0; k < r->n_samples; k++) {
            const struct ip_bench_sample *s = &r->samples[k];
            fprintf(f, "%s,%s,%d,%d,%d,%d,%d", ip_exec_name(r->exec), ip_split_name(r->split),
                    r->jobs, r->oversubscribed, k, s->warmup, s->status);
            csv_num(f, s->wall_s);
            csv_num(f, s->cpu_s);
            csv_num(f, s->stats.wall_s);
            fprintf(f, ",%llu,%llu", (unsigned long long)s->stats.images_ok,
                    (unsigned long long)s->stats.images_failed);
            csv_num(f, s->stats.megapixels);
            fprintf(f, ",%llu", (unsigned long long)s->mismatches);
            for (int st = 0; st < IP_STAGE_COUNT; st++)
                csv_num(f, ns_s(s->stats.busy_ns[st]));
            fprintf(f, ",%ld,%ld,%llu", s->stats.peak_rss_kb, s->stats.worker_peak_rss_kb,
                    (unsigned long long)s->stats.peak_pixel_bytes);
            csv_num(f, r->min_s);
            csv_num(f, r->median_s);
            csv_num(f, r->median_cpu_s);
            csv_num(f, r->images_per_s);
            csv_num(f, r->megapixels_per_s);
            csv_num(f, r->speedup);
            csv_num(f, r->efficiency);
            csv_num(f, r->karp_flatt);
            csv_num(f, r->speedup_vs_serial);
            fprintf(f, ",%ld,%ld,%ld,%llu,%ld,%d\n", r->peak_rss_kb, r->start_rss_kb, r->worker_peak_rss_kb,
                    (unsigned long long)r->peak_pixel_bytes, r->mem_bound_kb, r->status);
        }
    }
    return ferror(f) ? IP_EIO : 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void json_kv_str(FILE *f, const char *k, const char *v, int comma)
{
    fprintf(f, "\"%s\": ", k);
    json_str(f, v);
    if (comma)
        fputs(", ", f);
}

static void json_kv_num(FILE *f, const char *k, double v, int comma)
{
    fprintf(f, "\"%s\": ", k);
    json_num(f, v);
    if (comma)
        fputs(", ", f);
}

static void json_kv_int(FILE *f, const char *k, long long v, int comma)
{
    fprintf(f, "\"%s\": %lld%s", k, v, comma ? ", " : "");
}

static void json_busy(FILE *f, const uint64_t *busy_ns)
{
    fputc('{', f);
    for (int s = 0; s < IP_STAGE_COUNT; s++) {
        fprintf(f, "%s\"%s\": ", s ? ", " : "", ip_stage_name((enum ip_stage)s));
        json_num(f, ns_s(busy_ns[s]));
    }
    fputc('}', f);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int ip_bench_write_json(FILE *f, const struct ip_bench_report *rep)
{
    const struct ip_bench_machine *m = &rep->machine;
    const struct ip_pipeline_config *pc = &rep->pipeline;
    char chain[256];

    chain_text(chain, sizeof chain, pc);
    fputs("{\n  \"format\": \"imgpar-bench-1\",\n  \"machine\": {", f);
    json_kv_str(f, "cpu_model", m->cpu_model, 1);
    json_kv_int(f, "online_cpus", (long long)m->online_cpus, 1);
    json_kv_int(f, "affinity_cpus", (long long)m->affinity_cpus, 1);
    json_kv_int(f, "mem_bytes", (long long)m->mem_bytes, 1);
    json_kv_str(f, "kernel", m->kernel, 1);
    json_kv_str(f, "compiler", m->compiler, 1);
    json_kv_str(f, "libpng", m->libpng, 1);
    json_kv_str(f, "libjpeg", m->libjpeg, 1);
    json_kv_str(f, "libdeflate", m->libdeflate, 1);
    json_kv_str(f, "zlib", m->zlib, 1);
    json_kv_str(f, "imgpar", m->imgpar, 1);
    json_kv_num(f, "loadavg_start", m->loadavg[0], 1);
    json_kv_num(f, "loadavg_end", m->loadavg[1], 1);
    json_kv_str(f, "date", m->date, 0);
    fputs("},\n  \"workload\": {", f);
    json_kv_int(f, "inputs", (long long)rep->n_tasks, 1);
    json_kv_int(f, "images", (long long)rep->images, 1);
    json_kv_num(f, "megapixels", rep->megapixels, 1);
    json_kv_int(f, "bytes_in", (long long)rep->bytes_in, 1);
    json_kv_int(f, "bytes_out", (long long)rep->bytes_out, 1);
    json_kv_str(f, "chain", chain, 1);
    fprintf(f, "\"no_filter\": %s, ", pc->no_filter ? "true" : "false");
    json_kv_int(f, "png_level", (long long)pc->encode.png_level, 1);
    json_kv_int(f, "jpeg_quality", (long long)pc->encode.jpeg_quality, 1);
    json_kv_str(f, "decoder", decoder_name(pc->decode.decoder), 1);
    json_kv_int(f, "io_threads", (long long)pc->io_threads, 1);
    json_kv_int(f, "writers", (long long)pc->writers, 1);
    json_kv_int(f, "queue", (long long)pc->queue, 1);
    json_kv_int(f, "mem", (long long)pc->mem, 1);
    json_kv_int(f, "repeat", (long long)rep->repeat, 1);
    json_kv_int(f, "warmup", (long long)rep->warmup, 0);
    fputs("},\n  \"notes\": {", f);
    json_kv_str(f, "wall_s", "ip_pipeline_create + run + destroy, CLOCK_MONOTONIC; run_s is the pipeline's own run time", 1);
    json_kv_str(f, "cpu_s", "user + system CPU seconds of the run (getrusage self + reaped children: procs workers included)", 1);
    json_kv_str(f, "speedup", "median_s(j=1, same strategy and split) / median_s", 1);
    json_kv_str(f, "karp_flatt", "(1/speedup - 1/p) / (1 - 1/p) with p = jobs; null at p = 1", 1);
    json_kv_str(f, "busy", "seconds summed over the threads or processes of each stage, measured run nearest the median", 1);
    json_kv_str(f, "rss", rep->rss_method, 1);
    json_kv_str(f, "checksum", "FNV-1a 64-bit of each whole output file, compared with the serial -j1 reference", 0);
    fputs("},\n  \"reference\": {\"strategy\": \"serial\", \"split\": \"image\", \"jobs\": 1, ", f);
    json_kv_num(f, "wall_s", rep->reference_wall_s, 1);
    fputs("\"outputs\": [", f);
    for (size_t i = 0; i < rep->n_tasks; i++) {
        const struct ip_bench_output *o = &rep->reference[i];
        char hex[20];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)o->fnv1a64);
        fprintf(f, "%s\n    {", i ? "," : "");
        json_kv_str(f, "input", rep->tasks[i].in_path, 1);
        json_kv_str(f, "output", base_name(rep->tasks[i].out_path), 1);
        fprintf(f, "\"present\": %s, ", o->present ? "true" : "false");
        json_kv_int(f, "bytes", (long long)o->bytes, 1);
        json_kv_str(f, "fnv1a64", hex, 0);
        fputc('}', f);
    }
    fputs("]},\n  \"configurations\": [", f);
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        fprintf(f, "%s\n    {", i ? "," : "");
        json_kv_str(f, "strategy", ip_exec_name(r->exec), 1);
        json_kv_str(f, "split", ip_split_name(r->split), 1);
        json_kv_int(f, "jobs", (long long)r->jobs, 1);
        fprintf(f, "\"oversubscribed\": %s, ", r->oversubscribed ? "true" : "false");
        json_kv_int(f, "status", (long long)r->status, 1);
        json_kv_str(f, "message", r->msg, 1);
        json_kv_num(f, "min_s", r->min_s, 1);
        json_kv_num(f, "median_s", r->median_s, 1);
        json_kv_num(f, "median_cpu_s", r->median_cpu_s, 1);
        json_kv_num(f, "images_per_s", r->images_per_s, 1);
        json_kv_num(f, "mp_per_s", r->megapixels_per_s, 1);
        json_kv_num(f, "speedup", r->speedup, 1);
        json_kv_num(f, "efficiency", r->efficiency, 1);
        json_kv_num(f, "karp_flatt", r->karp_flatt, 1);
        json_kv_num(f, "speedup_vs_serial", r->speedup_vs_serial, 1);
        fputs("\"busy_s\": ", f);
        json_busy(f, r->busy_ns);
        fputs(", ", f);
        json_kv_int(f, "peak_rss_kb", (long long)r->peak_rss_kb, 1);
        json_kv_int(f, "start_rss_kb", (long long)r->start_rss_kb, 1);
        json_kv_int(f, "worker_peak_rss_kb", (long long)r->worker_peak_rss_kb, 1);
        json_kv_int(f, "peak_pixel_bytes", (long long)r->peak_pixel_bytes, 1);
        json_kv_int(f, "mem_bound_kb", (long long)r->mem_bound_kb, 1);
        fprintf(f, "\"within_mem_bound\": %s, ", r->peak_rss_kb <= r->mem_bound_kb ? "true" : "false");
        json_kv_int(f, "images", (long long)r->images, 1);
        json_kv_num(f, "megapixels", r->megapixels, 1);
        json_kv_int(f, "failed", (long long)r->failed, 1);
        json_kv_int(f, "mismatches", (long long)r->mismatches, 1);
        fputs("\"runs\": [", f);
        for (int k = 0; k < r->n_samples; k++) {
            const struct ip_bench_sample *s = &r->samples[k];
            fprintf(f, "%s\n      {", k ? "," : "");
            fprintf(f, "\"warmup\": %s, ", s->warmup ? "true" : "false");
            json_kv_int(f, "status", (long long)s->status, 1);
            json_kv_num(f, "wall_s", s->wall_s, 1);
            json_kv_num(f, "cpu_s", s->cpu_s, 1);
            json_kv_num(f, "run_s", s->stats.wall_s, 1);
            json_kv_int(f, "images", (long long)s->stats.images_ok, 1);
            json_kv_int(f, "failed", (long long)s->stats.images_failed, 1);
            json_kv_num(f, "megapixels", s->stats.megapixels, 1);
            json_kv_int(f, "mismatches", (long long)s->mismatches, 1);
            fputs("\"busy_s\": ", f);
            json_busy(f, s->stats.busy_ns);
            fputs(", ", f);
            json_kv_int(f, "workers", (long long)s->stats.workers, 1);
            json_kv_int(f, "io_threads", (long long)s->stats.io_threads, 1);
            json_kv_int(f, "writers", (long long)s->stats.writers, 1);
            json_kv_int(f, "queue", (long long)s->stats.queue, 1);
            json_kv_int(f, "peak_rss_kb", (long long)s->stats.peak_rss_kb, 1);
            json_kv_int(f, "worker_peak_rss_kb", (long long)s->stats.worker_peak_rss_kb, 1);
            json_kv_int(f, "peak_pixel_bytes", (long long)s->stats.peak_pixel_bytes, 0);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputs("\n  ],\n", f);
    json_kv_int(f, "bench_peak_rss_kb", (long long)rep->bench_peak_rss_kb, 0);
    fputs(",\n  ", f);
    json_kv_int(f, "mismatches", (long long)rep->mismatches, 1);
    json_kv_int(f, "failed", (long long)rep->failed, 1);
    json_kv_int(f, "failed_configurations", (long long)rep->failed_configs, 1);
    fprintf(f, "\"ok\": %s\n}\n",
            rep->mismatches || rep->failed || rep->failed_configs ? "false" : "true");
    return ferror(f) ? IP_EIO : 0;
}

/* ---- SVG ---- */

static void xml_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if (*p >= 0x20 || *p == '\t' || *p == '\n')
                fputc(*p, f);
        }
    }
}

/* A round step that puts about `want` ticks over [0, span]. */
static double nice_step(double span, int want)
{
    double raw = span / want, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

static const char *exec_colour(enum ip_exec_kind e)
{
    switch (e) {
    case IP_EXEC_SERIAL: return "#666666";
    case IP_EXEC_THREADS: return "#1f77b4";
    case IP_EXEC_PROCS: return "#d62728";
    }
    return "#000000";
}

static const char *split_dash(enum ip_split s)
{
    switch (s) {
    case IP_SPLIT_IMAGE: return "none";
    case IP_SPLIT_STRIPS: return "7 4";
    case IP_SPLIT_AUTO: return "2 3";
    }
    return "none";
}

static const char *const stage_colour[IP_STAGE_COUNT] = {
    "#8c564b", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#d9d9d9", "#c7c7c7", "#e7e7e7",
};

/* The (strategy, split) series, in report order: index of each one's first result. */
static size_t series_list(const struct ip_bench_report *rep, size_t *first, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < rep->n_results; i++) {
        size_t k;
        for (k = 0; k < n; k++)
            if (rep->results[first[k]].exec == rep->results[i].exec &&
                rep->results[first[k]].split == rep->results[i].split)
                break;
        if (k == n && n < cap)
            first[n++] = i;
    }
    return n;
}

int ip_bench_write_svg(FILE *f, const struct ip_bench_report *rep)
{
    enum { W = 1000, PX0 = 70, PX1 = 470, PY0 = 70, PY1 = 390, BX0 = 640, BX1 = 960 };
    size_t first[64], ns = series_list(rep, first, 64);
    int xmax = 2, best[64];
    double ymax = 2, bar_max = 0, xstep, ystep, bstep;
    int height, legend_y, left_legend_y;
    char chain[256];

    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        if (r->jobs > xmax)
            xmax = r->jobs;
        if (isfinite(r->speedup) && r->speedup > ymax)
            ymax = r->speedup;
    }
    if (xmax > ymax)
        ymax = xmax;
    ystep = nice_step(ymax, 8);
    ymax = ceil(ymax / ystep) * ystep;
    xstep = xmax <= 16 ? 1 : nice_step(xmax, 10);

    /* Best j of each series: the smallest median time. */
    for (size_t k = 0; k < ns; k++) {
        best[k] = -1;
        for (size_t i = first[k]; i < rep->n_results; i++) {
            const struct ip_bench_result *r = &rep->results[i];
            if (r->exec != rep->results[first[k]].exec || r->split != rep->results[first[k]].split)
                continue;
            if (isfinite(r->median_s) && (best[k] < 0 || r->median_s < rep->results[best[k]].median_s))
                best[k] = (int)i;
        }
        if (best[k] >= 0) {
            const struct ip_bench_result *r = &rep->results[best[k]];
            double sum = 0;
            for (int s = IP_STAGE_READ; s <= IP_STAGE_WRITE; s++)
                sum += ns_s(r->busy_ns[s]);
            if (sum > bar_max)
                bar_max = sum;
            if (r->median_s * r->jobs > bar_max)
                bar_max = r->median_s * r->jobs;
        }
    }
    if (bar_max <= 0)
        bar_max = 1;
    bstep = nice_step(bar_max, 4);
    bar_max = ceil(bar_max / bstep) * bstep;

    legend_y = PY0 + 50 + (int)ns * 46;
    left_legend_y = PY1 + 62;
    height = legend_y + 80;
    if (left_legend_y + ((int)ns + 2) / 2 * 20 + 10 > height)
        height = left_legend_y + ((int)ns + 2) / 2 * 20 + 10;
#define XP(j) (PX0 + ((double)(j) - 1.0) / (xmax - 1.0) * (PX1 - PX0))
#define YP(s) (PY1 - (s) / ymax * (PY1 - PY0))
#define XB(v) (BX0 + (v) / bar_max * (BX1 - BX0))

    chain_text(chain, sizeof chain, &rep->pipeline);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            W, height, W, height);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, height);
    fputs("<text x=\"20\" y=\"26\" font-size=\"16\" font-weight=\"bold\">imgpar bench: ", f);
    fprintf(f, "%llu images, %.1f MP, chain ", (unsigned long long)rep->images, rep->megapixels);
    xml_text(f, chain);
    fputs("</text>\n<text x=\"20\" y=\"46\" fill=\"#444\">", f);
    xml_text(f, rep->machine.cpu_model);
    fprintf(f, ", %d online CPUs, %.1f GiB, load avg %.2f; imgpar %s; median of %d run%s after %d warm-up%s</text>\n",
            rep->machine.online_cpus, (double)rep->machine.mem_bytes / (1024.0 * 1024 * 1024),
            rep->machine.loadavg[0], rep->machine.imgpar, rep->repeat, rep->repeat == 1 ? "" : "s", rep->warmup,
            rep->warmup == 1 ? "" : "s");

    /* Left: speedup against j. */
    fputs("<g id=\"speedup\">\n", f);
    if (rep->machine.online_cpus < xmax) {
        double x = XP(rep->machine.online_cpus);
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#f3e6e6\"/>\n", x, PY0,
                PX1 - x, PY1 - PY0);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#a05050\" text-anchor=\"end\">"
                   "oversubscribed (j &gt; %d CPUs)</text>\n",
                (double)PX1 - 4, PY0 + 14, rep->machine.online_cpus);
    }
    for (double y = 0; y <= ymax + 1e-9; y += ystep) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", PX0, YP(y), PX1,
                YP(y));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PX0 - 6, YP(y) + 4, y);
    }
    for (double x = 1; x <= xmax + 1e-9; x += xstep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>\n", XP(x), PY0, XP(x),
                PY1);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", XP(x), PY1 + 16, x);
    }
    fprintf(f, "<path d=\"M %d %d H %d M %d %d V %d\" stroke=\"black\" fill=\"none\"/>\n", PX0, PY1, PX1, PX0,
            PY0, PY1);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">jobs (-j)</text>\n", (PX0 + PX1) / 2, PY1 + 36);
    fprintf(f, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\">"
               "speedup against j=1 (median wall time)</text>\n",
            PX0 - 40, (PY0 + PY1) / 2);
    {
        double top = xmax < ymax ? xmax : ymax;
        fprintf(f, "<path class=\"ideal\" d=\"M %.1f %.1f L %.1f %.1f\" stroke=\"#999\" stroke-width=\"1.5\" "
                   "stroke-dasharray=\"4 4\" fill=\"none\"/>\n",
                XP(1), YP(1), XP(top), YP(top));
    }
    for (size_t k = 0; k < ns; k++) {
        const struct ip_bench_result *r0 = &rep->results[first[k]];
        const char *col = exec_colour(r0->exec);
        int started = 0;

        fprintf(f, "<path class=\"series\" data-strategy=\"%s\" data-split=\"%s\" stroke=\"%s\" "
                   "stroke-width=\"2.2\" stroke-dasharray=\"%s\" fill=\"none\" d=\"",
                ip_exec_name(r0->exec), ip_split_name(r0->split), col, split_dash(r0->split));
        if (r0->exec == IP_EXEC_SERIAL) {
            /* serial ignores -j: its j=1 time as a flat reference line. */
            fprintf(f, "M %.1f %.1f H %d", XP(1), YP(1), PX1);
            started = 1;
        } else {
            for (size_t i = first[k]; i < rep->n_results; i++) {
                const struct ip_bench_result *r = &rep->results[i];
                if (r->exec != r0->exec || r->split != r0->split || !isfinite(r->speedup))
                    continue;
                fprintf(f, "%s%.1f %.1f", started ? " L " : "M ", XP(r->jobs), YP(r->speedup));
                started = 1;
            }
        }
        if (!started)
            fprintf(f, "M %.1f %.1f", XP(1), YP(1));
        fputs("\"/>\n", f);
        for (size_t i = first[k]; i < rep->n_results; i++) {
            const struct ip_bench_result *r = &rep->results[i];
            if (r->exec != r0->exec || r->split != r0->split || !isfinite(r->speedup))
                continue;
            if (r->split == IP_SPLIT_STRIPS)
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"white\" stroke=\"%s\" "
                           "stroke-width=\"2\"><title>%s/%s j=%d: %.2fx, %.3f s</title></rect>\n",
                        XP(r->jobs) - 3.5, YP(r->speedup) - 3.5, col, ip_exec_name(r->exec),
                        ip_split_name(r->split), r->jobs, r->speedup, r->median_s);
            else
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s/%s j=%d: %.2fx, "
                           "%.3f s</title></circle>\n",
                        XP(r->jobs), YP(r->speedup), col, ip_exec_name(r->exec),
                        ip_split_name(r->split), r->jobs, r->speedup, r->median_s);
        }
    }
    /* Legend, below the plot in two columns. */
    for (size_t k = 0; k <= ns; k++) {
        int lx = PX0 - 40 + (int)(k % 2) * 230, ly = left_legend_y + (int)(k / 2) * 20;
        if (k == 0) {
            fprintf(f, "<path d=\"M %d %d h 28\" stroke=\"#999\" stroke-width=\"1.5\" stroke-dasharray=\"4 4\"/>"
                       "<text x=\"%d\" y=\"%d\">ideal (speedup = j)</text>\n",
                    lx, ly, lx + 36, ly + 4);
            continue;
        }
        const struct ip_bench_result *r0 = &rep->results[first[k - 1]];
        fprintf(f, "<path d=\"M %d %d h 28\" stroke=\"%s\" stroke-width=\"2.2\" stroke-dasharray=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\">%s/%s%s</text>\n",
                lx, ly, exec_colour(r0->exec), split_dash(r0->split), lx + 36, ly + 4, ip_exec_name(r0->exec),
                ip_split_name(r0->split), r0->exec == IP_EXEC_SERIAL ? " (j=1 only, flat)" : "");
    }
    fputs("</g>\n", f);

    /* Right: where the time goes at each series' best j. */
    fputs("<g id=\"stages\">\n", f);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Busy time per stage at each series' best j</text>\n",
            BX0 - 110, PY0 - 8);
    for (double v = 0; v <= bar_max + 1e-9; v += bstep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>\n", XB(v), PY0 + 4,
                XB(v), legend_y - 24);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", XB(v), legend_y - 10, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">busy seconds (thread time in each stage, summed; "
               "median run)</text>\n",
            (BX0 + BX1) / 2, legend_y + 8);
    for (size_t k = 0; k < ns; k++) {
        int y = PY0 + 14 + (int)k * 46;
        const struct ip_bench_result *r;
        double x = BX0;

        if (best[k] < 0)
            continue;
        r = &rep->results[best[k]];
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s/%s</text>\n", BX0 - 8, y + 10,
                ip_exec_name(r->exec), ip_split_name(r->split));
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"11\" fill=\"#444\">j=%d, %.3f s</text>\n",
                BX0 - 8, y + 24, r->jobs, r->median_s);
        fprintf(f, "<g class=\"bar\" data-strategy=\"%s\" data-split=\"%s\" data-jobs=\"%d\">\n",
                ip_exec_name(r->exec), ip_split_name(r->split), r->jobs);
        for (int s = IP_STAGE_READ; s <= IP_STAGE_WRITE; s++) {
            double w = ns_s(r->busy_ns[s]) / bar_max * (BX1 - BX0);
            if (w <= 0)
                continue;
            fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"18\" fill=\"%s\"><title>%s %.3f s</title>"
                       "</rect>\n",
                    x, y, w, stage_colour[s], ip_stage_name((enum ip_stage)s), ns_s(r->busy_ns[s]));
            x += w;
        }
        /* Core-seconds available: j cores for the median wall time. */
        fprintf(f, "<path d=\"M %.1f %d V %d\" stroke=\"black\" stroke-width=\"2\"><title>j x wall = %.3f "
                   "core-seconds</title></path>\n",
                XB(r->median_s * r->jobs), y - 3, y + 21, r->median_s * r->jobs);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555\">waits: load %.2f s, filter %.2f s, "
                   "write %.2f s (thread time)</text>\n",
                BX0, y + 32, ns_s(r->busy_ns[IP_STAGE_WAIT_LOAD]), ns_s(r->busy_ns[IP_STAGE_WAIT_FILTER]),
                ns_s(r->busy_ns[IP_STAGE_WAIT_WRITE]));
        fputs("</g>\n", f);
    }
    /* Stage legend. */
    for (int s = IP_STAGE_READ; s <= IP_STAGE_WRITE; s++) {
        int lx = BX0 - 110 + (s % 3) * 130, ly = legend_y + 28 + (s / 3) * 20;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                lx, ly, stage_colour[s], lx + 20, ly + 12, ip_stage_name((enum ip_stage)s));
    }
    fprintf(f, "<path d=\"M %d %d v 16\" stroke=\"black\" stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">"
               "j &#215; wall (cores available)</text>\n",
            BX0 - 110 + 2 * 130 + 6, legend_y + 48, BX0 - 110 + 2 * 130 + 20, legend_y + 60);
    fputs("</g>\n</svg>\n", f);
#undef XP
#undef YP
#undef XB
    return ferror(f) ? IP_EIO : 0;
}
