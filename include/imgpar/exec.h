/* Executors: where filter jobs run.
 *
 * A job is one band of output rows of one image (a whole image is one band).
 * Three executors implement the same small ops struct:
 *   serial  - in the calling thread (the reference),
 *   threads - a pool of pthreads,
 *   procs   - worker processes forked at start-up that reach the pixels
 *             through POSIX shared memory; only job descriptors travel
 *             over their sockets.
 * Every executor gives byte-identical output: kernels are integer-exact
 * and each band is computed the same way wherever it runs. */
#ifndef IMGPAR_EXEC_H
#define IMGPAR_EXEC_H

#include <stdint.h>
#include "imgpar/error.h"
#include "imgpar/filter.h"
#include "imgpar/image.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ip_exec_kind {
    IP_EXEC_SERIAL = 0,
    IP_EXEC_THREADS,
    IP_EXEC_PROCS,
};

enum ip_job_kind {
    IP_JOB_BAND = 0,  /* compute rows [y0,y1) of dst from src */
    IP_JOB_END,       /* sentinel: echoed back by wait() without running */
};

struct ip_job {
    enum ip_job_kind kind;
    void *tag;                 /* caller's, returned unchanged */
    struct ip_image src, dst;  /* for procs both must lie in the executor's shared arena */
    uint32_t y0, y1;
    uint32_t test_flags;       /* IP_JOB_TEST_*: fault injection for tests */
    /* Filled on completion: */
    int status;                /* 0 or IP_E* */
    uint32_t attempts;         /* runs it took (procs: 2 when a worker died once) */
    uint64_t busy_ns;          /* time the kernel ran */
};

#define IP_JOB_TEST_STALL 1u   /* worker sleeps (up to 60 s) before its first attempt */
#define IP_JOB_TEST_CRASH 2u   /* worker aborts on every attempt */

struct ip_exec_config {
    int workers;                      /* threads or processes; >= 1 */
    const struct ip_chain *chain;     /* copied at init */
    const char *stall_pidfile;        /* tests: where a stalling worker writes its pid */
};

struct ip_exec;

struct ip_exec_ops {
    const char *name;
    /* Creates workers. procs must be initialised before the process has
     * other threads, and after every shared mapping its workers use (they
     * inherit the mappings across fork). */
    int (*init)(struct ip_exec **ex, const struct ip_exec_config *cfg, struct ip_error *err);
    /* Queues a job; blocks while every worker is busy (backpressure). */
    int (*submit)(struct ip_exec *ex, const struct ip_job *job);
    /* Blocks until a job completes and copies it to *done. Returns 0, or
     * IP_EINTR once ip_exec cancel was requested and nothing is left. */
    int (*wait)(struct ip_exec *ex, struct ip_job *done);
    /* Wakes blocked submit/wait calls; jobs already running finish. Thread-safe. */
    void (*cancel)(struct ip_exec *ex);
    /* Stops and reaps every worker; frees ex. */
    void (*fini)(struct ip_exec *ex);
    /* Peak RSS (KiB) seen in worker processes; NULL for in-process executors. */
    long (*worker_peak_rss_kb)(struct ip_exec *ex);
    /* Runs one band job for the calling thread and returns once it is done,
     * with its status, attempts and busy_ns filled in; IP_EINTR when
     * cancelled first. Thread-safe; its jobs never reach wait(). NULL where
     * the executor has none (then use submit and wait). */
    int (*run)(struct ip_exec *ex, struct ip_job *job);
};

const struct ip_exec_ops *ip_exec_ops_get(enum ip_exec_kind kind);
const char *ip_exec_name(enum ip_exec_kind kind);

#ifdef __cplusplus
}
#endif
#endif
