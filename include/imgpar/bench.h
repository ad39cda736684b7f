/* Benchmarking the pipeline: how many cores to give it, and where the time goes.
 *
 * A bench runs the real pipeline on one set of tasks for every configuration
 * (strategy x split x jobs), `warmup` unmeasured then `repeat` measured times
 * each, and checks every run's outputs against a serial -j1 reference run
 * made first. Each run is a forked child process of its own, as each imgpar
 * command is a process of its own, so its peak RSS is its own (getrusage
 * ru_maxrss of that child, with no allocator state left by earlier runs)
 * and each pipeline is created by a process with no other threads, as the
 * procs executor needs. The library never prints: progress goes to a callback,
 * reports to a FILE * the caller gives. */
#ifndef IMGPAR_BENCH_H
#define IMGPAR_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "imgpar/error.h"
#include "imgpar/exec.h"
#include "imgpar/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IP_BENCH_MAX_JOBS 1024

struct ip_bench_result;

/* Where a bench stands; passed to on_progress. Valid only during the call. */
struct ip_bench_progress {
    const struct ip_bench_result *result; /* configuration running; NULL: the reference run */
    size_t config, n_configs;        /* index of that configuration, of how many */
    int run, n_runs;                 /* its runs finished so far (warm-ups included), of n_runs */
    int n_warmup;                    /* the first n_warmup of the n_runs are warm-ups */
    size_t runs_done, runs_total;    /* over the whole bench, the reference run included */
    double last_wall_s;              /* the run that just finished; 0 when a configuration starts */
    double elapsed_s;                /* since ip_bench_run started */
    double eta_s;                    /* estimate of the time left; < 0 while unknown */
};

struct ip_bench_config {
    /* The workload: chain, codecs, limits, io_threads, writers, queue, mem,
     * no_filter. exec, jobs and split are set per configuration, and
     * on_result is the bench's own. */
    struct ip_pipeline_config pipeline;
    /* Inputs and where each output goes. Every output is checksummed and
     * removed after each run: point out_path into a scratch directory. */
    const struct ip_task *tasks;
    size_t n_tasks;
    const enum ip_exec_kind *strategies;
    size_t n_strategies;
    const enum ip_split *splits;
    size_t n_splits;
    /* Values of -j; 1 is added when missing (speedups are against j=1).
     * serial runs at j=1 only: it ignores -j. */
    const int *jobs;
    size_t n_jobs;
    int repeat;                      /* measured runs per configuration, >= 1 (default 3) */
    int warmup;                      /* unmeasured runs before them, >= 0 (default 1) */
    int online_cpus;                 /* j above it is marked oversubscribed; 0: detected */
    int test_corrupt_reference;      /* tests: spoil the first reference checksum */
    /* Called from the thread running ip_bench_run, when a configuration starts and after each run. */
    void (*on_progress)(void *ctx, const struct ip_bench_progress *progress);
    void *cb_ctx;
};

/* One pipeline run of one configuration. */
/* Memory target: a configuration's peak RSS should stay within the pixels
 * it had in flight plus this much (code, libraries, codec state, buffers). */
#define IP_BENCH_MEM_SLACK_KB (64L * 1024)

struct ip_bench_sample {
    int warmup;                      /* unmeasured warm-up run */
    int status;                      /* 0, or IP_E* when the pipeline could not run */
    double wall_s;                   /* ip_pipeline_create + run + destroy: what a user waits */
    double cpu_s;                    /* user + system CPU time of the run, procs workers included:
                                        unlike wall time, barely moved by other load on the machine */
    struct ip_stats stats;           /* the pipeline's own (stats.wall_s: run only) */
    uint64_t mismatches;             /* outputs missing or not identical to the reference */
    uint64_t first_mismatch;         /* task index of the first one; UINT64_MAX when none */
};

/* One configuration and what it measured. Times, rates and the per-stage
 * busy times are over the measured runs only. */
struct ip_bench_result {
    enum ip_exec_kind exec;
    enum ip_split split;
    int jobs;
    int oversubscribed;              /* jobs > online CPUs */
    struct ip_bench_sample *samples; /* warm-ups first; owned by the bench */
    int n_samples;                   /* runs that happened (fewer when one failed) */
    double min_s, median_s;          /* wall time; NAN without a successful measured run */
    double median_cpu_s;             /* CPU time (cpu_s) of the measured runs, median */
    double images_per_s, megapixels_per_s;  /* at the median */
    double speedup;                  /* median_s(j=1, same strategy and split) / median_s */
    double efficiency;               /* speedup / jobs */
    double karp_flatt;               /* (1/S - 1/p) / (1 - 1/p), p = jobs; NAN at p = 1 */
    double speedup_vs_serial;        /* median_s(serial j=1, same split) / median_s; NAN without it */
    uint64_t busy_ns[IP_STAGE_COUNT];/* of the measured run nearest the median */
    long peak_rss_kb;                /* largest ru_maxrss of the child processes of its runs */
    long start_rss_kb;               /* its VmRSS when it started (inherited from the bench process) */
    long worker_peak_rss_kb;         /* largest procs worker over every run; 0 for other strategies */
    uint64_t peak_pixel_bytes;       /* most pixel bytes in flight at once (ip_stats), over every run */
    long mem_bound_kb;               /* the memory target for peak_rss_kb: peak_pixel_bytes plus
                                      * IP_BENCH_MEM_SLACK_KB */
    uint64_t images, failed;         /* images done per run; images failed over every run */
    double megapixels;               /* per run */
    uint64_t mismatches;             /* over every run */
    int status;                      /* 0, or IP_E* when a run or the child process failed */
    char msg[IP_ERROR_MSG_MAX];      /* what failed first (a file and its reason, a mismatch) */
};

