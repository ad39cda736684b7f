/* imgpar command line: parse options, plan outputs, run the pipeline.
 *
 * DESIGN: everything that touches pixels lives in libimgpar; this file only
 * turns arguments into a struct ip_pipeline_config and a task list, refuses
 * plans that would lose data (two inputs to one output, an output that is
 * an input) before any work starts, prints one line per failed file, and
 * maps the outcome to an exit status. Signals are handled by a dedicated
 * thread (sigwait): the first SIGINT/SIGTERM cancels the pipeline, which
 * discards unfinished outputs and reaps its workers; a second one exits at
 * once (nothing is left behind either way: temporaries are unnamed and the
 * shared memory was unlinked when it was mapped). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>

#include "imgpar/codec.h"
#include "imgpar/error.h"
#include "imgpar/exec.h"
#include "imgpar/filter.h"
#include "imgpar/pipeline.h"

#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2
#define EXIT_NO_START 3
#define EXIT_INTERRUPTED 130

static const char *const usage_text =
    "Usage: imgpar [OPTIONS] INPUT... OUTDIR\n"
    "Reads images (files, or the image files of a directory, sorted), filters them,\n"
    "and writes each result to OUTDIR/<name> (created if missing). The format is\n"
    "chosen by magic bytes, never by the file name.\n"
    "\n"
    "Filters, applied in the order given (default: --gray --blur 2):\n"
    "  --gray[=601|709]    luma, Rec.601 weights (default) or Rec.709; alpha is kept\n"
    "                        imgpar --gray=709 in.png out/\n"
    "  --blur SIGMA        Gaussian blur, radius ceil(3*SIGMA), 0 < SIGMA <= 100\n"
    "                        imgpar --blur 1.5 photos/ out/\n"
    "  --box RADIUS        box blur over (2*RADIUS+1)^2 pixels, 1..300\n"
    "                        imgpar --gray --blur 2 --box 1 in.jpg out/\n"
    "  --no-filter         decode and encode only (a baseline for benchmarks)\n"
    "  Edges mirror without repeating the edge pixel; images with alpha are blurred\n"
    "  premultiplied, so transparent pixels do not bleed dark halos.\n"
    "\n"
    "Codecs:\n"
    "  --format png|jpg    output format (default: JPEG stays JPEG, all else PNG)\n"
    "                        imgpar --format png in.jpg out/   (alpha is dropped for JPEG)\n"
    "  --quality Q         JPEG quality 1..100 (default 90), 4:2:0 for colour\n"
    "  --png-level L       PNG compression level 0..9 (default 6)\n"
    "  --decoder=native|stb  decode PNG/JPEG with libpng/libjpeg-turbo (default) or stb_image\n"
    "  --allow-truncated   accept truncated images with a warning instead of failing\n"
    "\n"
    "Limits (checked before any allocation):\n"
    "  --max-pixels N      largest width*height (default 268435456 = 2^28)\n"
    "  --max-dim N         largest width or height (default 65535)\n"
    "  --max-file-size S   largest input file (default 1G; K, M, G suffixes)\n"
    "  --mem S             byte budget for decoded pixels in flight (default: a quarter\n"
    "                      of physical memory, at most 2G)  e.g. --mem 512M\n"
    "\n"
    "Execution (every strategy writes exactly the same bytes):\n"
    "  -j, --jobs N        cores imgpar may keep busy (default: online CPUs)\n"
    "  --serial            filter in one thread: the reference\n"
    "                        imgpar --serial in/ out/\n"
    "  --threads           filter on a pool of N threads (default; fastest measured here)\n"
    "                        imgpar -j8 --threads in/ out/\n"
    "  --procs             filter on N forked worker processes sharing pixels through\n"
    "                      POSIX shared memory; a crashed worker is replaced and its\n"
    "                      image retried once\n"
    "                        imgpar -j8 --procs in/*.png out/\n"
    "  --split image|strips|auto\n"
    "                      one image per worker, or each image cut into horizontal strips\n"
    "                      spread over all workers; auto (default) uses strips when images\n"
    "                      are fewer than workers or larger than their share of --mem\n"
    "                        imgpar -j16 --split strips huge.png out/\n"
    "  --io-threads N      reader/decoder threads (default: N = -j)\n"
    "  --writers N         encoder/writer threads (default: N = -j)\n"
    "  --queue N           images in flight at most (default: 2*j+2)\n"
    "  Threads hold a core only while they decode, filter or encode, so whatever the\n"
    "  thread counts at most -j cores are busy at once.\n"
    "  --fsync             fsync each output before renaming it into place\n"
    "\n"
    "Reporting:\n"
    "  --stats             print wall time, images/s, MP/s, busy time per stage and peak\n"
    "                      memory at the end (on stderr)\n"
    "  -v, --verbose       a line per file written\n"
    "  -q, --quiet         only errors\n"
    "  -h, --help          this text\n"
    "  --version           version and library versions\n"
    "\n"
    "Outputs are written to a temporary file in OUTDIR and renamed into place when\n"
    "complete, so an interrupted run never leaves a partial file. Two inputs that would\n"
    "write the same output, or an output that is an input, are refused before any work.\n"
    "\n"
    "Exit status: 0 all files succeeded, 1 some files failed (one line each on stderr:\n"
    "'imgpar: PATH: reason'), 2 usage error, 3 could not start, 130 interrupted.\n";

enum {
    OPT_GRAY = 256, OPT_BLUR, OPT_BOX, OPT_NO_FILTER, OPT_FORMAT, OPT_QUALITY, OPT_PNG_LEVEL,
    OPT_DECODER, OPT_ALLOW_TRUNC, OPT_MAX_PIXELS, OPT_MAX_DIM, OPT_MAX_FILE, OPT_MEM, OPT_SERIAL,
    OPT_THREADS, OPT_PROCS, OPT_SPLIT, OPT_IO_THREADS, OPT_WRITERS, OPT_QUEUE, OPT_FSYNC, OPT_STATS,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"gray", optional_argument, NULL, OPT_GRAY},
    {"grey", optional_argument, NULL, OPT_GRAY},
    {"blur", required_argument, NULL, OPT_BLUR},
    {"box", required_argument, NULL, OPT_BOX},
    {"no-filter", no_argument, NULL, OPT_NO_FILTER},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"quality", required_argument, NULL, OPT_QUALITY},
    {"png-level", required_argument, NULL, OPT_PNG_LEVEL},
    {"decoder", required_argument, NULL, OPT_DECODER},
    {"allow-truncated", no_argument, NULL, OPT_ALLOW_TRUNC},
    {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
    {"max-dim", required_argument, NULL, OPT_MAX_DIM},
    {"max-file-size", required_argument, NULL, OPT_MAX_FILE},
    {"mem", required_argument, NULL, OPT_MEM},
    {"jobs", required_argument, NULL, 'j'},
    {"serial", no_argument, NULL, OPT_SERIAL},
    {"threads", no_argument, NULL, OPT_THREADS},
    {"procs", no_argument, NULL, OPT_PROCS},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"io-threads", required_argument, NULL, OPT_IO_THREADS},
    {"writers", required_argument, NULL, OPT_WRITERS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"fsync", no_argument, NULL, OPT_FSYNC},
    {"stats", no_argument, NULL, OPT_STATS},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

struct task {
    char *in_path, *out_path;
    enum ip_format out_format;
    dev_t dev;               /* of the input, when it could be stat'ed */
    ino_t ino;
    int have_id;
};

