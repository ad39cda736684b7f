/* Declarations shared by the imgpar command-line files. The CLI uses only
 * the public libimgpar API.
 *
 *   options.c   argv -> struct cli_options
 *   walk.c      directory inputs (-r, symlinks, loops) -> files
 *   naming.c    output names (--out-pattern), --shard, the shared per-task checks
 *   plan.c      INPUT arguments -> a checked task list (collisions refused up front)
 *   filelist.c  --files-from -> a streaming ip_source (constant memory)
 *   report.c    per-file lines, the JSON Lines report, counters
 *   progress.c  the progress line on a terminal
 *   main.c      wiring, signals, exit status */
#ifndef IMGPAR_CLI_H
#define IMGPAR_CLI_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "imgpar/codec.h"
#include "imgpar/error.h"
#include "imgpar/exec.h"
#include "imgpar/filter.h"
#include "imgpar/pipeline.h"

#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2
#define EXIT_NO_START 3
#define EXIT_INTERRUPTED 130

/* Everything the command line asked for. */
struct cli_options {
    struct ip_pipeline_config cfg;
    enum ip_format forced_format;   /* --format, or UNKNOWN */
    int show_stats;                 /* --stats */
    int verbose, quiet;             /* -v, -q */
    char **inputs;                  /* INPUT... (points into argv) */
    int n_inputs;
    const char *outdir;
    int recursive;                  /* -r: walk directory inputs, mirror the tree */
    int follow_symlinks;            /* follow symlinked directories met while walking */
    const char *files_from;         /* --files-from FILE ("-": stdin), or NULL */
    int null_sep;                   /* -0: the list is NUL-separated */
    const char *out_pattern;        /* --out-pattern, or NULL for the default names */
    int skip_existing;              /* --skip-existing */
    int dry_run;                    /* --dry-run */
    int in_order;                   /* --in-order: not largest first */
    uint64_t shard_k, shard_n;      /* --shard K/N; shard_n == 0: no sharding */
    const char *report_path;        /* --report FILE ("-": stdout), or NULL */
};

/* options.c */
void cli_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
long cli_parse_int(const char *opt, const char *s, long lo, long hi);
uint64_t cli_parse_size(const char *opt, const char *s);
/* Parses argv into *o; prints help/version and exits, or exits 2 on a usage
 * error. with_outdir: the last operand is OUTDIR (imgpar); 0: every operand
 * is an INPUT and o->outdir stays NULL (imgpar bench). */
void cli_parse(int argc, char **argv, int with_outdir, struct cli_options *o);
/* The command named in "Try 'COMMAND --help'" after a usage error
 * (default "imgpar"). */
void cli_set_usage_command(const char *command);
/* Prints "imgpar: out of memory" and exits 3. */
void cli_oom(void) __attribute__((noreturn));

/* walk.c: the image files of a directory input. */
struct cli_walk {
    int recursive, follow_symlinks;
    int quiet;               /* -q: no warnings (loops), errors only */
    dev_t skip_dev;          /* a directory never entered (OUTDIR), when have_skip */
    ino_t skip_ino;
    int have_skip;
    /* Called for each image file (by magic bytes) and each entry that cannot
     * be opened (its task then fails with the reason), in name order, depth
     * first. path: as opened; rel: relative to the directory input ("sub/x.png"). */
    void (*add)(void *ctx, const char *path, const char *rel);
    void *ctx;
};
/* Walks root; prints "imgpar: PATH: reason" for each directory it cannot
 * read and goes on. Returns the number of such errors. */
int cli_walk_dir(const struct cli_walk *w, const char *root);

/* naming.c: output names, shards, and the checks every task goes through. */
struct cli_naming {
    const char *outdir;
    const char *pattern;     /* --out-pattern, or NULL: the default name */
    int mirror;              /* the default name goes under {dir} (-r, --files-from) */
    enum ip_format forced;   /* --format */
};
void cli_naming_init(struct cli_naming *nm, const struct cli_options *o);
/* Returns NULL when pattern is acceptable, else why not (parse time). */
const char *cli_pattern_check(const char *pattern);
/* OUTDIR/<name> for one input (malloc'd), or NULL with *why set when the
 * name would be empty or leave OUTDIR. rel: the input's path relative to
 * its input root (see cli_rel_normalize); n: its 0-based index. */
char *cli_output_name(const struct cli_naming *nm, const char *in_path, const char *rel, uint64_t n,
                      enum ip_format in_fmt, const char **why);
/* Format of a file by its first bytes; IP_FORMAT_UNKNOWN if unreadable or not an image. */
enum ip_format cli_sniff(const char *path);
/* The same, with *err the errno when the file cannot be opened (else 0). */
enum ip_format cli_sniff_err(const char *path, int *err);
/* Whether a directory entry's name says it is an image: not hidden (no
 * leading '.'), and an extension imgpar decodes (png, jpg, jpeg, jpe, jfif,
 * bmp, gif, tga, psd, hdr, pic, pnm, ppm, pgm, pbm), in any case. */
int cli_image_name(const char *name);
/* path with "." components, empty components and a leading "/" removed
 * (malloc'd); ".." components are kept (an output pattern with {dir} then
 * refuses the input). */
char *cli_rel_normalize(const char *path);
/* FNV-1a 64 of s. */
uint64_t cli_fnv1a64(const char *s);
/* 1 when rel belongs to this run's --shard (always 1 without --shard). */
int cli_in_shard(const struct cli_options *o, const char *rel);
/* Creates every missing directory of path (like mkdir -p). 0 or -1 (errno). */
int cli_mkdir_p(const char *path);
/* Creates the directory that will hold out_path; *last caches the last
 * directory made (malloc'd, freed by the caller). 0 or -1 (errno). */
