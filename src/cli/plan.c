/* Planning INPUT arguments: which inputs, which outputs.
 *
 * DESIGN: INPUTs are expanded (a directory gives its image files by magic
 * bytes, sorted by name, its whole tree with -r: walk.c), each input gets
 * its output name (naming.c), and the whole plan is checked before any work
 * starts: two inputs that would write one output, or an output that is an
 * existing input (same device and inode), refuse the run. Only then is the
 * plan cut down to this run's --shard, so every shard refuses the same
 * plans. Before a run the largest inputs go first (cli_plan_order, unless
 * --in-order): with one image per job, a big image started last would
 * leave every other core idle while it finishes. --dry-run lists the plan
 * in input order. The source hands the tasks to the pipeline one at a time
 * and decides --skip-existing then, so a skip is reported as its turn
 * comes; it creates each output's directory just before handing the task
 * over. Runs in the main thread, then under the pipeline's source lock;
 * owns the task list. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void plan_add(struct cli_plan *pl, const char *in_path, const char *rel)
{
    struct cli_task *t;

    if (pl->count == pl->cap) {
        size_t ncap = pl->cap ? pl->cap * 2 : 64;
        struct cli_task *n = realloc(pl->tasks, ncap * sizeof *n);
        if (!n)
            cli_oom();
        pl->tasks = n;
        pl->cap = ncap;
    }
    t = &pl->tasks[pl->count];
    memset(t, 0, sizeof *t);
    t->in_path = strdup(in_path);
    t->rel = strdup(rel);
    if (!t->in_path || !t->rel)
        cli_oom();
    t->n = pl->count;
    pl->count++;
}

static void walk_add(void *ctx, const char *path, const char *rel)
{
    plan_add(ctx, path, rel);
}

static int cmp_task_out(const void *a, const void *b)
{
    const struct cli_task *x = *(const struct cli_task *const *)a, *y = *(const struct cli_task *const *)b;
    int c = strcmp(x->out_path, y->out_path);
    return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

static int cmp_task_id(const void *a, const void *b)
{
    const struct cli_task *x = *(const struct cli_task *const *)a, *y = *(const struct cli_task *const *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return 0;
}

/* Fills output paths; refuses collisions and outputs that are inputs. */
static int plan_outputs(struct cli_plan *pl, const struct cli_options *o)
{
    struct cli_naming nm;
    struct cli_task **by = malloc((pl->count ? pl->count : 1) * sizeof *by);
    int bad = 0;

    if (!by)
        cli_oom();
    cli_naming_init(&nm, o);
    for (size_t i = 0; i < pl->count; i++) {
        struct cli_task *t = &pl->tasks[i];
        struct stat st;
        const char *why = NULL;

        t->out_format = o->forced_format;
        t->out_path = cli_output_name(&nm, t->in_path, t->rel, t->n, cli_sniff(t->in_path), &why);
        if (!t->out_path) {
            cli_msg(t->in_path, "%s", why);
            bad = 1;
            t->out_path = strdup("");
            if (!t->out_path)
                cli_oom();
        }
        if (stat(t->in_path, &st) == 0) {
            t->dev = st.st_dev;
            t->ino = st.st_ino;
            t->have_id = 1;
            t->size = S_ISREG(st.st_mode) && st.st_size > 0 ? (uint64_t)st.st_size : 0;
        }
        by[i] = t;
    }
    if (bad) {
        free(by);
        return -1;
    }
    qsort(by, pl->count, sizeof *by, cmp_task_out);
    for (size_t i = 1; i < pl->count; i++) {
        if (!strcmp(by[i - 1]->out_path, by[i]->out_path)) {
            cli_msg(NULL, "%s and %s would both write %s", by[i - 1]->in_path, by[i]->in_path,
                    by[i]->out_path);
            bad = 1;
        }
    }
    /* An output that already exists as one of the inputs (same device and inode,
     * so symlinks and hard links count) would destroy that input. */
    {
        size_t nid = 0;
        for (size_t i = 0; i < pl->count; i++)
            if (pl->tasks[i].have_id)
                by[nid++] = &pl->tasks[i];
        qsort(by, nid, sizeof *by, cmp_task_id);
        for (size_t i = 0; i < pl->count; i++) {
            struct stat st;
            struct cli_task key, *kp = &key, **hit;
            if (stat(pl->tasks[i].out_path, &st) != 0)
                continue;
            key.dev = st.st_dev;
            key.ino = st.st_ino;
            hit = bsearch(&kp, by, nid, sizeof *by, cmp_task_id);
            if (hit) {
                cli_msg(pl->tasks[i].in_path, "output %s is the input %s; refusing to overwrite it",
                        pl->tasks[i].out_path, (*hit)->in_path);
                bad = 1;
            }
        }
    }
    free(by);
    return bad ? -1 : 0;
}

