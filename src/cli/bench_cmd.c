/* `imgpar bench`: how many cores to give imgpar, and where the time goes.
 *
 * DESIGN: the measuring is libimgpar's (bench.h); this file turns argv into
 * an ip_bench_config, plans the inputs with the normal command's planner
 * (outputs go to a scratch directory made with mkdtemp and removed at
 * exit, whatever the exit path), prints a progress line on a terminal
 * (stderr) and the tables (stdout), and writes the CSV, JSON and SVG files.
 * Bench options are taken out of argv first; everything else goes through
 * cli_parse, so PIPELINE OPTIONS mean exactly what they mean to `imgpar`.
 * Signals: main() blocked SIGINT/SIGTERM/SIGHUP; a sigwait thread cancels
 * the bench on the first (the running child is killed, the scratch
 * directory removed, exit 130) and exits at once on the second. The thread
 * may exist while the library forks: each configuration runs in a forked,
 * single-threaded child, which is what the procs executor needs. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgpar/bench.h"
#include "cli.h"

static const char *const bench_usage =
    "Usage: imgpar bench [BENCH OPTIONS] [PIPELINE OPTIONS] INPUT...\n"
    "Runs the real pipeline on INPUT (files or directories, as for imgpar) for every\n"
    "strategy x split x -j, and reports wall time (min and median), images/s, MP/s,\n"
    "speedup against j=1, parallel efficiency, the Karp-Flatt serial fraction, busy\n"
    "time per stage and peak memory. Every run's outputs must be byte-identical to a\n"
    "serial -j1 reference run made first: any difference fails the bench (exit 1).\n"
    "Outputs go to a scratch directory that is removed afterwards.\n"
    "\n"
    "Bench options:\n"
    "  -j, --jobs LIST     values of -j, e.g. 1,2,4,8 or 1-16 (1 is always added)\n"
    "  --max-jobs N        -j 1,2,4,... up to N (default N: online CPUs); j above the\n"
    "                      online CPUs is allowed and marked oversubscribed\n"
    "  --strategies LIST   of serial,threads,procs (default: all three; serial runs\n"
    "                      at j=1 only, it ignores -j)\n"
    "  --split LIST        of image,strips,auto (default: image,strips)\n"
    "  --repeat R          measured runs per configuration (default 3)\n"
    "  --warmup W          unmeasured runs before them (default 1)\n"
    "  --csv FILE          every run as CSV (machine and workload in '#' lines)\n"
    "  --json FILE         everything as JSON: machine, workload, reference\n"
    "                      checksums, every configuration and every run\n"
    "  --svg FILE          chart: speedup against j per strategy with the ideal line,\n"
    "                      and busy time per stage at each one's best j\n"
    "                      (FILE '-' writes to stdout instead of the tables)\n"
    "  --scratch DIR       where the scratch directory goes (default: $TMPDIR or /tmp)\n"
    "  --no-progress       no progress line (it is only drawn on a terminal anyway)\n"
    "  -h, --help          this text\n"
    "\n"
    "Pipeline options (see imgpar --help): the filters (--gray, --blur, --box,\n"
    "--no-filter), --format, --quality, --png-level, --decoder, --allow-truncated,\n"
    "the limits, --mem, --queue, --io-threads, --writers, --fsync, -r.\n"
    "\n"
    "Examples:\n"
    "  imgpar bench photos/\n"
    "  imgpar bench --jobs 1-16 --strategies threads,procs --split image \\\n"
    "        --csv b.csv --json b.json --svg b.svg photos/\n"
    "  imgpar bench --strategies threads --jobs 1 --no-filter photos/   (codec baseline)\n"
    "\n"
    "Peak RSS is measured per run: each run (warm-up or measured) is a forked child\n"
    "process of its own, like an imgpar command; a configuration reports the largest\n"
    "getrusage ru_maxrss of its runs (it includes what the child inherited from the\n"
    "bench process, shown in the JSON as start_rss_kb).\n"
    "\n"
    "Exit status: 0 every run matched the reference, 1 a mismatch or a failed file\n"
    "or configuration, 2 usage error, 3 could not start, 130 interrupted.\n";

#define MAX_LIST IP_BENCH_MAX_JOBS

struct bench_opts {
    int jobs[MAX_LIST];
    size_t n_jobs;
    int jobs_given;                  /* --jobs */
    int max_jobs;                    /* --max-jobs, 0 when not given */
    enum ip_exec_kind strategies[3];
    size_t n_strategies;
    enum ip_split splits[3];
    size_t n_splits;
    int repeat, warmup;
    const char *csv, *json, *svg;    /* NULL: not written; "-": stdout */
    const char *scratch_parent;
    int no_progress;
    char **rest;                     /* argv for cli_parse; o->inputs points into it */
};

