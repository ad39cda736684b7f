/* --files-from: a list of inputs streamed through the pipeline.
 *
 * DESIGN: the pipeline pulls tasks one at a time (ip_source.next, called
 * under the pipeline's source lock); each call reads the next name of the
 * list with getdelim into one reused buffer, so memory does not depend on
 * the length of the list. An entry's rel is its path with "/" and "."
 * components dropped; it is the --shard key and gives {dir}.
 *
 * Collisions cannot be found in advance without holding the whole list, so
 * they are caught just before each task starts, with a sound rule:
 *   - the run starts by taking a stamp S from OUTDIR's own file system
 *     (the mtime of an unnamed file), then waits until that file system's
 *     clock has moved past S, so an output this run writes has mtime > S and
 *     any file that existed before the run has mtime <= S;
 *   - an entry whose output exists with mtime > S was written by this run
 *     (for an earlier entry) or is being replaced by someone else: refused;
 *   - an entry whose output is still in flight (handed to the pipeline, not
 *     yet reported) is refused too; the in-flight set holds at most
 *     --io-threads + --queue names, so memory stays bounded.
 * A refused entry is reported failed ("imgpar: PATH: reason", a report
 * record, exit status 1); nothing is ever overwritten silently. The only
 * cost is that an output modified by another program during the run is
 * refused rather than replaced. Entries whose output is the entry itself
 * (same device and inode) are refused too. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* One output path handed to the pipeline and not yet reported. */
struct flight {
    char *out_path;
    char *in_path;           /* the entry that writes it (for the message) */
    uint64_t hash;
    struct flight *next;     /* bucket chain */
};

struct cli_filelist {
    const struct cli_options *o;
    struct cli_report *report;
    struct cli_naming naming;
    FILE *f;
    int own_f;               /* f was opened here (not stdin) */
    char *line;              /* getdelim buffer, reused */
    size_t line_cap;
    uint64_t n;              /* entries read so far (the next {n}) */
    int read_error;          /* IP_EIO when reading the list failed */
    char *last_dir;          /* last output directory created */
    struct timespec stamp;   /* S: outputs with a later mtime were written during this run */
    int have_stamp;
    pthread_mutex_t lock;    /* guards the in-flight set: next() and done() run on different threads */
    struct flight **buckets;
    size_t nbuckets;         /* a power of two */
    char *cur_in, *cur_out;  /* the task last returned (the pipeline copies them) */
};

static int ts_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec != b->tv_sec ? a->tv_sec > b->tv_sec : a->tv_nsec > b->tv_nsec;
}

/* The start stamp, read from OUTDIR's file system so that its clock and
 * granularity are the ones outputs will get. Returns 0, or -1 (errno). */
static int take_stamp(const char *outdir, struct timespec *stamp)
{
    char name[4200];
    struct stat st;
    int fd, named = 0, rc = -1;

    fd = open(outdir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(name, sizeof name, "%s/.imgpar-stamp-%ld", outdir, (long)getpid());
        fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        named = 1;
    }
    if (fstat(fd, &st) != 0)
        goto out;
    *stamp = st.st_mtim;
    /* Wait until a new write gets a later time (a clock tick, at most the
     * file system's granularity; 2.5 s covers 2-second FAT times). */
    for (int i = 0; i < 2500; i++) {
        struct timespec ms = {0, 1000000};
        if (write(fd, "x", 1) != 1 || fstat(fd, &st) != 0)
            goto out;
        if (ts_after(&st.st_mtim, stamp)) {
            rc = 0;
            goto out;
        }
        nanosleep(&ms, NULL);
    }
    /* The clock did not move: count equal times as this run's (refuse more, never less). */
    if (stamp->tv_nsec > 0) {
        stamp->tv_nsec--;
    } else {
        stamp->tv_sec--;
        stamp->tv_nsec = 999999999;
    }
    rc = 0;
out:
    close(fd);
    if (named)
        unlink(name);
    return rc;
}

static struct flight **find_slot(struct cli_filelist *fl, const char *out_path, uint64_t h)
{
    struct flight **pp = &fl->buckets[h & (fl->nbuckets - 1)];

    while (*pp && ((*pp)->hash != h || strcmp((*pp)->out_path, out_path)))
        pp = &(*pp)->next;
    return pp;
}

