/* Executor registry and the completed-job list they share. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const struct ip_exec_ops *ip_exec_ops_get(enum ip_exec_kind kind)
{
    switch (kind) {
    case IP_EXEC_SERIAL: return &ip__exec_serial_ops;
    case IP_EXEC_THREADS: return &ip__exec_threads_ops;
    case IP_EXEC_PROCS: return &ip__exec_procs_ops;
    }
    return NULL;
}

const char *ip_exec_name(enum ip_exec_kind kind)
{
    const struct ip_exec_ops *ops = ip_exec_ops_get(kind);
    return ops ? ops->name : "unknown";
}

void ip__job_run(const struct ip_chain *chain, struct ip_job *job, struct ip_scratch *scratch)
{
    uint64_t t0 = ip__now_ns();
    job->status = ip_chain_run_rows(chain, &job->src, &job->dst, job->y0, job->y1, scratch);
    job->busy_ns = ip__now_ns() - t0;
    job->attempts++;
}

int ip__donelist_init(struct ip__donelist *d)
{
    memset(d, 0, sizeof *d);
    d->cap = 16;
    d->jobs = calloc(d->cap, sizeof *d->jobs);
    if (!d->jobs)
        return IP_ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    return 0;
}

void ip__donelist_destroy(struct ip__donelist *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d->jobs);
    d->jobs = NULL;
}

int ip__donelist_post(struct ip__donelist *d, const struct ip_job *job)
{
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    if (d->count == d->cap) {
        size_t ncap = d->cap * 2;
        struct ip_job *n = malloc(ncap * sizeof *n);
        if (!n) {
            rc = IP_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < d->count; i++)
            n[i] = d->jobs[(d->head + i) % d->cap];
        free(d->jobs);
        d->jobs = n;
        d->cap = ncap;
        d->head = 0;
    }
    d->jobs[(d->head + d->count) % d->cap] = *job;
    d->count++;
    pthread_cond_signal(&d->cond);
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int ip__donelist_wait(struct ip__donelist *d, struct ip_job *job)
{
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    while (d->count == 0 && !d->cancelled)
        pthread_cond_wait(&d->cond, &d->lock);
    if (d->cancelled) {
        rc = IP_EINTR;
    } else {
        *job = d->jobs[d->head];
        d->head = (d->head + 1) % d->cap;
        d->count--;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void ip__donelist_cancel(struct ip__donelist *d)
{
    pthread_mutex_lock(&d->lock);
    d->cancelled = 1;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}
