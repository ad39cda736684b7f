/* A strip runner for the conformance tests and benchmarks: strips 0..n-1
 * taken from a shared counter by `threads` threads (the caller's included),
 * as the pipeline's team does. Header-only, like testutil.h. */
#ifndef IMGPAR_TEST_STRIP_POOL_H
#define IMGPAR_TEST_STRIP_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "codec_internal.h"

struct test_pool {
    uint32_t n;
    ip__strip_fn fn;
    void *ctx;
    atomic_uint next;
};

static void *test_pool_main(void *arg)
{
    struct test_pool *p = arg;
    struct ip_error err;
    unsigned k;

    while ((k = atomic_fetch_add(&p->next, 1)) < p->n)
        p->fn(p->ctx, k, &err);
    return NULL;
}

/* Exits 99 when a thread cannot be started (a broken test, not a pass). */
static inline void test_pool_run(uint32_t n, ip__strip_fn fn, void *ctx, int threads)
{
    struct test_pool p = {n, fn, ctx, 0};
    pthread_t t[63];
    int nt = threads - 1 < 63 ? threads - 1 : 63;

    for (int i = 0; i < nt; i++)
        if (pthread_create(&t[i], NULL, test_pool_main, &p) != 0)
            exit(99);
    test_pool_main(&p);
    for (int i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
}

#endif
