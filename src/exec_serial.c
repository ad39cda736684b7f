/* Serial executor: the reference.
 *
 * DESIGN: submit() runs the band in the calling thread, to completion,
 * and posts it to the done list; wait() pops it. No threads, no copies:
 * what every other executor must match byte for byte. */
#include <stdlib.h>

#include "internal.h"

struct ip_exec {
    struct ip_chain chain;
    struct ip_scratch *scratch;
    struct ip__donelist done;
};

static int serial_init(struct ip_exec **out, const struct ip_exec_config *cfg, struct ip_error *err)
{
    struct ip_exec *ex = calloc(1, sizeof *ex);

    if (!ex)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    ex->chain = *cfg->chain;
    ex->scratch = ip_scratch_new();
    if (!ex->scratch || ip__donelist_init(&ex->done) != 0) {
        ip_scratch_free(ex->scratch);
        free(ex);
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    }
    *out = ex;
    return 0;
}

static int serial_submit(struct ip_exec *ex, const struct ip_job *job)
{
    struct ip_job j = *job;

    if (j.kind == IP_JOB_BAND)
        ip__job_run(&ex->chain, &j, ex->scratch);
    return ip__donelist_post(&ex->done, &j);
}

static int serial_wait(struct ip_exec *ex, struct ip_job *done)
{
    return ip__donelist_wait(&ex->done, done);
}

static void serial_cancel(struct ip_exec *ex)
{
    ip__donelist_cancel(&ex->done);
}

static void serial_fini(struct ip_exec *ex)
{
    if (!ex)
        return;
    ip__donelist_destroy(&ex->done);
    ip_scratch_free(ex->scratch);
    free(ex);
}

const struct ip_exec_ops ip__exec_serial_ops = {
    .name = "serial",
    .init = serial_init,
    .submit = serial_submit,
    .wait = serial_wait,
    .cancel = serial_cancel,
    .fini = serial_fini,
};