struct plan {
    struct task *tasks;
    size_t count, cap, next;
};

struct run_state {
    int verbose, quiet;
    uint64_t failed;
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("imgpar: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'imgpar --help' for more information.\n", stderr);
    exit(EXIT_USAGE);
}

static long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    return v;
}

static uint64_t parse_size(const char *opt, const char *s)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    errno = 0;
    if (*s == '-')
        die_usage("%s: '%s' is not a size", opt, s);
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        die_usage("%s: '%s' is not a size", opt, s);
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    case 't': case 'T': mult = 1ull << 40; end++; break;
    default: die_usage("%s: '%s' is not a size (use K, M, G or T)", opt, s);
    }
    if ((*end == 'i' && end[1] == 'B' && !end[2]) || (*end == 'B' && !end[1]))
        end += strlen(end);
    if (*end || v == 0 || v > UINT64_MAX / mult)
        die_usage("%s: '%s' is not a size", opt, s);
    return v * mult;
}

static void add_filter(struct ip_chain *chain, int rc, const char *what)
{
    if (rc == IP_EINVAL && chain->count >= IP_CHAIN_MAX)
        die_usage("too many filters (at most %d)", IP_CHAIN_MAX);
    if (rc)
        die_usage("%s", what);
}

/* ---- planning ---- */