static void task_free(struct cli_task *t)
{
    free(t->in_path);
    free(t->out_path);
    free(t->rel);
}

/* Keeps the tasks of this shard, in order. */
static void plan_shard(struct cli_plan *pl, const struct cli_options *o)
{
    size_t kept = 0;

    for (size_t i = 0; i < pl->count; i++) {
        if (cli_in_shard(o, pl->tasks[i].rel))
            pl->tasks[kept++] = pl->tasks[i];
        else
            task_free(&pl->tasks[i]);
    }
    pl->count = kept;
}

static int plan_next(void *ctx, struct ip_task *task)
{
    struct cli_plan *pl = ctx;

    while (pl->next < pl->count) {
        struct cli_task *t = &pl->tasks[pl->next++];

        if (pl->o->skip_existing && cli_up_to_date(t->in_path, t->out_path)) {
            cli_report_skip(pl->report, t->in_path, t->out_path, t->out_format);
            continue;
        }
        if (cli_mkdir_parent(t->out_path, &pl->last_dir) != 0) {
            char why[512];
            snprintf(why, sizeof why, "cannot create the directory of %s: %s", t->out_path,
                     strerror(errno));
            cli_report_fail(pl->report, t->in_path, t->out_path, IP_EIO, why);
            continue;
        }
        task->in_path = t->in_path;
        task->out_path = t->out_path;
        task->out_format = t->out_format;
        return 1;
    }
    return 0;
}

void cli_plan_build(struct cli_plan *pl, const struct cli_options *o)
{
    struct cli_walk w;
    struct stat st;

    memset(pl, 0, sizeof *pl);
    pl->o = o;
    memset(&w, 0, sizeof w);
    w.recursive = o->recursive;
    w.follow_symlinks = o->follow_symlinks;
    w.quiet = o->quiet;
    w.add = walk_add;
    w.ctx = pl;
    if (stat(o->outdir, &st) == 0 && S_ISDIR(st.st_mode)) {
        w.skip_dev = st.st_dev;
        w.skip_ino = st.st_ino;
        w.have_skip = 1;
    }
    for (int i = 0; i < o->n_inputs; i++) {
        if (stat(o->inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            pl->pre_failed += cli_walk_dir(&w, o->inputs[i]);
        } else {
            const char *base = strrchr(o->inputs[i], '/');
            plan_add(pl, o->inputs[i], base ? base + 1 : o->inputs[i]);
        }
    }
    if (plan_outputs(pl, o) != 0) {
        fprintf(stderr, "imgpar: nothing was processed\n");
        exit(EXIT_USAGE);
    }
    /* Only a plan that passed its checks creates OUTDIR (never a dry run). */
    if (!o->dry_run && cli_mkdir_p(o->outdir) != 0) {
        fprintf(stderr, "imgpar: cannot create output directory %s: %s\n", o->outdir, strerror(errno));
        exit(EXIT_USAGE);
    }
    plan_shard(pl, o);
}

void cli_plan_free(struct cli_plan *pl)
{
    for (size_t i = 0; i < pl->count; i++)
        task_free(&pl->tasks[i]);
    free(pl->tasks);
    free(pl->last_dir);
    memset(pl, 0, sizeof *pl);
}

static int cmp_task_size(const void *a, const void *b)
{
    const struct cli_task *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

void cli_plan_order(struct cli_plan *pl)
{
    if (!pl->o->in_order && pl->count > 1)
        qsort(pl->tasks, pl->count, sizeof *pl->tasks, cmp_task_size);
}

void cli_plan_source(struct cli_plan *pl, struct cli_report *report, struct ip_source *source)
{
    pl->report = report;
    source->next = plan_next;
    source->ctx = pl;
    source->total_hint = pl->count;
}

void cli_plan_dry_run(struct cli_plan *pl, FILE *out)
{
    for (size_t i = 0; i < pl->count; i++) {
        const struct cli_task *t = &pl->tasks[i];
        int skip = pl->o->skip_existing && cli_up_to_date(t->in_path, t->out_path);
        fprintf(out, "%s\t%s\t%s\n", skip ? "skip" : "process", t->in_path, t->out_path);
    }
}
