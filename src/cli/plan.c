/* Planning: which inputs, which outputs.
 *
 * DESIGN: INPUTs are expanded (a directory gives its image files by magic
 * bytes, sorted by name), each output path is OUTDIR/basename with the
 * extension of the output format, and the whole plan is checked before any
 * work starts: two inputs that would write one output, or an output that
 * is an existing input (same device and inode), refuse the run. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static void plan_add(struct cli_plan *pl, const char *in_path)
{
    if (pl->count == pl->cap) {
        size_t ncap = pl->cap ? pl->cap * 2 : 64;
        struct cli_task *n = realloc(pl->tasks, ncap * sizeof *n);
        if (!n) {
            cli_oom();
        }
        pl->tasks = n;
        pl->cap = ncap;
    }
    memset(&pl->tasks[pl->count], 0, sizeof pl->tasks[pl->count]);
    pl->tasks[pl->count].in_path = strdup(in_path);
    if (!pl->tasks[pl->count].in_path) {
        cli_oom();
    }
    pl->count++;
}

/* Format of a file by its first bytes; IP_FORMAT_UNKNOWN if unreadable. */
static enum ip_format sniff(const char *path)
{
    uint8_t head[64];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;

    if (fd < 0)
        return IP_FORMAT_UNKNOWN;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return IP_FORMAT_UNKNOWN;
    }
    n = read(fd, head, sizeof head);
    close(fd);
    return n > 0 ? ip_format_detect(head, (size_t)n) : IP_FORMAT_UNKNOWN;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the image files of a directory (by magic bytes), sorted by name. */
static int plan_dir(struct cli_plan *pl, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        fprintf(stderr, "imgpar: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                cli_oom();
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            cli_oom();
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            cli_oom();
        }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        if (sniff(path) != IP_FORMAT_UNKNOWN)
            plan_add(pl, path);
        free(path);
        free(names[i]);
    }
    free(names);
    return 0;
}

static int ext_matches(const char *ext, enum ip_format fmt)
{
    if (fmt == IP_FORMAT_PNG)
        return !strcasecmp(ext, "png");
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "jpe") ||
           !strcasecmp(ext, "jfif");
}

/* OUTDIR/basename, with the extension changed when it does not name the output format. */
static char *output_path(const char *outdir, const char *in_path, enum ip_format out_fmt)
{
    const char *base = strrchr(in_path, '/');
    const char *dot;
    size_t stem_len, len;
    const char *ext = "";
    char *out;

    base = base ? base + 1 : in_path;
    dot = strrchr(base, '.');
    stem_len = strlen(base);
    if (out_fmt != IP_FORMAT_UNKNOWN && !(dot && dot != base && ext_matches(dot + 1, out_fmt))) {
        if (dot && dot != base)
            stem_len = (size_t)(dot - base);
        ext = ip_format_ext(out_fmt);
    }
    len = strlen(outdir) + stem_len + strlen(ext) + 3;
    out = malloc(len);
    if (!out) {
        cli_oom();
    }
    snprintf(out, len, "%s%s%.*s%s%s", outdir, outdir[strlen(outdir) - 1] == '/' ? "" : "/",
             (int)stem_len, base, *ext ? "." : "", ext);
    return out;
}

static int cmp_task_out(const void *a, const void *b)
{
    const struct cli_task *x = *(const struct cli_task *const *)a, *y = *(const struct cli_task *const *)b;
    return strcmp(x->out_path, y->out_path);
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
static int plan_outputs(struct cli_plan *pl, const char *outdir, enum ip_format forced)
{
    struct cli_task **by = malloc((pl->count ? pl->count : 1) * sizeof *by);
    int bad = 0;

    if (!by) {
        cli_oom();
    }
    for (size_t i = 0; i < pl->count; i++) {
        struct cli_task *t = &pl->tasks[i];
        struct stat st;
        enum ip_format in_fmt = sniff(t->in_path), out_fmt = forced;

        if (out_fmt == IP_FORMAT_UNKNOWN && in_fmt != IP_FORMAT_UNKNOWN)
            out_fmt = in_fmt == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
        t->out_format = forced;
        t->out_path = output_path(outdir, t->in_path, out_fmt);
        if (stat(t->in_path, &st) == 0) {
            t->dev = st.st_dev;
            t->ino = st.st_ino;
            t->have_id = 1;
        }
        by[i] = t;
    }
    qsort(by, pl->count, sizeof *by, cmp_task_out);
    for (size_t i = 1; i < pl->count; i++) {
        if (!strcmp(by[i - 1]->out_path, by[i]->out_path)) {
            fprintf(stderr, "imgpar: %s and %s would both write %s\n", by[i - 1]->in_path,
                    by[i]->in_path, by[i]->out_path);
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
                fprintf(stderr, "imgpar: %s: output %s is the input %s; refusing to overwrite it\n",
                        pl->tasks[i].in_path, pl->tasks[i].out_path, (*hit)->in_path);
                bad = 1;
            }
        }
    }
    free(by);
    return bad ? -1 : 0;
}

static int mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    struct stat st;

    if (!tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            free(tmp);
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
        free(tmp);
        return -1;
    }
    free(tmp);
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int plan_next(void *ctx, struct ip_task *task)
{
    struct cli_plan *pl = ctx;
    struct cli_task *t;

    if (pl->next >= pl->count)
        return 0;
    t = &pl->tasks[pl->next++];
    task->in_path = t->in_path;
    task->out_path = t->out_path;
    task->out_format = t->out_format;
    return 1;
}

/* ---- running ---- */
void cli_plan_build(struct cli_plan *pl, const struct cli_options *o)
{
    memset(pl, 0, sizeof *pl);
    for (int i = 0; i < o->n_inputs; i++) {
        struct stat st;
        if (stat(o->inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (plan_dir(pl, o->inputs[i]) != 0)
                pl->pre_failed++;
        } else {
            plan_add(pl, o->inputs[i]);
        }
    }
    if (plan_outputs(pl, o->outdir, o->forced_format) != 0) {
        fprintf(stderr, "imgpar: nothing was processed\n");
        exit(EXIT_USAGE);
    }
    /* Only a plan that passed its checks creates OUTDIR. */
    if (mkdir_p(o->outdir) != 0) {
        fprintf(stderr, "imgpar: cannot create output directory %s: %s\n", o->outdir, strerror(errno));
        exit(EXIT_USAGE);
    }
}

void cli_plan_free(struct cli_plan *pl)
{
    for (size_t i = 0; i < pl->count; i++) {
        free(pl->tasks[i].in_path);
        free(pl->tasks[i].out_path);
    }
    free(pl->tasks);
    memset(pl, 0, sizeof *pl);
}

void cli_plan_source(struct cli_plan *pl, struct ip_source *source)
{
    source->next = plan_next;
    source->ctx = pl;
    source->total_hint = pl->count;
}