static void plan_add(struct plan *pl, const char *in_path)
{
    if (pl->count == pl->cap) {
        size_t ncap = pl->cap ? pl->cap * 2 : 64;
        struct task *n = realloc(pl->tasks, ncap * sizeof *n);
        if (!n) {
            fprintf(stderr, "imgpar: out of memory\n");
            exit(EXIT_NO_START);
        }
        pl->tasks = n;
        pl->cap = ncap;
    }
    memset(&pl->tasks[pl->count], 0, sizeof pl->tasks[pl->count]);
    pl->tasks[pl->count].in_path = strdup(in_path);
    if (!pl->tasks[pl->count].in_path) {
        fprintf(stderr, "imgpar: out of memory\n");
        exit(EXIT_NO_START);
    }
    pl->count++;
}

/* Format of a file by its first bytes; IP_FORMAT_UNKNOWN if unreadable. */
static enum ip_format sniff(const char *path)
{
    uint8_t head[64];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;

    if (fd < 0)
        return IP_FORMAT_UNKNOWN;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return IP_FORMAT_UNKNOWN;
    }
    n = read(fd, head, sizeof head);
    close(fd);
    return n > 0 ? ip_format_detect(head, (size_t)n) : IP_FORMAT_UNKNOWN;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the image files of a directory (by magic bytes), sorted by name. */
static int plan_dir(struct plan *pl, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        fprintf(stderr, "imgpar: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                fprintf(stderr, "imgpar: out of memory\n");
                exit(EXIT_NO_START);
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            fprintf(stderr, "imgpar: out of memory\n");
            exit(EXIT_NO_START);
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            fprintf(stderr, "imgpar: out of memory\n");
            exit(EXIT_NO_START);
        }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        if (sniff(path) != IP_FORMAT_UNKNOWN)
            plan_add(pl, path);
        free(path);
        free(names[i]);
    }
    free(names);
    return 0;
}

static int ext_matches(const char *ext, enum ip_format fmt)
{
    if (fmt == IP_FORMAT_PNG)
        return !strcasecmp(ext, "png");
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "jpe") ||
           !strcasecmp(ext, "jfif");
}

/* OUTDIR/basename, with the extension changed when it does not name the output format. */
static char *output_path(const char *outdir, const char *in_path, enum ip_format out_fmt)
{
    const char *base = strrchr(in_path, '/');
    const char *dot;
    size_t stem_len, len;
    const char *ext = "";
    char *out;

    base = base ? base + 1 : in_path;
    dot = strrchr(base, '.');
    stem_len = strlen(base);
    if (out_fmt != IP_FORMAT_UNKNOWN && !(dot && dot != base && ext_matches(dot + 1, out_fmt))) {
        if (dot && dot != base)
            stem_len = (size_t)(dot - base);
        ext = ip_format_ext(out_fmt);
    }
    len = strlen(outdir) + stem_len + strlen(ext) + 3;
    out = malloc(len);
    if (!out) {
        fprintf(stderr, "imgpar: out of memory\n");
        exit(EXIT_NO_START);
    }
    snprintf(out, len, "%s%s%.*s%s%s", outdir, outdir[strlen(outdir) - 1] == '/' ? "" : "/",
             (int)stem_len, base, *ext ? "." : "", ext);
    return out;
}

static int cmp_task_out(const void *a, const void *b)
{
    const struct task *x = *(const struct task *const *)a, *y = *(const struct task *const *)b;
    return strcmp(x->out_path, y->out_path);
}

