/* Strip teams: one huge image's strips worked on by several threads.
 *
 * DESIGN: the thread that owns the image (a loader decoding it, a writer
 * encoding it) already holds one CPU token (-j). It starts up to jobs-1
 * helper threads and works too; every thread takes strips from a shared
 * counter, a helper taking a CPU token before each strip, so a team never
 * runs more threads than -j allows and a busy pipeline lends it only the
 * cores that are idle. The strip layout belongs to the codec and depends
 * only on the image, so the result is the same whoever works which strip.
 * While the helpers finish, the owner lends its token, so no helper waits
 * on it forever. Cancellation makes every thread stop before its next strip
 * (the waiting helpers give up their wait); the owner then sees strips
 * missing and reports IP_EINTR. */
#include <stdlib.h>
#include <string.h>

#include "pipeline_internal.h"

#define TEAM_MAX_HELPERS 64

struct team {
    struct ip_pipeline *p;
    uint32_t n;
    ip__strip_fn fn;
    void *ctx;
    atomic_uint next;
    pthread_mutex_t lock;
    uint32_t done;            /* strips worked */
    int rc;                   /* first failure */
    struct ip_error err;
    uint64_t helper_busy_ns;  /* time the helpers spent on strips */
};

static void team_work(struct team *t, int holds_token)
{
    for (;;) {
        struct ip_error err;
        uint64_t t0;
        unsigned k;
        int rc;

        if (atomic_load(&t->next) >= t->n || atomic_load(&t->p->cancelled))
            break;   /* the owner too stops at a cancel: the strips missing say IP_EINTR */
        if (!holds_token && ip__sem_acquire(&t->p->cpu, NULL) != 0)
            break;
        k = atomic_fetch_add(&t->next, 1);
        if (k >= t->n) {
            if (!holds_token)
                ip__sem_release(&t->p->cpu);
            break;
        }
        t0 = ip__now_ns();
        ip_error_clear(&err);
        rc = t->fn(t->ctx, k, &err);
        t0 = ip__now_ns() - t0;
        if (!holds_token)
            ip__sem_release(&t->p->cpu);
        pthread_mutex_lock(&t->lock);
        if (!holds_token)
            t->helper_busy_ns += t0;
        if (rc && !t->rc) {
            t->rc = rc;
            t->err = err;
        }
        t->done++;
        pthread_mutex_unlock(&t->lock);
    }
}

static void *team_main(void *arg)
{
    team_work(arg, 0);
    return NULL;
}

int ip__team_run(struct ip_pipeline *p, struct ip__item *item, enum ip_stage stage, uint32_t n,
                 ip__strip_fn fn, void *ctx, struct ip_error *err)
{
    struct team t;
    pthread_t helpers[TEAM_MAX_HELPERS];
    int nh = 0, want = p->cfg.jobs - 1;

    memset(&t, 0, sizeof t);
    t.p = p;
    t.n = n;
    t.fn = fn;
    t.ctx = ctx;
    atomic_init(&t.next, 0);
    pthread_mutex_init(&t.lock, NULL);
    if (want > (int)n - 1)
        want = (int)n - 1;
    if (want > TEAM_MAX_HELPERS)
        want = TEAM_MAX_HELPERS;
    for (; nh < want; nh++)
        if (pthread_create(&helpers[nh], NULL, team_main, &t) != 0)
            break;
    team_work(&t, 1);
    if (nh > 0) {   /* alone (-j1), the owner keeps its token: nothing else runs meanwhile */
        ip__sem_release(&p->cpu);
        for (int i = 0; i < nh; i++)
            pthread_join(helpers[i], NULL);
        if (ip__sem_acquire(&p->cpu, NULL) != 0 && !t.rc)
            t.rc = ip_error_set(&t.err, IP_EINTR, "interrupted");
    }
    if (!t.rc && t.done != n)
        t.rc = ip_error_set(&t.err, IP_EINTR, "interrupted");
    pthread_mutex_destroy(&t.lock);
    ip__stage_add(p, item, stage, t.helper_busy_ns);
    if (t.rc)
        *err = t.err;
    return t.rc;
}
