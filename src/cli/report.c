/* Reporting: one line per failed file, optional per-file lines, statistics.
 *
 * DESIGN: cli_report_result is the pipeline's on_result callback; the
 * pipeline calls it from its threads but never concurrently. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

void cli_report_init(struct cli_report *r, const struct cli_options *o)
{
    memset(r, 0, sizeof *r);
    r->verbose = o->verbose;
    r->quiet = o->quiet;
}

void cli_report_result(void *ctx, const struct ip_result *r)
{
    struct cli_report *st = ctx;

    if (r->status == IP_RESULT_FAILED) {
        st->failed++;
        if (r->err.code != IP_EINTR)
            fprintf(stderr, "imgpar: %s: %s\n", r->in_path,
                    r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
    } else if (r->status == IP_RESULT_OK) {
        if (r->err.msg[0] && !st->quiet)
            fprintf(stderr, "imgpar: %s: warning: %s\n", r->in_path, r->err.msg);
        if (st->verbose)
            fprintf(stderr, "imgpar: %s -> %s (%ux%u, %llu -> %llu bytes)\n", r->in_path,
                    r->out_path, r->width, r->height, (unsigned long long)r->bytes_in,
                    (unsigned long long)r->bytes_out);
    }
}

void cli_print_stats(FILE *f, const struct ip_stats *s, enum ip_exec_kind exec)
{
    uint64_t n = s->images_ok + s->images_failed;
    double wall = s->wall_s > 0 ? s->wall_s : 1e-9;

    fprintf(f, "imgpar stats: %llu images (%llu failed) in %.3f s: %.2f images/s, %.2f MP/s\n",
            (unsigned long long)n, (unsigned long long)s->images_failed, s->wall_s,
            (double)s->images_ok / wall, s->megapixels / wall);
    fprintf(f, "  setup: -j %d, %s executor with %d worker%s, %d io-threads, %d writers, "
                    "queue %d, mem %llu MiB\n",
            s->jobs, ip_exec_name(exec), s->workers, s->workers == 1 ? "" : "s", s->io_threads,
            s->writers, s->queue, (unsigned long long)(s->mem >> 20));
    fprintf(f, "  busy seconds, summed over threads/processes:");
    for (int i = 0; i < IP_STAGE_COUNT; i++)
        fprintf(f, " %s %.3f", ip_stage_name((enum ip_stage)i), (double)s->busy_ns[i] / 1e9);
    fputc('\n', f);
    fprintf(f, "  peak RSS: imgpar %.1f MiB, largest worker %.1f MiB\n",
            (double)s->peak_rss_kb / 1024.0, (double)s->worker_peak_rss_kb / 1024.0);
}