/* ---- the scratch directory: removed at exit, however the bench ends ---- */

static char scratch_dir[PATH_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void scratch_remove(void)
{
    if (scratch_dir[0])
        nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    scratch_dir[0] = '\0';
}

/* ---- signals ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t running_cond;
    struct ip_bench *bench;          /* set while a bench may be cancelled */
    int signals;
    int running;                     /* the signal thread has started */
} bsig = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};

static void *bench_signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;

    pthread_mutex_lock(&bsig.lock);
    bsig.running = 1;
    pthread_cond_signal(&bsig.running_cond);
    pthread_mutex_unlock(&bsig.lock);
    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        pthread_mutex_lock(&bsig.lock);
        if (++bsig.signals > 1) {
            scratch_remove();
            _exit(EXIT_INTERRUPTED);
        }
        if (bsig.bench)
            ip_bench_cancel(bsig.bench);
        pthread_mutex_unlock(&bsig.lock);
    }
    return NULL;
}

/* ---- options ---- */

static int parse_jobs_list(const char *s, struct bench_opts *bo)
{
    const char *p = s;

    bo->n_jobs = 0;
    while (*p) {
        char *end;
        long a, b;

        errno = 0;
        a = strtol(p, &end, 10);
        if (errno || end == p || a < 1 || a > IP_BENCH_MAX_JOBS)
            return -1;
        b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (errno || end == p || b < a || b > IP_BENCH_MAX_JOBS)
                return -1;
        }
        for (long j = a; j <= b; j++) {
            if (bo->n_jobs == MAX_LIST)
                return -1;
            bo->jobs[bo->n_jobs++] = (int)j;
        }
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return bo->n_jobs ? 0 : -1;
}

static void parse_strategies(const char *s, struct bench_opts *bo)
{
    char buf[256], *save = NULL;

    snprintf(buf, sizeof buf, "%s", s);
    bo->n_strategies = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        enum ip_exec_kind k;
        if (!strcmp(t, "serial"))
            k = IP_EXEC_SERIAL;
        else if (!strcmp(t, "threads"))
            k = IP_EXEC_THREADS;
        else if (!strcmp(t, "procs"))
            k = IP_EXEC_PROCS;
        else
            cli_die_usage("--strategies: '%s' is not serial, threads or procs", t);
        for (size_t i = 0; i < bo->n_strategies; i++)
            if (bo->strategies[i] == k)
                cli_die_usage("--strategies: '%s' given twice", t);
        bo->strategies[bo->n_strategies++] = k;
    }
    if (!bo->n_strategies)
        cli_die_usage("--strategies: empty list");
}

static void parse_splits(const char *s, struct bench_opts *bo)
{
    char buf[256], *save = NULL;

    snprintf(buf, sizeof buf, "%s", s);
    bo->n_splits = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        enum ip_split k;
        if (!strcmp(t, "image"))
            k = IP_SPLIT_IMAGE;
        else if (!strcmp(t, "strips"))
            k = IP_SPLIT_STRIPS;
        else if (!strcmp(t, "auto"))
            k = IP_SPLIT_AUTO;
        else
            cli_die_usage("--split: '%s' is not image, strips or auto", t);
        for (size_t i = 0; i < bo->n_splits; i++)
            if (bo->splits[i] == k)
                cli_die_usage("--split: '%s' given twice", t);
        bo->splits[bo->n_splits++] = k;
    }
    if (!bo->n_splits)
        cli_die_usage("--split: empty list");
}

