/* The three-stage pipeline: loader threads read and decode, an executor
 * filters, writer threads encode and rename outputs into place.
 *
 *   source --> [loaders: read, decode into arena] --load queue-->
 *     [dispatcher: cut into bands, submit] --> executor --> [completer]
 *     --write queue--> [writers: encode, write temp, rename] --> on_result
 *
 * Bounded queues, a cap on images in flight (--queue) and a byte budget
 * for pixels (--mem) keep memory flat however many files there are. */
#ifndef IMGPAR_PIPELINE_H
#define IMGPAR_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include "imgpar/codec.h"
#include "imgpar/error.h"
#include "imgpar/exec.h"
#include "imgpar/filter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One input and where its output goes. */
struct ip_task {
    const char *in_path;
    const char *out_path;
    enum ip_format out_format;  /* IP_FORMAT_UNKNOWN: JPEG stays JPEG, everything else PNG */
};

/* Pulls tasks one at a time. next returns 1 with *task filled, 0 at the end,
 * or a negative IP_E* code. The strings need only stay valid until the next
 * call (the pipeline copies them). Called under a lock: need not be thread-safe. */
struct ip_source {
    int (*next)(void *ctx, struct ip_task *task);
    void *ctx;
    uint64_t total_hint;   /* number of tasks if known, else 0 */
};

enum ip_split {
    IP_SPLIT_AUTO = 0,  /* strips when images are fewer than workers or larger than their memory share */
    IP_SPLIT_IMAGE,     /* one image per job */
    IP_SPLIT_STRIPS,    /* every image cut into horizontal bands */
};

/* "auto", "image", "strips" (executors: ip_exec_name in exec.h). */
const char *ip_split_name(enum ip_split split);

enum ip_stage {
    IP_STAGE_READ = 0,
    IP_STAGE_DECODE,
    IP_STAGE_FILTER,
    IP_STAGE_ENCODE,
    IP_STAGE_WRITE,
    IP_STAGE_WAIT_LOAD,   /* loaders blocked on a full queue or the memory budget */
    IP_STAGE_WAIT_FILTER, /* dispatcher blocked on busy workers / empty load queue */
    IP_STAGE_WAIT_WRITE,  /* writers idle, waiting for work */
    IP_STAGE_COUNT
};

const char *ip_stage_name(enum ip_stage stage);

enum ip_result_status {
    IP_RESULT_OK = 0,
    IP_RESULT_FAILED,
    IP_RESULT_SKIPPED,
};

/* Per-file outcome, passed to on_result. Valid only during the callback. */
struct ip_result {
    uint64_t index;            /* order in which the source produced the task */
    const char *in_path, *out_path;
    enum ip_result_status status;
    struct ip_error err;       /* reason when failed */
    enum ip_format in_format, out_format;
    uint32_t width, height, channels;  /* decoded input */
    uint64_t bytes_in, bytes_out;
    uint64_t stage_ns[IP_STAGE_COUNT]; /* read, decode, filter, encode, write for this file */
    uint32_t attempts;         /* filter attempts (2 when a worker died and it was retried) */
};

struct ip_pipeline_config {
    struct ip_chain chain;
    struct ip_decode_opts decode;    /* allocator is ignored: the pipeline decodes into its arena;
                                      * jpeg_luma_only applies only when the chain starts with
                                      * Rec.601 gray; gray is ignored: the pipeline sets it itself
                                      * when the chain starts with gray (IMGPAR_DECODE_GRAY=0: never) */
    struct ip_encode_opts encode;
    enum ip_exec_kind exec;
    int jobs;                        /* cores imgpar may keep busy; 0: online CPUs */
    int io_threads;                  /* 0: chosen from jobs */
    int writers;                     /* 0: chosen from jobs */
    int queue;                       /* images in flight; 0: chosen from jobs */
    uint64_t mem;                    /* pixel byte budget; 0: quarter of RAM, at most 2 GiB */
    enum ip_split split;
    int fsync;                       /* fsync outputs before rename */
    int no_filter;                   /* decode+encode only (benchmark baseline) */
    /* Called once per task, from pipeline threads, never concurrently. */
    void (*on_result)(void *ctx, const struct ip_result *result);
    void *cb_ctx;
};

struct ip_stats {
    double wall_s;
    uint64_t images_ok, images_failed, images_skipped;
    double megapixels;                  /* decoded pixels of successful images / 1e6 */
    uint64_t busy_ns[IP_STAGE_COUNT];   /* summed over the threads or processes of each stage */
    long peak_rss_kb;                   /* the imgpar process */
    long worker_peak_rss_kb;            /* largest worker process (procs) */
    int jobs, io_threads, writers, queue, workers;
    uint64_t mem;
    uint64_t peak_pixel_bytes;          /* most pixel bytes in flight at once: decoded images and
                                         * their filter outputs in the --mem arena */
    uint64_t strip_decodes;             /* images decoded by strips on several cores (huge JPEGs
                                         * with restart markers, huge PNGs imgpar wrote) */
    uint64_t whole_on_loader;           /* images filtered, encoded and written by the thread that
                                         * decoded them, with no hand-off between stages */
};

struct ip_pipeline;

/* Fills config with defaults: default chain, threads executor, automatic sizes. */
void ip_pipeline_config_default(struct ip_pipeline_config *config);

/* Resolves automatic sizes (jobs, io_threads, writers, queue, mem) in place. */
void ip_pipeline_config_resolve(struct ip_pipeline_config *config);

/* Creates the pipeline: the pixel arena and, for procs, the worker
 * processes. Call it before the process starts other threads when the
 * executor is procs. Returns 0, or IP_E* (e.g. no shared memory). */
int ip_pipeline_create(struct ip_pipeline **out, const struct ip_pipeline_config *config,
                       struct ip_error *err);

/* Runs every task of source; a pipeline runs once. Returns 0 when the run completed (individual
 * files may have failed: see stats and on_result), IP_EINTR when cancelled. */
int ip_pipeline_run(struct ip_pipeline *p, struct ip_source *source, struct ip_stats *stats,
                    struct ip_error *err);

/* Asks a running pipeline to stop: no new files are started, outputs not yet
 * renamed into place are discarded. Thread-safe; not async-signal-safe. */
void ip_pipeline_cancel(struct ip_pipeline *p);

/* Reaps workers, releases the arena. */
void ip_pipeline_destroy(struct ip_pipeline *p);

/* Peak resident set size of this process image in KiB (VmHWM; not what
 * the process held before it exec'd, which getrusage's ru_maxrss keeps). */
long ip_peak_rss_kb(void);

#ifdef __cplusplus
}
#endif
#endif