int cli_mkdir_parent(const char *out_path, char **last);
/* --skip-existing: 1 when out_path is a regular file newer than in_path. */
int cli_up_to_date(const char *in_path, const char *out_path);

/* plan.c: the list of tasks from INPUT arguments. */
struct cli_task {
    char *in_path, *out_path;
    char *rel;               /* path relative to its input root (the --shard key) */
    uint64_t n;              /* index in the whole input list ({n}) */
    enum ip_format out_format;
    dev_t dev;               /* of the input, when it could be stat'ed */
    ino_t ino;
    int have_id;
    uint64_t size;           /* of the input in bytes, 0 if unknown */
};

struct cli_report;

struct cli_plan {
    struct cli_task *tasks;
    size_t count, cap, next;
    int pre_failed;          /* inputs that failed while planning (reported already) */
    char *last_dir;          /* last output directory created */
    const struct cli_options *o;
    struct cli_report *report; /* where skips are reported */
};

/* Expands INPUTs, names the outputs and refuses collisions and outputs that
 * are inputs (exits 2), then creates OUTDIR (unless --dry-run) and keeps
 * this shard's tasks. */
void cli_plan_build(struct cli_plan *pl, const struct cli_options *o);
void cli_plan_free(struct cli_plan *pl);
/* Puts the largest inputs first (unless --in-order), ties in input order:
 * the longest jobs start first, so the batch does not end with one core
 * busy on a big image while the others idle. */
void cli_plan_order(struct cli_plan *pl);
/* An ip_source over the plan (in its order); skips (--skip-existing) go to report. */
void cli_plan_source(struct cli_plan *pl, struct cli_report *report, struct ip_source *source);
/* --dry-run: one line per task on stdout. */
void cli_plan_dry_run(struct cli_plan *pl, FILE *out);

/* filelist.c: --files-from as a streaming ip_source. */
struct cli_filelist;
/* Opens the list (exits 2 if it cannot). Unless --dry-run, creates OUTDIR
 * and takes the run's start stamp from OUTDIR's file system. */
struct cli_filelist *cli_filelist_open(const struct cli_options *o, struct cli_report *report);
void cli_filelist_source(struct cli_filelist *fl, struct ip_source *source);
/* The pipeline reported the task that writes out_path: it is no longer in flight. */
void cli_filelist_done(struct cli_filelist *fl, const char *out_path);
/* --dry-run over the list; returns the number of inputs that could not be planned. */
uint64_t cli_filelist_dry_run(struct cli_filelist *fl, FILE *out);
/* 0, or the IP_E* code of a read error on the list. */
int cli_filelist_error(const struct cli_filelist *fl);
void cli_filelist_close(struct cli_filelist *fl);

/* report.c: per-file lines, the JSON Lines report, counters. Every entry
 * point takes lock, so results may come from pipeline threads and from the
 * sources at once. */
struct cli_report {
    pthread_mutex_t lock;
    int verbose, quiet;
    FILE *json;                 /* --report, or NULL */
    int json_is_stdout;
    int json_broken;            /* a write to the report failed (reported once) */
    uint64_t ok, failed, skipped; /* per input, whoever decided */
    double megapixels;          /* decoded pixels of ok inputs / 1e6 */
    uint64_t total;             /* inputs this run will see, 0 when streaming */
    uint64_t t0_ns;             /* CLOCK_MONOTONIC at the start of the run */
    /* Called (under lock) for every result that came through the pipeline. */
    void (*on_pipeline_result)(void *ctx, const struct ip_result *r);
    void *on_pipeline_ctx;
    /* progress.c state, under lock */
    int progress;               /* a progress line is drawn (stderr is a terminal) */
    int line_shown;             /* the progress line is on screen now */
    pthread_t progress_thread;
    pthread_cond_t progress_cond;
    int progress_stop, progress_started;
};
/* Opens --report (exits 2 if it cannot). */
void cli_report_init(struct cli_report *r, const struct cli_options *o);
/* The pipeline's on_result callback. */
void cli_report_result(void *ctx, const struct ip_result *result);
/* A decision the CLI took itself: skipped (--skip-existing) or failed before
 * the pipeline saw it (code and reason). fmt: the planned output format. */
void cli_report_skip(struct cli_report *r, const char *in_path, const char *out_path, enum ip_format fmt);
void cli_report_fail(struct cli_report *r, const char *in_path, const char *out_path, int code,
                     const char *reason);
/* Prints "imgpar: PATH: reason" on stderr (clearing the progress line). */
void cli_report_error(struct cli_report *r, const char *path, const char *reason);
/* Prints one line on stderr, "imgpar: PATH: message" (or "imgpar: message"
 * when path is NULL), that stays one line whatever the bytes: a path that
 * is not valid UTF-8 or holds a control character is written quoted like
 * bash's $'...' ($'new\nline.png', $'caf\xe9.png'), and control characters
 * in the message are escaped (\n, \t, \xHH). Takes no lock. */
void cli_msg(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Flushes and closes the report; 0, or -1 when writing it failed. */
int cli_report_close(struct cli_report *r);
void cli_print_stats(FILE *f, const struct ip_stats *s, enum ip_exec_kind exec);
uint64_t cli_now_ns(void);

/* progress.c: redraws "done/total, MP/s, failures, ETA" at most 10 times a
 * second while r->progress; the final summary line. */
void cli_progress_start(struct cli_report *r);
/* Erases the progress line; call with r->lock held. */
void cli_progress_clear(struct cli_report *r);
/* Stops the thread and prints one summary line (on a terminal, not with -q). */
void cli_progress_finish(struct cli_report *r, int interrupted);

/* bench_cmd.c: `imgpar bench ...` (argv[0] is "bench"); returns the exit status. */
int cli_bench_main(int argc, char **argv);

#endif