static int cmp_task_id(const void *a, const void *b)
{
    const struct task *x = *(const struct task *const *)a, *y = *(const struct task *const *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return 0;
}

/* Fills output paths; refuses collisions and outputs that are inputs. */
static int plan_outputs(struct plan *pl, const char *outdir, enum ip_format forced)
{
    struct task **by = malloc((pl->count ? pl->count : 1) * sizeof *by);
    int bad = 0;

    if (!by) {
        fprintf(stderr, "imgpar: out of memory\n");
        exit(EXIT_NO_START);
    }
    for (size_t i = 0; i < pl->count; i++) {
        struct task *t = &pl->tasks[i];
        struct stat st;
        enum ip_format in_fmt = sniff(t->in_path), out_fmt = forced;

        if (out_fmt == IP_FORMAT_UNKNOWN && in_fmt != IP_FORMAT_UNKNOWN)
            out_fmt = in_fmt == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
        t->out_format = forced;
        t->out_path = output_path(outdir, t->in_path, out_fmt);
        if (stat(t->in_path, &st) == 0) {
            t->dev = st.st_dev;
            t->ino = st.st_ino;
            t->have_id = 1;
        }
        by[i] = t;
    }
    qsort(by, pl->count, sizeof *by, cmp_task_out);
    for (size_t i = 1; i < pl->count; i++) {
        if (!strcmp(by[i - 1]->out_path, by[i]->out_path)) {
            fprintf(stderr, "imgpar: %s and %s would both write %s\n", by[i - 1]->in_path,
                    by[i]->in_path, by[i]->out_path);
            bad = 1;
        }
    }
    /* An output that already exists as one of the inputs (same device and inode,
     * so symlinks and hard links count) would destroy that input. */
    {
        size_t nid = 0;
        for (size_t i = 0; i < pl->count; i++)
            if (pl->tasks[i].have_id)
                by[nid++] = &pl->tasks[i];
        qsort(by, nid, sizeof *by, cmp_task_id);
        for (size_t i = 0; i < pl->count; i++) {
            struct stat st;
            struct task key, *kp = &key, **hit;
            if (stat(pl->tasks[i].out_path, &st) != 0)
                continue;
            key.dev = st.st_dev;
            key.ino = st.st_ino;
            hit = bsearch(&kp, by, nid, sizeof *by, cmp_task_id);
            if (hit) {
                fprintf(stderr, "imgpar: %s: output %s is the input %s; refusing to overwrite it\n",
                        pl->tasks[i].in_path, pl->tasks[i].out_path, (*hit)->in_path);
                bad = 1;
            }
        }
    }
    free(by);
    return bad ? -1 : 0;
}

static int mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    struct stat st;

    if (!tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            free(tmp);
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
        free(tmp);
        return -1;
    }
    free(tmp);
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int plan_next(void *ctx, struct ip_task *task)
{
    struct plan *pl = ctx;
    struct task *t;

    if (pl->next >= pl->count)
        return 0;
    t = &pl->tasks[pl->next++];
    task->in_path = t->in_path;
    task->out_path = t->out_path;
    task->out_format = t->out_format;
    return 1;
}

/* ---- running ---- */

static void on_result(void *ctx, const struct ip_result *r)
{
    struct run_state *st = ctx;

    if (r->status == IP_RESULT_FAILED) {
        st->failed++;
        if (r->err.code != IP_EINTR)
            fprintf(stderr, "imgpar: %s: %s\n", r->in_path,
                    r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
    } else if (r->status == IP_RESULT_OK) {
        if (r->err.msg[0] && !st->quiet)
            fprintf(stderr, "imgpar: %s: warning: %s\n", r->in_path, r->err.msg);
        if (st->verbose)
            fprintf(stderr, "imgpar: %s -> %s (%ux%u, %llu -> %llu bytes)\n", r->in_path,
                    r->out_path, r->width, r->height, (unsigned long long)r->bytes_in,
                    (unsigned long long)r->bytes_out);
    }
}

static struct {
    pthread_mutex_t lock;
    struct ip_pipeline *pipeline;
    int signals;
} sig_state = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        pthread_mutex_lock(&sig_state.lock);
        sig_state.signals++;
        if (sig_state.signals > 1)
            _exit(EXIT_INTERRUPTED);
        if (sig_state.pipeline)
            ip_pipeline_cancel(sig_state.pipeline);
        pthread_mutex_unlock(&sig_state.lock);
    }
    return NULL;
}