void cli_filelist_done(struct cli_filelist *fl, const char *out_path)
{
    uint64_t h = cli_fnv1a64(out_path);
    struct flight **pp, *f;

    pthread_mutex_lock(&fl->lock);
    pp = find_slot(fl, out_path, h);
    f = *pp;
    if (f) {
        *pp = f->next;
        free(f->out_path);
        free(f->in_path);
        free(f);
    }
    pthread_mutex_unlock(&fl->lock);
}

struct cli_filelist *cli_filelist_open(const struct cli_options *o, struct cli_report *report)
{
    struct cli_filelist *fl;
    FILE *f = stdin;
    size_t want;

    if (strcmp(o->files_from, "-") != 0) {
        f = fopen(o->files_from, "re");
        if (!f) {
            fprintf(stderr, "imgpar: --files-from %s: %s\n", o->files_from, strerror(errno));
            exit(EXIT_USAGE);
        }
    }
    fl = calloc(1, sizeof *fl);
    if (!fl)
        cli_oom();
    fl->o = o;
    fl->report = report;
    cli_naming_init(&fl->naming, o);
    fl->f = f;
    fl->own_f = f != stdin;
    pthread_mutex_init(&fl->lock, NULL);
    /* Tasks in flight: at most one per loader waiting for a slot plus --queue. */
    want = (size_t)(o->cfg.queue > 0 ? o->cfg.queue : 2 * 1024 + 2) +
           (size_t)(o->cfg.io_threads > 0 ? o->cfg.io_threads : 1024);
    fl->nbuckets = 64;
    while (fl->nbuckets < 2 * want && fl->nbuckets < (1u << 16))
        fl->nbuckets *= 2;
    fl->buckets = calloc(fl->nbuckets, sizeof *fl->buckets);
    if (!fl->buckets)
        cli_oom();
    if (!o->dry_run) {
        if (cli_mkdir_p(o->outdir) != 0) {
            fprintf(stderr, "imgpar: cannot create output directory %s: %s\n", o->outdir,
                    strerror(errno));
            cli_filelist_close(fl);
            exit(EXIT_USAGE);
        }
        if (take_stamp(o->outdir, &fl->stamp) != 0) {
            fprintf(stderr, "imgpar: cannot write in output directory %s: %s\n", o->outdir,
                    strerror(errno));
            cli_filelist_close(fl);
            exit(EXIT_NO_START);
        }
        fl->have_stamp = 1;
    }
    return fl;
}

/* Reads the next non-empty entry into fl->line; 1, 0 at the end, or -1. */
static int read_entry(struct cli_filelist *fl)
{
    int sep = fl->o->null_sep ? '\0' : '\n';

    for (;;) {
        ssize_t len = getdelim(&fl->line, &fl->line_cap, sep, fl->f);
        if (len < 0) {
            if (ferror(fl->f)) {
                fprintf(stderr, "imgpar: --files-from %s: %s\n", fl->o->files_from, strerror(errno));
                fl->read_error = IP_EIO;
                return -1;
            }
            return 0;
        }
        if (len > 0 && fl->line[len - 1] == (char)sep)
            fl->line[--len] = '\0';
        if (len > 0 && (size_t)len != strlen(fl->line)) {
            /* A NUL inside a newline-separated entry: not a path. */
            fl->n++;
            cli_report_fail(fl->report, fl->line, NULL, IP_EINVAL,
                            "entry contains a NUL byte (use -0 for NUL-separated lists)");
            continue;
        }
        if (len > 0)
            return 1;
    }
}

enum verdict { V_PROCESS, V_SKIP, V_FAIL };

/* Decides one entry: names its output and runs every check. On V_FAIL the
 * reason is in why. dry: no directories created, no in-flight set. */
static enum verdict decide(struct cli_filelist *fl, const char *in, const char *rel, uint64_t n,
                           char **out_path, int *code, char *why, size_t why_size, int dry)
{
    const char *reason = NULL;
    struct stat in_st, out_st;
    enum ip_format fmt = cli_sniff(in);

    *out_path = cli_output_name(&fl->naming, in, rel, n, fmt, &reason);
    if (!*out_path) {
        snprintf(why, why_size, "%s", reason);
        *code = IP_EINVAL;
        return V_FAIL;
    }
    *code = IP_EEXIST;
    if (!dry) {
        struct flight *f = NULL;
        uint64_t h = cli_fnv1a64(*out_path);

        pthread_mutex_lock(&fl->lock);
        f = *find_slot(fl, *out_path, h);
        if (f)
            snprintf(why, why_size, "%s is also the output of %s (still being written): refusing "
                                    "to overwrite it", *out_path, f->in_path);
        pthread_mutex_unlock(&fl->lock);
        if (f)
            return V_FAIL;
    }
    if (stat(*out_path, &out_st) == 0) {
        if (stat(in, &in_st) == 0 && in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
            snprintf(why, why_size, "output %s is the input; refusing to overwrite it", *out_path);
            return V_FAIL;
        }
        if (fl->have_stamp && ts_after(&out_st.st_mtim, &fl->stamp)) {
            snprintf(why, why_size, "%s was already written by this run (another entry of the "
                                    "list has the same output name): refusing to overwrite it",
                     *out_path);
            return V_FAIL;
        }
        if (fl->o->skip_existing && cli_up_to_date(in, *out_path))
            return V_SKIP;
    }
    if (!dry && cli_mkdir_parent(*out_path, &fl->last_dir) != 0) {
        snprintf(why, why_size, "cannot create the directory of %s: %s", *out_path, strerror(errno));
        *code = IP_EIO;
        return V_FAIL;
    }
    return V_PROCESS;
}