/* One output of the reference run. */
struct ip_bench_output {
    int present;                     /* the reference run wrote it */
    uint64_t bytes;
    uint64_t fnv1a64;                /* FNV-1a 64-bit of the whole file */
};

struct ip_bench_machine {
    char cpu_model[128];
    int online_cpus;                 /* sysconf(_SC_NPROCESSORS_ONLN) */
    int affinity_cpus;               /* CPUs this process may run on (sched_getaffinity) */
    uint64_t mem_bytes;              /* physical memory */
    char kernel[128];                /* uname: sysname release machine */
    char compiler[96];               /* that built libimgpar */
    char libpng[32];                 /* png_get_libpng_ver at run time */
    char libjpeg[32];                /* libjpeg-turbo, from its headers at build time */
    char libdeflate[32];             /* from its header at build time; "" if not built in */
    char zlib[32];                   /* zlibVersion() at run time; "" if not built in */
    char imgpar[32];                 /* ip_version() */
    char date[32];                   /* UTC, ISO 8601, when the bench started */
    double loadavg[2];               /* 1-minute load average when the bench started and ended:
                                        other work on the machine skews every timing */
};

/* Everything a bench measured; owned by the bench (ip_bench_destroy frees it). */
struct ip_bench_report {
    struct ip_bench_machine machine;
    struct ip_pipeline_config pipeline;   /* the workload, as given */
    int repeat, warmup;
    const struct ip_task *tasks;          /* copies of the tasks */
    size_t n_tasks;
    struct ip_bench_output *reference;    /* n_tasks outputs of the serial -j1 reference */
    double reference_wall_s;
    uint64_t images;                      /* images per run (the reference's successes) */
    double megapixels;                    /* per run */
    uint64_t bytes_in, bytes_out;         /* per run: inputs read, reference outputs */
    struct ip_bench_result *results;
    size_t n_results;
    uint64_t mismatches, failed;          /* totals; nonzero: the bench failed */
    int failed_configs;                   /* configurations with status != 0 */
    const char *rss_method;               /* how peak RSS was measured, in words */
    long bench_peak_rss_kb;               /* the bench process itself */
};

struct ip_bench;

void ip_bench_config_default(struct ip_bench_config *config);

/* Copies the configuration (tasks and lists included). Returns 0 or
 * IP_EINVAL / IP_ENOMEM with a reason in err. */
int ip_bench_create(struct ip_bench **out, const struct ip_bench_config *config,
                    struct ip_error *err);

/* Runs the reference, then every configuration. Returns 0 when every
 * configuration ran (mismatches and failures are in the report: check
 * report->mismatches, ->failed and ->failed_configs), IP_EINTR when
 * cancelled, or another IP_E* when the reference could not be made (err
 * says why). The caller's thread forks one child per configuration: it
 * may have other threads, but must not hold locks they need. */
int ip_bench_run(struct ip_bench *bench, struct ip_error *err);

/* Asks a running bench to stop: the current child is killed (its outputs
 * may be left in the scratch directory) and ip_bench_run returns IP_EINTR
 * within about 0.1 s. Thread-safe and async-signal-safe. */
void ip_bench_cancel(struct ip_bench *bench);

/* The report so far (complete after ip_bench_run returned 0). */
const struct ip_bench_report *ip_bench_report_get(const struct ip_bench *bench);

void ip_bench_destroy(struct ip_bench *bench);

/* Describes this machine and the libraries linked in. */
void ip_bench_machine_get(struct ip_bench_machine *machine);

/* Writers: return 0, or IP_EIO when writing to f failed.
 * CSV: "# key: value" lines (machine, workload), a header, then one row per
 *   run (warm-ups flagged) carrying its configuration's summary columns.
 * JSON: one object with machine, workload, reference outputs and every
 *   configuration with every run.
 * SVG: speedup against j per strategy and split with the ideal line, and
 *   stacked per-stage busy times at each series' best j. */
int ip_bench_write_csv(FILE *f, const struct ip_bench_report *report);
int ip_bench_write_json(FILE *f, const struct ip_bench_report *report);
int ip_bench_write_svg(FILE *f, const struct ip_bench_report *report);

#ifdef __cplusplus
}
#endif
#endif