static void print_stats(const struct ip_stats *s, enum ip_exec_kind exec)
{
    uint64_t n = s->images_ok + s->images_failed;
    double wall = s->wall_s > 0 ? s->wall_s : 1e-9;

    fprintf(stderr, "imgpar stats: %llu images (%llu failed) in %.3f s: %.2f images/s, %.2f MP/s\n",
            (unsigned long long)n, (unsigned long long)s->images_failed, s->wall_s,
            (double)s->images_ok / wall, s->megapixels / wall);
    fprintf(stderr, "  setup: -j %d, %s executor with %d worker%s, %d io-threads, %d writers, "
                    "queue %d, mem %llu MiB\n",
            s->jobs, ip_exec_name(exec), s->workers, s->workers == 1 ? "" : "s", s->io_threads,
            s->writers, s->queue, (unsigned long long)(s->mem >> 20));
    fprintf(stderr, "  busy seconds, summed over threads/processes:");
    for (int i = 0; i < IP_STAGE_COUNT; i++)
        fprintf(stderr, " %s %.3f", ip_stage_name((enum ip_stage)i), (double)s->busy_ns[i] / 1e9);
    fputc('\n', stderr);
    fprintf(stderr, "  peak RSS: imgpar %.1f MiB, largest worker %.1f MiB\n",
            (double)s->peak_rss_kb / 1024.0, (double)s->worker_peak_rss_kb / 1024.0);
}

