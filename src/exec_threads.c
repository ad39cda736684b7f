/* Threads executor: a pool of pthreads.
 *
 * DESIGN: `workers` threads pop band jobs from a bounded ring (2 per
 * worker; submit blocks when it is full), run them with their own
 * scratch, and post them to the done list. Shutdown is a flag plus a
 * broadcast: each thread finishes its current band and returns; fini joins
 * them all. Threads are never cancelled or killed. */
#include <stdlib.h>

#include "internal.h"

struct ip_exec {
    struct ip_chain chain;
    int nthreads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t has_job, has_room;
    struct ip_job *ring;     /* pending jobs */
    size_t cap, head, count;
    int stopping;            /* fini: threads exit once the ring is empty */
    int cancelled;           /* cancel: threads exit after their current job */
    struct ip__donelist done;
};

static void *worker_main(void *arg)
{
    struct ip_exec *ex = arg;
    struct ip_scratch *scratch = ip_scratch_new();

    for (;;) {
        struct ip_job job;

        pthread_mutex_lock(&ex->lock);
        while (ex->count == 0 && !ex->stopping && !ex->cancelled)
            pthread_cond_wait(&ex->has_job, &ex->lock);
        if (ex->cancelled || ex->count == 0) {
            pthread_mutex_unlock(&ex->lock);
            break;
        }
        job = ex->ring[ex->head];
        ex->head = (ex->head + 1) % ex->cap;
        ex->count--;
        pthread_cond_signal(&ex->has_room);
        pthread_mutex_unlock(&ex->lock);

        if (scratch)
            ip__job_run(&ex->chain, &job, scratch);
        else
            job.status = IP_ENOMEM;
        ip__donelist_post(&ex->done, &job);
    }
    ip_scratch_free(scratch);
    return NULL;
}

static void threads_fini(struct ip_exec *ex);

static int threads_init(struct ip_exec **out, const struct ip_exec_config *cfg, struct ip_error *err)
{
    struct ip_exec *ex = calloc(1, sizeof *ex);

    *out = NULL;
    if (!ex)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    ex->chain = *cfg->chain;
    ex->cap = (size_t)cfg->workers * 2;
    ex->ring = calloc(ex->cap, sizeof *ex->ring);
    ex->threads = calloc((size_t)cfg->workers, sizeof *ex->threads);
    if (!ex->ring || !ex->threads || ip__donelist_init(&ex->done) != 0) {
        free(ex->ring);
        free(ex->threads);
        free(ex);
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->has_job, NULL);
    pthread_cond_init(&ex->has_room, NULL);
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&ex->threads[i], NULL, worker_main, ex) != 0) {
            threads_fini(ex);
            return ip_error_set(err, IP_ENOMEM, "cannot start filter thread %d", i);
        }
        ex->nthreads++;
    }
    *out = ex;
    return 0;
}

static int threads_submit(struct ip_exec *ex, const struct ip_job *job)
{
    int rc = 0;

    if (job->kind == IP_JOB_END)
        return ip__donelist_post(&ex->done, job);
    pthread_mutex_lock(&ex->lock);
    while (ex->count == ex->cap && !ex->cancelled)
        pthread_cond_wait(&ex->has_room, &ex->lock);
    if (ex->cancelled) {
        rc = IP_EINTR;
    } else {
        ex->ring[(ex->head + ex->count) % ex->cap] = *job;
        ex->count++;
        pthread_cond_signal(&ex->has_job);
    }
    pthread_mutex_unlock(&ex->lock);
    return rc;
}

static int threads_wait(struct ip_exec *ex, struct ip_job *done)
{
    return ip__donelist_wait(&ex->done, done);
}

static void threads_cancel(struct ip_exec *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->cancelled = 1;
    pthread_cond_broadcast(&ex->has_job);
    pthread_cond_broadcast(&ex->has_room);
    pthread_mutex_unlock(&ex->lock);
    ip__donelist_cancel(&ex->done);
}

static void threads_fini(struct ip_exec *ex)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stopping = 1;
    pthread_cond_broadcast(&ex->has_job);
    pthread_mutex_unlock(&ex->lock);
    for (int i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    ip__donelist_destroy(&ex->done);
    pthread_cond_destroy(&ex->has_room);
    pthread_cond_destroy(&ex->has_job);
    pthread_mutex_destroy(&ex->lock);
    free(ex->threads);
    free(ex->ring);
    free(ex);
}

const struct ip_exec_ops ip__exec_threads_ops = {
    .name = "threads",
    .init = threads_init,
    .submit = threads_submit,
    .wait = threads_wait,
    .cancel = threads_cancel,
    .fini = threads_fini,
};
