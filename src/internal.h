/* Internal helpers shared between library files (ip__ prefix). */
#ifndef IMGPAR_INTERNAL_H
#define IMGPAR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imgpar/error.h"

static inline uint64_t ip__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- queue.c: bounded blocking FIFO of pointers ----
 * push blocks while full, pop blocks while empty; both return IP_EINTR
 * once the queue is cancelled. close() lets pop drain what is left and
 * then return 1 (end). */
struct ip__queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **items;        /* ring buffer of capacity slots */
    size_t capacity, head, count;
    int closed;          /* no more pushes; pops drain then see end */
    int cancelled;       /* everything returns IP_EINTR */
};

int ip__queue_init(struct ip__queue *q, size_t capacity);
void ip__queue_destroy(struct ip__queue *q);
/* Adds the time spent blocked to *wait_ns when wait_ns is not NULL. */
int ip__queue_push(struct ip__queue *q, void *item, uint64_t *wait_ns);
/* 0 with *item, 1 at end (closed and empty), IP_EINTR when cancelled. */
int ip__queue_pop(struct ip__queue *q, void **item, uint64_t *wait_ns);
void ip__queue_close(struct ip__queue *q);
void ip__queue_cancel(struct ip__queue *q);

/* ---- queue.c: counting semaphore with cancel ---- */
struct ip__sem {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long value;
    int cancelled;
};
int ip__sem_init(struct ip__sem *s, long value);
void ip__sem_destroy(struct ip__sem *s);
int ip__sem_acquire(struct ip__sem *s, uint64_t *wait_ns);  /* 0 or IP_EINTR */
int ip__sem_try_acquire(struct ip__sem *s);                 /* 0, or -1 when none is free now */
void ip__sem_release(struct ip__sem *s);
void ip__sem_cancel(struct ip__sem *s);

/* ---- shm.c: the pixel arena ----
 * One mapping of `bytes` from which image buffers are carved (first fit,
 * coalescing free list, 64-byte aligned blocks). Shared arenas live in a
 * POSIX shared memory object /imgpar-<pid>-<n>-<random>, created O_EXCL
 * mode 0600 and unlinked right after mapping: forked workers inherit the
 * mapping at the same address, and nothing is left in /dev/shm whatever
 * happens. Private arenas are anonymous memory. Only the creating process
 * allocates; alloc and free are thread-safe. */
struct ip__arena;

int ip__arena_create(struct ip__arena **out, size_t bytes, int shared, struct ip_error *err);
void ip__arena_destroy(struct ip__arena *a);
size_t ip__arena_size(struct ip__arena *a);
/* Unlinks /dev/shm/imgpar-<pid>-* names whose process no longer exists:
 * arenas whose creator was killed between shm_open and shm_unlink. */
void ip__shm_sweep_stale(void);
/* The most bytes allocated at once so far (block-aligned sizes). */
size_t ip__arena_peak(struct ip__arena *a);
/* Allocates bytes; when the arena is full and wait is set, blocks until
 * enough is freed (adding the blocked time to *wait_ns). near: NULL, or
 * where the caller's previous block began; in a shared arena the block is
 * put there when that space is free (a loader's worker process then has
 * its pages mapped already: no page faults), else first fit. Fails with
 * IP_ETOOBIG when bytes can never fit, IP_ENOSPC when shared memory cannot
 * back the block, IP_EINTR when cancelled. */
int ip__arena_alloc(struct ip__arena *a, size_t bytes, int wait, const void *near, void **ptr,
                    uint64_t *wait_ns, struct ip_error *err);
void ip__arena_free(struct ip__arena *a, void *ptr);
/* Gives the pages of [ptr, ptr + len), part of an allocated block whose
 * contents no process needs any more, back to the kernel now (they read as
 * zeros if touched again). In a shared arena the object gets a hole there,
 * and the memory is fallocated again before a block there is next handed
 * out (a full /dev/shm is then an error, not a SIGBUS). */
void ip__arena_release(struct ip__arena *a, void *ptr, size_t len);
/* No more images will start (the input is exhausted): a shared arena gives
 * the pages of its free blocks back now, and those of every block freed
 * from now on as it is freed, so that little is left to tear down at the
 * end. Blocks handed out later still work (fallocated again). Idempotent;
 * nothing for a private arena. */
void ip__arena_drain(struct ip__arena *a);
/* Memory an arena keeps beyond its peak use before free blocks give their
 * pages back (8 MiB; a variable so that tests can lower it). */
extern size_t ip__arena_trim_slack;
void ip__arena_cancel(struct ip__arena *a);

#endif

/* ---- exec.c: completed-job list shared by the executors ----
 * Unbounded FIFO (its length is bounded by the jobs in flight) that
 * workers post to and wait() pops from. */
#include "imgpar/exec.h"

struct ip__donelist {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ip_job *jobs;     /* ring buffer */
    size_t cap, head, count;
    int cancelled;
};

int ip__donelist_init(struct ip__donelist *d);
void ip__donelist_destroy(struct ip__donelist *d);
int ip__donelist_post(struct ip__donelist *d, const struct ip_job *job);
int ip__donelist_wait(struct ip__donelist *d, struct ip_job *job);   /* 0 or IP_EINTR */
void ip__donelist_cancel(struct ip__donelist *d);

/* Runs one band job in the current thread or process, timing it. */
void ip__job_run(const struct ip_chain *chain, struct ip_job *job, struct ip_scratch *scratch);

extern const struct ip_exec_ops ip__exec_serial_ops;
extern const struct ip_exec_ops ip__exec_threads_ops;
extern const struct ip_exec_ops ip__exec_procs_ops;