int main(int argc, char **argv)
{
    struct ip_pipeline_config cfg;
    struct ip_chain chain;
    enum ip_format forced = IP_FORMAT_UNKNOWN;
    struct run_state rs = {0, 0, 0};
    struct plan pl = {0};
    struct ip_source source;
    struct ip_pipeline *pipeline = NULL;
    struct ip_stats stats;
    struct ip_error err;
    sigset_t sigs;
    pthread_t sig_thread;
    int show_stats = 0, opt, any_chain = 0, rc, pre_failed = 0;
    const char *outdir;

    /* Block the stop signals in every thread from the start: a signal that
     * arrives while planning stays pending and cancels the run as soon as the
     * signal thread exists; the pipeline's threads inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ip_pipeline_config_default(&cfg);
    ip_chain_init(&chain);
    while ((opt = getopt_long(argc, argv, "j:vqh", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_GRAY: {
            enum ip_gray_weights w = IP_GRAY_601;
            if (optarg && !strcmp(optarg, "709"))
                w = IP_GRAY_709;
            else if (optarg && strcmp(optarg, "601"))
                die_usage("--gray: '%s' is not 601 or 709", optarg);
            add_filter(&chain, ip_chain_add_gray(&chain, w), "--gray: cannot add filter");
            any_chain = 1;
            break;
        }
        case OPT_BLUR: {
            char *end;
            double sigma = strtod(optarg, &end);
            if (end == optarg || *end || !(sigma > 0 && sigma <= 100))
                die_usage("--blur: '%s' is not a sigma in (0, 100]", optarg);
            add_filter(&chain, ip_chain_add_gauss(&chain, sigma), "--blur: bad sigma");
            any_chain = 1;
            break;
        }
        case OPT_BOX:
            add_filter(&chain,
                       ip_chain_add_box(&chain, (int)parse_int("--box", optarg, 1, IP_BLUR_MAX_RADIUS)),
                       "--box: bad radius");
            any_chain = 1;
            break;
        case OPT_NO_FILTER: cfg.no_filter = 1; break;
        case OPT_FORMAT:
            if (!strcasecmp(optarg, "png"))
                forced = IP_FORMAT_PNG;
            else if (!strcasecmp(optarg, "jpg") || !strcasecmp(optarg, "jpeg"))
                forced = IP_FORMAT_JPEG;
            else
                die_usage("--format: '%s' is not png or jpg", optarg);
            break;
        case OPT_QUALITY: cfg.encode.jpeg_quality = (int)parse_int("--quality", optarg, 1, 100); break;
        case OPT_PNG_LEVEL: cfg.encode.png_level = (int)parse_int("--png-level", optarg, 0, 9); break;
        case OPT_DECODER:
            if (!strcmp(optarg, "stb"))
                cfg.decode.decoder = IP_DECODER_STB;
            else if (!strcmp(optarg, "native"))
                cfg.decode.decoder = IP_DECODER_NATIVE;
            else
                die_usage("--decoder: '%s' is not native or stb", optarg);
            break;
        case OPT_ALLOW_TRUNC: cfg.decode.allow_truncated = 1; break;
        case OPT_MAX_PIXELS: cfg.decode.limits.max_pixels = parse_size("--max-pixels", optarg); break;
        case OPT_MAX_DIM:
            cfg.decode.limits.max_dim = (uint32_t)parse_int("--max-dim", optarg, 1, 0x7fffffff);
            break;
        case OPT_MAX_FILE: cfg.decode.limits.max_file_size = parse_size("--max-file-size", optarg); break;
        case OPT_MEM: cfg.mem = parse_size("--mem", optarg); break;
        case 'j': cfg.jobs = (int)parse_int("-j", optarg, 1, 1024); break;
        case OPT_SERIAL: cfg.exec = IP_EXEC_SERIAL; break;
        case OPT_THREADS: cfg.exec = IP_EXEC_THREADS; break;
        case OPT_PROCS: cfg.exec = IP_EXEC_PROCS; break;
        case OPT_SPLIT:
            if (!strcmp(optarg, "image"))
                cfg.split = IP_SPLIT_IMAGE;
            else if (!strcmp(optarg, "strips"))
                cfg.split = IP_SPLIT_STRIPS;
            else if (!strcmp(optarg, "auto"))
                cfg.split = IP_SPLIT_AUTO;
            else
                die_usage("--split: '%s' is not image, strips or auto", optarg);
            break;
        case OPT_IO_THREADS: cfg.io_threads = (int)parse_int("--io-threads", optarg, 1, 1024); break;
        case OPT_WRITERS: cfg.writers = (int)parse_int("--writers", optarg, 1, 1024); break;
        case OPT_QUEUE: cfg.queue = (int)parse_int("--queue", optarg, 1, 1 << 20); break;
        case OPT_FSYNC: cfg.fsync = 1; break;
        case OPT_STATS: show_stats = 1; break;
        case 'v': rs.verbose = 1; rs.quiet = 0; break;
        case 'q': rs.quiet = 1; rs.verbose = 0; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case OPT_VERSION:
            printf("imgpar %s\n", IMGPAR_VERSION);
            return 0;
        default:
            fputs("Try 'imgpar --help' for more information.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (any_chain && cfg.no_filter)
        die_usage("--no-filter cannot be combined with filter options");
    if (any_chain)
        cfg.chain = chain;
    if (argc - optind < 2)
        die_usage("need at least one INPUT and an OUTDIR");
    outdir = argv[argc - 1];

    for (int i = optind; i < argc - 1; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (plan_dir(&pl, argv[i]) != 0)
                pre_failed++;
        } else {
            plan_add(&pl, argv[i]);
        }
    }
    if (mkdir_p(outdir) != 0) {
        fprintf(stderr, "imgpar: cannot create output directory %s: %s\n", outdir, strerror(errno));
        return EXIT_USAGE;
    }
    if (plan_outputs(&pl, outdir, forced) != 0) {
        fprintf(stderr, "imgpar: nothing was processed\n");
        return EXIT_USAGE;
    }

    /* The procs executor forks here, before this process has any other thread. */
    cfg.on_result = on_result;
    cfg.cb_ctx = &rs;
    rc = ip_pipeline_create(&pipeline, &cfg, &err);
    if (rc) {
        fprintf(stderr, "imgpar: cannot start: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        return EXIT_NO_START;
    }
    sig_state.pipeline = pipeline;
    if (pthread_create(&sig_thread, NULL, signal_main, &sigs) != 0) {
        fprintf(stderr, "imgpar: cannot start signal thread\n");
        ip_pipeline_destroy(pipeline);
        return EXIT_NO_START;
    }

    source.next = plan_next;
    source.ctx = &pl;
    source.total_hint = pl.count;
    ip_error_clear(&err);
    rc = ip_pipeline_run(pipeline, &source, &stats, &err);

    pthread_mutex_lock(&sig_state.lock);
    sig_state.pipeline = NULL;
    pthread_mutex_unlock(&sig_state.lock);
    ip_pipeline_destroy(pipeline);

    if (show_stats)
        print_stats(&stats, cfg.exec);
    for (size_t i = 0; i < pl.count; i++) {
        free(pl.tasks[i].in_path);
        free(pl.tasks[i].out_path);
    }
    free(pl.tasks);
    if (rc == IP_EINTR) {
        fprintf(stderr, "imgpar: interrupted\n");
        return EXIT_INTERRUPTED;
    }
    if (rc) {
        fprintf(stderr, "imgpar: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        return EXIT_NO_START;
    }
    return (rs.failed || pre_failed) ? EXIT_SOME_FAILED : 0;
}