/* If argv[*i] is a bench option, takes it (and its value) and returns 1. */
static int take_bench_opt(int argc, char **argv, int *i, struct bench_opts *bo)
{
    static const char *const with_value[] = {
        "jobs", "max-jobs", "strategies", "split", "repeat", "warmup", "csv", "json", "svg", "scratch",
    };
    static const char *const refused[] = {
        "serial", "threads", "procs", "stats", "dry-run", "skip-existing", "files-from", "report",
        "shard", "verbose", "quiet",
    };
    const char *arg = argv[*i], *name, *value = NULL;
    char opt[32];
    size_t len;
    int which = -1;

    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
        fputs(bench_usage, stdout);
        exit(0);
    }
    if (!strcmp(arg, "--no-progress")) {
        bo->no_progress = 1;
        return 1;
    }
    if (!strncmp(arg, "-j", 2) && arg[1] == 'j') {
        which = 0;
        if (arg[2])
            value = arg + 2;
    } else if (!strncmp(arg, "--", 2) && arg[2]) {
        name = arg + 2;
        len = strcspn(name, "=");
        if (len >= sizeof opt)
            return 0;
        memcpy(opt, name, len);
        opt[len] = '\0';
        for (size_t k = 0; k < sizeof refused / sizeof *refused; k++)
            if (!strcmp(opt, refused[k]))
                cli_die_usage("bench: --%s is not a bench option%s", opt,
                              k < 3 ? " (use --strategies)" : "");
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            if (!strcmp(opt, with_value[k]))
                which = (int)k;
        if (which < 0)
            return 0;
        if (name[len] == '=')
            value = name + len + 1;
    } else {
        return 0;
    }
    if (!value) {
        if (*i + 1 >= argc)
            cli_die_usage("bench: %s needs a value", arg);
        value = argv[++*i];
    }
    switch (which) {
    case 0:
        if (parse_jobs_list(value, bo) != 0)
            cli_die_usage("--jobs: '%s' is not a list of values in 1..%d (e.g. 1,2,4,8 or 1-16)", value,
                          IP_BENCH_MAX_JOBS);
        bo->jobs_given = 1;
        break;
    case 1: bo->max_jobs = (int)cli_parse_int("--max-jobs", value, 1, IP_BENCH_MAX_JOBS); break;
    case 2: parse_strategies(value, bo); break;
    case 3: parse_splits(value, bo); break;
    case 4: bo->repeat = (int)cli_parse_int("--repeat", value, 1, 1000); break;
    case 5: bo->warmup = (int)cli_parse_int("--warmup", value, 0, 1000); break;
    case 6: bo->csv = value; break;
    case 7: bo->json = value; break;
    case 8: bo->svg = value; break;
    case 9: bo->scratch_parent = value; break;
    }
    return 1;
}

/* Splits argv into bench options (into *bo) and the rest, which goes
 * through cli_parse without an OUTDIR: every operand is an INPUT. */
static void parse_args(int argc, char **argv, struct bench_opts *bo, struct cli_options *o)
{
    static char argv0[] = "imgpar bench";
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n = 0, i;

    if (!rest)
        cli_oom();
    cli_set_usage_command("imgpar bench");
    memset(bo, 0, sizeof *bo);
    bo->repeat = 3;
    bo->warmup = 1;
    bo->strategies[0] = IP_EXEC_SERIAL;
    bo->strategies[1] = IP_EXEC_THREADS;
    bo->strategies[2] = IP_EXEC_PROCS;
    bo->n_strategies = 3;
    bo->splits[0] = IP_SPLIT_IMAGE;
    bo->splits[1] = IP_SPLIT_STRIPS;
    bo->n_splits = 2;

    rest[n++] = argv0;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < argc)
                rest[n++] = argv[i++];
            break;
        }
        if (!take_bench_opt(argc, argv, &i, bo))
            rest[n++] = argv[i];
    }
    rest[n] = NULL;
    bo->rest = rest;

    optind = 1;
    cli_parse(n, rest, 0, o);
    if (o->n_inputs < 1)
        cli_die_usage("bench: need at least one INPUT");
    if (o->show_stats || o->dry_run || o->skip_existing || o->files_from || o->report_path)
        cli_die_usage("bench: --stats, --dry-run, --skip-existing, --files-from and --report "
                      "are not bench options");
    if (bo->jobs_given && bo->max_jobs)
        cli_die_usage("bench: give --jobs or --max-jobs, not both");
    if (!bo->n_jobs) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        int max = bo->max_jobs ? bo->max_jobs : (online > 0 ? (int)online : 1);
        for (int j = 1; j < max && bo->n_jobs < MAX_LIST - 1; j *= 2)
            bo->jobs[bo->n_jobs++] = j;
        bo->jobs[bo->n_jobs++] = max;
    }
}

/* ---- progress and tables ---- */

