/* Bounded blocking queue and counting semaphore.
 *
 * DESIGN: plain mutex + two condition variables (zstd's POOL job queue).
 * A full queue blocks its producers: that is the pipeline's backpressure.
 * Shutdown is by close() (consumers drain, then see the end) or cancel()
 * (everyone returns IP_EINTR at once); threads are never killed. */
#include <stdlib.h>

#include "internal.h"

int ip__queue_init(struct ip__queue *q, size_t capacity)
{
    q->items = calloc(capacity ? capacity : 1, sizeof *q->items);
    if (!q->items)
        return IP_ENOMEM;
    q->capacity = capacity ? capacity : 1;
    q->head = q->count = 0;
    q->closed = q->cancelled = 0;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return 0;
}

void ip__queue_destroy(struct ip__queue *q)
{
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    q->items = NULL;
}

int ip__queue_push(struct ip__queue *q, void *item, uint64_t *wait_ns)
{
    uint64_t t0 = 0;
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (q->count == q->capacity && !q->cancelled && wait_ns)
        t0 = ip__now_ns();
    while (q->count == q->capacity && !q->cancelled)
        pthread_cond_wait(&q->not_full, &q->lock);
    if (t0)
        *wait_ns += ip__now_ns() - t0;
    if (q->cancelled) {
        rc = IP_EINTR;
    } else {
        q->items[(q->head + q->count) % q->capacity] = item;
        q->count++;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int ip__queue_pop(struct ip__queue *q, void **item, uint64_t *wait_ns)
{
    uint64_t t0 = 0;
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (q->count == 0 && !q->closed && !q->cancelled && wait_ns)
        t0 = ip__now_ns();
    while (q->count == 0 && !q->closed && !q->cancelled)
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (t0)
        *wait_ns += ip__now_ns() - t0;
    if (q->cancelled) {
        rc = IP_EINTR;
    } else if (q->count == 0) {
        rc = 1;
    } else {
        *item = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void ip__queue_close(struct ip__queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

void ip__queue_cancel(struct ip__queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->cancelled = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

int ip__sem_init(struct ip__sem *s, long value)
{
    s->value = value;
    s->cancelled = 0;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    return 0;
}

void ip__sem_destroy(struct ip__sem *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

int ip__sem_acquire(struct ip__sem *s, uint64_t *wait_ns)
{
    uint64_t t0 = 0;
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    if (s->value <= 0 && !s->cancelled && wait_ns)
        t0 = ip__now_ns();
    while (s->value <= 0 && !s->cancelled)
        pthread_cond_wait(&s->cond, &s->lock);
    if (t0)
        *wait_ns += ip__now_ns() - t0;
    if (s->cancelled)
        rc = IP_EINTR;
    else
        s->value--;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ip__sem_try_acquire(struct ip__sem *s)
{
    int rc = -1;

    pthread_mutex_lock(&s->lock);
    if (s->value > 0 && !s->cancelled) {
        s->value--;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void ip__sem_release(struct ip__sem *s)
{
    pthread_mutex_lock(&s->lock);
    s->value++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void ip__sem_cancel(struct ip__sem *s)
{
    pthread_mutex_lock(&s->lock);
    s->cancelled = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}