static int filelist_next(void *ctx, struct ip_task *task)
{
    struct cli_filelist *fl = ctx;
    char why[1024];

    for (;;) {
        char *rel, *out = NULL;
        int code = 0;
        uint64_t n;
        enum verdict v;
        int rc = read_entry(fl);

        if (rc <= 0)
            return rc < 0 ? IP_EIO : 0;
        n = fl->n++;
        rel = cli_rel_normalize(fl->line);
        if (!rel)
            cli_oom();
        if (!cli_in_shard(fl->o, rel)) {
            free(rel);
            continue;
        }
        v = decide(fl, fl->line, rel, n, &out, &code, why, sizeof why, 0);
        free(rel);
        if (v == V_SKIP) {
            cli_report_skip(fl->report, fl->line, out, fl->o->forced_format);
        } else if (v == V_FAIL) {
            cli_report_fail(fl->report, fl->line, out, code, why);
        } else {
            uint64_t h = cli_fnv1a64(out);
            struct flight *f = calloc(1, sizeof *f);
            if (!f || !(f->in_path = strdup(fl->line)))
                cli_oom();
            f->out_path = out;
            f->hash = h;
            pthread_mutex_lock(&fl->lock);
            struct flight **pp = &fl->buckets[h & (fl->nbuckets - 1)];
            f->next = *pp;
            *pp = f;
            pthread_mutex_unlock(&fl->lock);
            free(fl->cur_in);
            free(fl->cur_out);
            fl->cur_in = strdup(fl->line);
            fl->cur_out = strdup(out);
            if (!fl->cur_in || !fl->cur_out)
                cli_oom();
            task->in_path = fl->cur_in;
            task->out_path = fl->cur_out;
            task->out_format = fl->o->forced_format;
            return 1;
        }
        free(out);
    }
}

void cli_filelist_source(struct cli_filelist *fl, struct ip_source *source)
{
    source->next = filelist_next;
    source->ctx = fl;
    source->total_hint = 0;
}

uint64_t cli_filelist_dry_run(struct cli_filelist *fl, FILE *out)
{
    uint64_t failed = 0;
    char why[1024];
    int rc;

    while ((rc = read_entry(fl)) > 0) {
        uint64_t n = fl->n++;
        char *rel = cli_rel_normalize(fl->line), *o = NULL;
        enum verdict v;
        int code;

        if (!rel)
            cli_oom();
        if (cli_in_shard(fl->o, rel)) {
            v = decide(fl, fl->line, rel, n, &o, &code, why, sizeof why, 1);
            if (v == V_FAIL) {
                cli_msg(fl->line, "%s", why);
                failed++;
            } else {
                fprintf(out, "%s\t%s\t%s\n", v == V_SKIP ? "skip" : "process", fl->line, o);
            }
        }
        free(o);
        free(rel);
    }
    return failed + (rc < 0);
}

int cli_filelist_error(const struct cli_filelist *fl)
{
    return fl->read_error;
}

void cli_filelist_close(struct cli_filelist *fl)
{
    if (!fl)
        return;
    for (size_t i = 0; i < fl->nbuckets; i++) {
        struct flight *f = fl->buckets[i];
        while (f) {
            struct flight *next = f->next;
            free(f->out_path);
            free(f->in_path);
            free(f);
            f = next;
        }
    }
    free(fl->buckets);
    if (fl->own_f)
        fclose(fl->f);
    free(fl->line);
    free(fl->last_dir);
    free(fl->cur_in);
    free(fl->cur_out);
    pthread_mutex_destroy(&fl->lock);
    free(fl);
}