struct progress_state {
    int on;            /* draw the line (stderr is a terminal) */
    int shown;
};

static void fmt_dur(char *buf, size_t cap, double s)
{
    if (s < 0)
        snprintf(buf, cap, "?");
    else if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void on_progress(void *ctx, const struct ip_bench_progress *p)
{
    struct progress_state *ps = ctx;
    char el[32], eta[32];

    if (!ps->on)
        return;
    fmt_dur(el, sizeof el, p->elapsed_s);
    fmt_dur(eta, sizeof eta, p->eta_s);
    if (p->result) {
        char what[48];
        /* The run going on now (or the last one, once all are done). */
        int k = p->run < p->n_runs ? p->run : p->n_runs - 1;
        if (k < p->n_warmup)
            snprintf(what, sizeof what, "warm-up %d/%d", k + 1, p->n_warmup);
        else
            snprintf(what, sizeof what, "run %d/%d", k - p->n_warmup + 1, p->n_runs - p->n_warmup);
        fprintf(stderr, "\r\033[K[%zu/%zu] %s split=%s j=%d%s: %s%s  elapsed %s, ETA %s", p->config + 1,
                p->n_configs, ip_exec_name(p->result->exec), ip_split_name(p->result->split),
                p->result->jobs, p->result->oversubscribed ? " (oversubscribed)" : "", what,
                p->run < p->n_runs ? "" : " done", el, eta);
    } else {
        fprintf(stderr, "\r\033[Kreference run (serial -j1)%s  elapsed %s", p->run ? " done" : "...", el);
    }
    fflush(stderr);
    ps->shown = 1;
}

static void progress_clear(struct progress_state *ps)
{
    if (ps->shown)
        fputs("\r\033[K", stderr);
    ps->shown = 0;
}

static void put_num(FILE *f, int width, int prec, double v)
{
    if (isfinite(v))
        fprintf(f, " %*.*f", width, prec, v);
    else
        fprintf(f, " %*s", width, "-");
}

static void print_tables(FILE *f, const struct ip_bench_report *rep)
{
    const struct ip_bench_machine *m = &rep->machine;
    const struct ip_bench_result *fastest = NULL, *frugal = NULL;
    long start_rss = 0;
    int any_over = 0, any_procs = 0, over_mem = 0;
    uint64_t runs = 0;

    fprintf(f, "imgpar bench: %llu images, %.1f MP, %.1f MB in, %.1f MB out per run; median of %d after %d "
               "warm-up%s\n",
            (unsigned long long)rep->images, rep->megapixels, (double)rep->bytes_in / 1e6,
            (double)rep->bytes_out / 1e6, rep->repeat, rep->warmup, rep->warmup == 1 ? "" : "s");
    fprintf(f, "machine: %s, %d online CPUs (%d usable), %.1f GiB, %s, %s\n", m->cpu_model, m->online_cpus,
            m->affinity_cpus, (double)m->mem_bytes / (1024.0 * 1024 * 1024), m->kernel, m->compiler);
    fprintf(f, "libraries: imgpar %s, libpng %s, %s, libdeflate %s, zlib %s\n", m->imgpar, m->libpng,
            m->libjpeg, m->libdeflate[0] ? m->libdeflate : "-", m->zlib[0] ? m->zlib : "-");
    fprintf(f, "load average: %.2f at the start, %.2f at the end\n", m->loadavg[0], m->loadavg[1]);
    fprintf(f, "reference: serial -j1, %.3f s\n\n", rep->reference_wall_s);
    if (m->loadavg[0] > 0.25 * m->online_cpus + 0.5)
        fprintf(f, "WARNING: the machine was busy with other work when the bench started (load average "
                   "above): these timings are skewed by it.\n\n");

    fprintf(f, "%-8s %-6s %4s %9s %9s %7s %8s %8s %7s %5s %6s %6s %8s %8s %8s  %s\n", "strategy", "split", "j",
            "min s", "median s", "CPU s", "img/s", "MP/s", "speedup", "eff", "K-F", "vs ser", "RSS MiB",
            "pix MiB", "wkr MiB", "check");
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        char jtxt[16];

        snprintf(jtxt, sizeof jtxt, "%d%s", r->jobs, r->oversubscribed ? "*" : "");
        any_over |= r->oversubscribed;
        any_procs |= r->exec == IP_EXEC_PROCS;
        if (r->start_rss_kb > start_rss)
            start_rss = r->start_rss_kb;
        runs += (uint64_t)r->n_samples;
        fprintf(f, "%-8s %-6s %4s", ip_exec_name(r->exec), ip_split_name(r->split), jtxt);
        put_num(f, 9, 3, r->min_s);
        put_num(f, 9, 3, r->median_s);
        put_num(f, 7, 2, r->median_cpu_s);
        put_num(f, 8, 2, r->images_per_s);
        put_num(f, 8, 1, r->megapixels_per_s);
        put_num(f, 7, 2, r->speedup);
        put_num(f, 5, 2, r->efficiency);
        put_num(f, 6, 3, r->karp_flatt);
        put_num(f, 6, 2, r->speedup_vs_serial);
        if (r->peak_rss_kb > r->mem_bound_kb) {
            fprintf(f, " %7.1f!", (double)r->peak_rss_kb / 1024.0);
            over_mem++;
        } else {
            put_num(f, 8, 1, (double)r->peak_rss_kb / 1024.0);
        }
        put_num(f, 8, 1, (double)r->peak_pixel_bytes / (1024.0 * 1024.0));
        if (r->exec == IP_EXEC_PROCS)
            put_num(f, 8, 1, (double)r->worker_peak_rss_kb / 1024.0);
        else
            fprintf(f, " %8s", "-");
        if (r->status)
            fprintf(f, "  FAILED: %s\n", r->msg);
        else if (r->mismatches || r->failed)
            fprintf(f, "  MISMATCH: %llu output%s differ, %llu file%s failed (%s)\n",
                    (unsigned long long)r->mismatches, r->mismatches == 1 ? "" : "s",
                    (unsigned long long)r->failed, r->failed == 1 ? "" : "s", r->msg);
        else
            fputs("  ok\n", f);
        if (isfinite(r->median_s) && (!fastest || r->median_s < fastest->median_s))
            fastest = r;
    }

    fputs("\nWhere the time goes: busy seconds per stage, summed over threads/processes (run nearest the "
          "median)\n",
          f);
    fprintf(f, "%-8s %-6s %4s", "strategy", "split", "j");
    for (int s = 0; s < IP_STAGE_COUNT; s++)
        fprintf(f, " %11s", ip_stage_name((enum ip_stage)s));
    fputc('\n', f);
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        char jtxt[16];
        snprintf(jtxt, sizeof jtxt, "%d%s", r->jobs, r->oversubscribed ? "*" : "");
        fprintf(f, "%-8s %-6s %4s", ip_exec_name(r->exec), ip_split_name(r->split), jtxt);
        for (int s = 0; s < IP_STAGE_COUNT; s++)
            put_num(f, 11, 3, isfinite(r->median_s) ? (double)r->busy_ns[s] / 1e9 : NAN);
        fputc('\n', f);
    }

    fputc('\n', f);
    if (any_over)
        fprintf(f, "* j > %d online CPUs: oversubscribed.\n", m->online_cpus);
    fputs("speedup: median at j=1 of the same strategy and split / median; eff = speedup / j;\n"
          "K-F: Karp-Flatt serial fraction (1/S - 1/j) / (1 - 1/j), undefined at j=1;\n"
          "vs ser: serial j=1 median (same split) / median. Wall time = pipeline create + run + destroy;\n"
          "CPU s: user + system seconds of a run (median), procs workers included.\n",
          f);
    fprintf(f, "RSS: each run was a forked child of its own; the largest getrusage ru_maxrss of a configuration's\n"
               "runs, which includes ~%.1f MiB inherited from the bench process at fork%s.\n",
            (double)start_rss / 1024.0, any_procs ? "; wkr: the largest procs worker's ru_maxrss" : "");
    fprintf(f, "pix: most pixel bytes in flight at once (decoded images and filter outputs). Memory target,\n"
               "RSS <= pix + %ld MiB: %s", IP_BENCH_MEM_SLACK_KB / 1024,
            over_mem ? "" : "met by every configuration.\n");
    if (over_mem)
        fprintf(f, "missed by %d configuration%s (RSS marked !).\n", over_mem, over_mem == 1 ? "" : "s");
    if (fastest) {
        for (size_t i = 0; i < rep->n_results; i++) {
            const struct ip_bench_result *r = &rep->results[i];
            if (isfinite(r->median_s) && r->median_s <= fastest->median_s * 1.05 &&
                (!frugal || r->jobs < frugal->jobs ||
                 (r->jobs == frugal->jobs && r->median_s < frugal->median_s)))
                frugal = r;
        }
        fprintf(f, "fastest: %s split=%s -j%d, %.3f s median, %.2f images/s, %.1f MP/s\n",
                ip_exec_name(fastest->exec), ip_split_name(fastest->split), fastest->jobs,
                fastest->median_s, fastest->images_per_s, fastest->megapixels_per_s);
        if (frugal)
            fprintf(f, "fewest cores within 5%% of it: %s split=%s -j%d, %.3f s median\n",
                    ip_exec_name(frugal->exec), ip_split_name(frugal->split), frugal->jobs,
                    frugal->median_s);
    }
    if (!rep->mismatches && !rep->failed && !rep->failed_configs)
        fprintf(f, "check: all %llu runs wrote outputs identical to the serial reference (FNV-1a 64 of "
                   "each of %zu files)\n",
                (unsigned long long)runs, rep->n_tasks);
    else
        fprintf(f, "check: FAILED: %llu output mismatches, %llu failed files, %d failed configurations\n",
                (unsigned long long)rep->mismatches, (unsigned long long)rep->failed, rep->failed_configs);
}

