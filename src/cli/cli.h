/* Declarations shared by the imgpar command-line files. The CLI uses only
 * the public libimgpar API. */
#ifndef IMGPAR_CLI_H
#define IMGPAR_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

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
};

/* options.c */
void cli_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
long cli_parse_int(const char *opt, const char *s, long lo, long hi);
uint64_t cli_parse_size(const char *opt, const char *s);
/* Parses argv into *o; prints help/version and exits, or exits 2 on a usage error. */
void cli_parse(int argc, char **argv, struct cli_options *o);
/* Prints "imgpar: out of memory" and exits 3. */
void cli_oom(void) __attribute__((noreturn));

/* plan.c: the list of tasks. */
struct cli_task {
    char *in_path, *out_path;
    enum ip_format out_format;
    dev_t dev;               /* of the input, when it could be stat'ed */
    ino_t ino;
    int have_id;
};

struct cli_plan {
    struct cli_task *tasks;
    size_t count, cap, next;
    int pre_failed;          /* inputs that failed while planning (reported already) */
};

/* Expands INPUTs, creates OUTDIR, names the outputs and refuses collisions
 * and outputs that are inputs. Returns 0, or exits with a usage error. */
void cli_plan_build(struct cli_plan *pl, const struct cli_options *o);
void cli_plan_free(struct cli_plan *pl);
/* An ip_source over the plan. */
void cli_plan_source(struct cli_plan *pl, struct ip_source *source);

/* report.c: per-file lines and the final statistics. */
struct cli_report {
    int verbose, quiet;
    uint64_t failed;
};
void cli_report_init(struct cli_report *r, const struct cli_options *o);
void cli_report_result(void *ctx, const struct ip_result *result);
void cli_print_stats(FILE *f, const struct ip_stats *s, enum ip_exec_kind exec);

/* bench_cmd.c: `imgpar bench ...` (argv[0] is "bench"); returns the exit status. */
int cli_bench_main(int argc, char **argv);

#endif
