/* The pixel arena (shm.c) keeps the memory it holds within 8 MiB of its
 * peak use: when a block is taken where no memory was held and the total
 * held goes beyond that, free blocks give their pages back. Checked with
 * mincore, for a private arena and a shared one (and where blocks go):
 * - blocks of 10, 10 MiB, the first freed, then 12 MiB (too big for the
 *   hole: taken above, 32 MiB held against a peak of 22): the hole's pages
 *   are gone, the second block's bytes are intact, and a block taken in
 *   the hole again reads as zeros and works;
 * - blocks of 10, 10 MiB, the first freed, then 4 MiB (taken in the hole,
 *   nothing new held): the rest of the hole stays, warm for the next;
 * - near (a loader's previous block): a shared arena puts the block there
 *   when that space is free, also inside a larger free block, and first
 *   fit when it is not; a private arena ignores it;
 * - 4 threads taking and freeing blocks of 1 to 4 MiB at random (waiting
 *   for room) in a 64 MiB arena, each page of a block stamped and checked
 *   before it is freed, with no slack (ip__arena_trim_slack 0: a trim at
 *   almost every hole): the trims never take a block in use (also run
 *   under ThreadSanitizer). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

#define MIB ((size_t)1 << 20)

/* Pages of [p, p + len) that are resident. */
static size_t resident(const void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, count = 0;
    unsigned char *vec = malloc(n);

    if (!vec || mincore((void *)p, n * page, vec) != 0) {
        free(vec);
        return (size_t)-1;
    }
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    free(vec);
    return count;
}

static int all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void *take(struct ip__arena *a, size_t bytes, uint8_t fill)
{
    struct ip_error err;
    void *p = NULL;

    CHECK(ip__arena_alloc(a, bytes, 0, NULL, &p, NULL, &err) == 0 && p);
    if (p)
        memset(p, fill, bytes);
    return p;
}

static void trimmed(int shared)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct ip__arena *a = NULL;
    struct ip_error err;
    uint8_t *x, *y, *z, *again;

    CHECK(ip__arena_create(&a, 64 * MIB, shared, &err) == 0);
    if (!a)
        return;
    x = take(a, 10 * MIB, 1);
    y = take(a, 10 * MIB, 2);
    CHECK(resident(x, 10 * MIB) == 10 * MIB / page);
    ip__arena_free(a, x);
    z = take(a, 12 * MIB, 3);
    CHECK(z == y + 10 * MIB);
    CHECK(resident(x, 10 * MIB) == 0);                      /* the hole went back */
    CHECK(resident(z, 12 * MIB) == 12 * MIB / page);
    CHECK(y && all_bytes(y, 10 * MIB, 2));
    CHECK(ip__arena_peak(a) == 22 * MIB);
    again = NULL;
    CHECK(ip__arena_alloc(a, 10 * MIB, 0, NULL, (void **)&again, NULL, &err) == 0 && again == x);
    if (again) {
        CHECK(all_bytes(again, 10 * MIB, 0));
        memset(again, 4, 10 * MIB);
        CHECK(all_bytes(again, 10 * MIB, 4));
    }
    CHECK(z && all_bytes(z, 12 * MIB, 3) && all_bytes(y, 10 * MIB, 2));
    ip__arena_destroy(a);
}

static void kept(int shared)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct ip__arena *a = NULL;
    struct ip_error err;
    uint8_t *x, *y, *z;

    CHECK(ip__arena_create(&a, 64 * MIB, shared, &err) == 0);
    if (!a)
        return;
    x = take(a, 10 * MIB, 1);
    y = take(a, 10 * MIB, 2);
    ip__arena_free(a, x);
    z = take(a, 4 * MIB, 3);
    CHECK(z == x);
    CHECK(resident(x + 4 * MIB, 6 * MIB) == 6 * MIB / page);   /* the rest of the hole stays */
    CHECK(y && all_bytes(y, 10 * MIB, 2));
    ip__arena_destroy(a);
}

static void *take_near(struct ip__arena *a, size_t bytes, const void *near)
{
    struct ip_error err;
    void *p = NULL;

    CHECK(ip__arena_alloc(a, bytes, 0, near, &p, NULL, &err) == 0 && p);
    return p;
}

static void near(int shared)
{
    struct ip__arena *a = NULL;
    struct ip_error err;
    uint8_t *x, *y, *z, *w, *v;

    CHECK(ip__arena_create(&a, 64 * MIB, shared, &err) == 0);
    if (!a)
        return;
    x = take(a, 4 * MIB, 1);
    y = take(a, 4 * MIB, 2);
    z = take(a, 4 * MIB, 3);
    w = take(a, 4 * MIB, 4);
    ip__arena_free(a, x);
    ip__arena_free(a, z);
    v = take_near(a, 4 * MIB, z);                 /* first fit would be x */
    CHECK(v == (shared ? z : x));
    ip__arena_free(a, v);
    ip__arena_free(a, y);                          /* x, y and z: one free block */
    v = take_near(a, 2 * MIB, y);
    CHECK(v == (shared ? y : x));
    ip__arena_free(a, v);
    v = take_near(a, 12 * MIB, z);                 /* no room from z to w: first fit */
    CHECK(v == x);
    CHECK(w && all_bytes(w, 4 * MIB, 4));
    ip__arena_destroy(a);
}

struct churn {
    struct ip__arena *a;
    unsigned seed;
    int bad;                   /* a stamped page read back wrong */
    int failed;                /* an allocation failed */
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    for (int i = 0; i < 300; i++) {
        size_t bytes = (size_t)(1 + rand_r(&c->seed) % 4) * MIB - (size_t)(rand_r(&c->seed) % 2) * page;
        uint8_t stamp = (uint8_t)(1 + rand_r(&c->seed) % 255);
        struct ip_error err;
        uint8_t *p = NULL;

        if (ip__arena_alloc(c->a, bytes, 1, NULL, (void **)&p, NULL, &err) != 0 || !p) {
            c->failed = 1;
            break;
        }
        for (size_t off = 0; off < bytes; off += page)
            p[off] = stamp;
        p[bytes - 1] = stamp;
        sched_yield();
        for (size_t off = 0; off < bytes; off += page)
            c->bad |= p[off] != stamp;
        c->bad |= p[bytes - 1] != stamp;
        ip__arena_free(c->a, p);
    }
    return NULL;
}

static void churn(int shared)
{
    struct ip__arena *a = NULL;
    struct ip_error err;
    struct churn c[4];
    pthread_t t[4];

    ip__arena_trim_slack = 0;   /* a hole goes back whenever memory held passes the peak */
    CHECK(ip__arena_create(&a, 64 * MIB, shared, &err) == 0);
    if (!a)
        return;
    for (int i = 0; i < 4; i++) {
        c[i] = (struct churn){a, 7u * (unsigned)i + 1u + (unsigned)shared, 0, 0};
        CHECK(pthread_create(&t[i], NULL, churn_main, &c[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(!c[i].bad);
        CHECK(!c[i].failed);
    }
    ip__arena_destroy(a);
    ip__arena_trim_slack = (size_t)8 << 20;
}

int main(int argc, char **argv)
{
    int only_churn = argc > 1 && strcmp(argv[1], "churn") == 0;

    for (int shared = 0; shared < 2; shared++) {
        if (!only_churn) {
            trimmed(shared);
            kept(shared);
            near(shared);
        }
        churn(shared);
    }
    return check_exit("arena_trim");
}
