/* A whole pipeline from a program: every input given on the command line,
 * the default filters, outputs in OUTDIR, a callback per file.
 *
 *   cc batch.c $(pkg-config --cflags --libs imgpar) -o batch
 *   ./batch OUTDIR IN...
 *
 * The pipeline pulls tasks from a source one at a time and calls on_result
 * once per task (never concurrently), which here prints one line per file
 * and a running count: enough to draw a progress bar. Exits 1 if a file
 * failed, 3 if the pipeline could not start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <imgpar/pipeline.h>

struct inputs {
    char **paths;
    int count, next;
    const char *outdir;
    char out[4096];          /* the current output path (the pipeline copies it) */
};

static int next_task(void *ctx, struct ip_task *task)
{
    struct inputs *in = ctx;
    const char *base;

    if (in->next >= in->count)
        return 0;
    task->in_path = in->paths[in->next++];
    base = strrchr(task->in_path, '/');
    snprintf(in->out, sizeof in->out, "%s/%s", in->outdir, base ? base + 1 : task->in_path);
    task->out_path = in->out;
    task->out_format = IP_FORMAT_UNKNOWN;   /* JPEG stays JPEG, everything else PNG */
    return 1;
}

struct progress {
    unsigned long done, total, failed;
};

static void on_result(void *ctx, const struct ip_result *r)
{
    struct progress *p = ctx;

    p->done++;
    if (r->status == IP_RESULT_OK) {
        printf("[%lu/%lu] ok %s -> %s %ux%u %llu bytes\n", p->done, p->total, r->in_path, r->out_path,
               r->width, r->height, (unsigned long long)r->bytes_out);
    } else {
        p->failed++;
        printf("[%lu/%lu] failed %s: %s\n", p->done, p->total, r->in_path,
               r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
    }
}

int main(int argc, char **argv)
{
    struct inputs in = {0};
    struct progress prog = {0};
    struct ip_pipeline_config cfg;
    struct ip_pipeline *p;
    struct ip_source source;
    struct ip_stats stats;
    struct ip_error err = {0};

    if (argc < 3) {
        fprintf(stderr, "usage: %s OUTDIR IN...\n", argv[0]);
        return 2;
    }
    in.outdir = argv[1];
    in.paths = argv + 2;
    in.count = argc - 2;
    prog.total = (unsigned long)in.count;

    ip_pipeline_config_default(&cfg);   /* gray + blur 2, threads, sizes from the CPU count */
    cfg.on_result = on_result;
    cfg.cb_ctx = &prog;
    if (ip_pipeline_create(&p, &cfg, &err)) {
        fprintf(stderr, "cannot start: %s\n", err.msg);
        return 3;
    }
    source.next = next_task;
    source.ctx = &in;
    source.total_hint = (uint64_t)in.count;
    if (ip_pipeline_run(p, &source, &stats, &err)) {
        fprintf(stderr, "run failed: %s\n", err.msg);
        ip_pipeline_destroy(p);
        return 3;
    }
    ip_pipeline_destroy(p);
    printf("%llu ok, %llu failed, %.3f s\n", (unsigned long long)stats.images_ok,
           (unsigned long long)stats.images_failed, stats.wall_s);
    return prog.failed ? 1 : 0;
}