/* Opens a report file before the bench runs, so a bad path fails fast. */
static FILE *open_out(const char *path)
{
    FILE *f;

    if (!path)
        return NULL;
    if (!strcmp(path, "-"))
        return stdout;
    f = fopen(path, "we");
    if (!f)
        cli_die_usage("bench: cannot write %s: %s", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path, int rc)
{
    if (!f)
        return 0;
    if (f == stdout) {
        if (fflush(f) != 0)
            rc = IP_EIO;
    } else if (fclose(f) != 0) {
        rc = IP_EIO;
    }
    if (rc)
        fprintf(stderr, "imgpar: bench: writing %s failed\n", path);
    return rc;
}

int cli_bench_main(int argc, char **argv)
{
    static sigset_t sigs;
    struct bench_opts bo;
    struct cli_options o;
    struct cli_plan plan;
    struct ip_bench_config bc;
    struct ip_bench *bench = NULL;
    struct ip_task *tasks;
    struct ip_error err;
    struct progress_state ps = {0, 0};
    const struct ip_bench_report *rep;
    FILE *csv, *json, *svg;
    pthread_t sig_thread;
    const char *tmp;
    char *last_dir = NULL;
    int rc, status = 0, tables_to_stdout;

    parse_args(argc, argv, &bo, &o);
    csv = open_out(bo.csv);
    json = open_out(bo.json);
    svg = open_out(bo.svg);
    tables_to_stdout = csv != stdout && json != stdout && svg != stdout;

    tmp = bo.scratch_parent ? bo.scratch_parent : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if ((size_t)snprintf(scratch_dir, sizeof scratch_dir, "%s/imgpar-bench-XXXXXX", tmp) >= sizeof scratch_dir)
        cli_die_usage("bench: scratch path too long");
    if (!mkdtemp(scratch_dir)) {
        fprintf(stderr, "imgpar: bench: cannot create a scratch directory in %s: %s\n", tmp, strerror(errno));
        scratch_dir[0] = '\0';
        return EXIT_NO_START;
    }
    atexit(scratch_remove);

    o.outdir = scratch_dir;
    cli_plan_build(&plan, &o);
    if (plan.pre_failed) {
        fprintf(stderr, "imgpar: bench: %d input%s could not be read\n", plan.pre_failed,
                plan.pre_failed == 1 ? "" : "s");
        cli_plan_free(&plan);
        return EXIT_SOME_FAILED;
    }
    if (!plan.count) {
        fprintf(stderr, "imgpar: bench: no image files in the inputs\n");
        cli_plan_free(&plan);
        return EXIT_USAGE;
    }
    cli_plan_order(&plan);   /* the order imgpar itself would use */
    tasks = calloc(plan.count, sizeof *tasks);
    if (!tasks)
        cli_oom();
    for (size_t i = 0; i < plan.count; i++) {
        tasks[i].in_path = plan.tasks[i].in_path;
        tasks[i].out_path = plan.tasks[i].out_path;
        tasks[i].out_format = plan.tasks[i].out_format;
        if (cli_mkdir_parent(plan.tasks[i].out_path, &last_dir) != 0) {
            fprintf(stderr, "imgpar: bench: cannot create the directory of %s: %s\n", plan.tasks[i].out_path,
                    strerror(errno));
            return EXIT_NO_START;
        }
    }
    free(last_dir);

    ip_bench_config_default(&bc);
    bc.pipeline = o.cfg;
    bc.tasks = tasks;
    bc.n_tasks = plan.count;
    bc.strategies = bo.strategies;
    bc.n_strategies = bo.n_strategies;
    bc.splits = bo.splits;
    bc.n_splits = bo.n_splits;
    bc.jobs = bo.jobs;
    bc.n_jobs = bo.n_jobs;
    bc.repeat = bo.repeat;
    bc.warmup = bo.warmup;
    bc.test_corrupt_reference = getenv("IMGPAR_BENCH_CORRUPT_REFERENCE") != NULL &&
                                !strcmp(getenv("IMGPAR_BENCH_CORRUPT_REFERENCE"), "1");
    ps.on = !bo.no_progress && isatty(STDERR_FILENO);
    bc.on_progress = on_progress;
    bc.cb_ctx = &ps;
    rc = ip_bench_create(&bench, &bc, &err);
    free(tasks);
    cli_plan_free(&plan);
    if (rc) {
        fprintf(stderr, "imgpar: bench: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        return rc == IP_EINVAL ? EXIT_USAGE : EXIT_NO_START;
    }

    /* main() blocked these in every thread; this thread takes them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    bsig.bench = bench;
    if (pthread_create(&sig_thread, NULL, bench_signal_main, &sigs) != 0) {
        fprintf(stderr, "imgpar: bench: cannot start the signal thread\n");
        ip_bench_destroy(bench);
        return EXIT_NO_START;
    }
    /* Every run forks a child. A thread still starting may hold a lock of
     * the allocator (ASan's allocates in thread start-up and is not
     * fork-safe), which the child would inherit held: wait for it. */
    pthread_mutex_lock(&bsig.lock);
    while (!bsig.running)
        pthread_cond_wait(&bsig.running_cond, &bsig.lock);
    pthread_mutex_unlock(&bsig.lock);

    ip_error_clear(&err);
    rc = ip_bench_run(bench, &err);
    progress_clear(&ps);
    if (rc == IP_EINTR) {
        fprintf(stderr, "imgpar: bench: interrupted\n");
        status = EXIT_INTERRUPTED;
        goto out;
    }
    if (rc) {
        fprintf(stderr, "imgpar: bench: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        status = EXIT_SOME_FAILED;
        goto out;
    }
    rep = ip_bench_report_get(bench);
    if (tables_to_stdout)
        print_tables(stdout, rep);
    if (csv && close_out(csv, bo.csv, ip_bench_write_csv(csv, rep)))
        status = EXIT_NO_START;
    if (json && close_out(json, bo.json, ip_bench_write_json(json, rep)))
        status = EXIT_NO_START;
    if (svg && close_out(svg, bo.svg, ip_bench_write_svg(svg, rep)))
        status = EXIT_NO_START;
    csv = json = svg = NULL;
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct ip_bench_result *r = &rep->results[i];
        if (r->status)
            fprintf(stderr, "imgpar: bench: %s split=%s -j%d failed: %s\n", ip_exec_name(r->exec),
                    ip_split_name(r->split), r->jobs, r->msg);
        else if (r->mismatches || r->failed)
            fprintf(stderr, "imgpar: bench: %s split=%s -j%d: %llu output mismatch%s, %llu failed file%s: %s\n",
                    ip_exec_name(r->exec), ip_split_name(r->split), r->jobs,
                    (unsigned long long)r->mismatches, r->mismatches == 1 ? "" : "es",
                    (unsigned long long)r->failed, r->failed == 1 ? "" : "s", r->msg);
    }
    if (!status && (rep->mismatches || rep->failed || rep->failed_configs))
        status = EXIT_SOME_FAILED;

out:
    fflush(stdout);
    pthread_mutex_lock(&bsig.lock);
    bsig.bench = NULL;
    pthread_mutex_unlock(&bsig.lock);
    if (csv && csv != stdout)
        fclose(csv);
    if (json && json != stdout)
        fclose(json);
    if (svg && svg != stdout)
        fclose(svg);
    ip_bench_destroy(bench);
    scratch_remove();
    free(bo.rest);
    return status;
}
