/* Writer stage: encode, write to a temporary, rename into place.
 *
 * DESIGN: --writers threads pop filtered images from the write queue,
 * encode them (holding a CPU token), give the arena block back at once,
 * and write the bytes with one write() to an unnamed O_TMPFILE in the
 * output directory, which gets a name only when complete: linked straight
 * under the final path when that does not exist yet, else linked under a
 * unique hidden name and renamed over it. A crash, a kill -9 or Ctrl-C never
 * leaves a half-written output, and a new output never a temporary (an
 * existing one is replaced atomically; a kill -9 in the microseconds
 * between that link and the rename would leave the hidden name). Where
 * O_TMPFILE is not supported a named temporary created with O_EXCL is used
 * and removed on any failure (a kill -9 while it is written leaves it).
 * The order in which outputs finish does not matter: each has its own
 * path. Writers exit when the queue is closed and drained, or cancelled. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec_internal.h"
#include "pipeline_internal.h"

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Directory part of path into dir (at least "."). */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

static void temp_name(const char *out_path, char *tmp, size_t size)
{
    char dir[4096];
    const char *base = strrchr(out_path, '/');
    uint64_t rnd = 0;

    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = ip__now_ns() ^ (uint64_t)getpid();
    dir_of(out_path, dir, sizeof dir);
    base = base ? base + 1 : out_path;
    snprintf(tmp, size, "%s/.%.200s.imgpar-%ld-%016llx.tmp", dir, base, (long)getpid(),
             (unsigned long long)rnd);
}

int ip__write_file_atomic(const char *out_path, const uint8_t *data, size_t len, int do_fsync,
                          const atomic_int *cancelled, struct ip_error *err)
{
    char dir[4096], tmp[4400], proc[64];
    int fd, named = 0, published = 0, e;

    dir_of(out_path, dir, sizeof dir);
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT && errno != EINVAL)
            return ip_error_set(err, IP_EIO, "cannot create output in %s: %s", dir, strerror(errno));
        /* No O_TMPFILE here: a named temporary, removed on every failure path. */
        temp_name(out_path, tmp, sizeof tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0)
            return ip_error_set(err, IP_EIO, "cannot create %s: %s", tmp, strerror(errno));
        named = 1;
    }
    if (write_all(fd, data, len) != 0 || (do_fsync && fsync(fd) != 0)) {
        e = errno;
        goto fail_fd;
    }
    if (cancelled && atomic_load(cancelled)) {
        e = EINTR;
        goto fail_fd;
    }
    if (!named) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        /* A new output is linked straight under its final name, so the file
         * never has any other name: a kill at any moment leaves nothing.
         * Only over an existing file does it take a hidden name first, for
         * the rename that replaces it atomically. */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, out_path, AT_SYMLINK_FOLLOW) == 0) {
            published = 1;
        } else if (errno != EEXIST) {
            e = errno;
            goto fail_fd;
        } else {
            temp_name(out_path, tmp, sizeof tmp);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) {
                e = errno;
                goto fail_fd;
            }
            named = 1;
        }
    }
    if (close(fd) != 0) {
        e = errno;
        fd = -1;
        if (published)
            unlink(out_path);
        goto fail_fd;
    }
    fd = -1;
    if (!published && rename(tmp, out_path) != 0) {
        e = errno;
        goto fail_fd;
    }
    if (do_fsync) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;

fail_fd:
    if (fd >= 0)
        close(fd);
    if (named)
        unlink(tmp);
    if (e == EINTR)
        return ip_error_set(err, IP_EINTR, "interrupted");
    if (e == ENOSPC || e == EDQUOT || e == EFBIG)
        return ip_error_set(err, IP_ENOSPC, "cannot write %s: %s", out_path, strerror(e));
    return ip_error_set(err, IP_EIO, "cannot write %s: %s", out_path, strerror(e));
}

static enum ip_format output_format(const struct ip__item *item)
{
    if (item->out_format != IP_FORMAT_UNKNOWN)
        return item->out_format;
    return item->in_format == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
}

/* A huge PNG or JPEG is encoded by a team: the writer and up to jobs-1
 * helper threads take strips from a shared counter, each holding a CPU
 * token per strip, so one image can keep every core busy. The strip layout
 * depends only on the image, so the bytes are the same whoever encodes them. */
struct strip_team {
    struct ip_pipeline *p;
    const struct ip_image *img;
    enum ip_format fmt;
    uint32_t n;
    atomic_uint next;
    struct ip_buf *bufs;
    uint32_t *adlers;
    size_t *lens;
    pthread_mutex_t lock;
    uint32_t done;            /* strips encoded */
    int rc;                   /* first failure */
    struct ip_error err;
    uint64_t helper_busy_ns;  /* encode time of the helper threads */
};

/* Encodes strips until none is left. A helper takes a CPU token before it
 * claims a strip; the writer already holds one. */
static void team_work(struct strip_team *t, int holds_token)
{
    for (;;) {
        struct ip_error err;
        uint64_t t0;
        unsigned k;
        int rc;

        if (atomic_load(&t->next) >= t->n)
            break;
        if (!holds_token && ip__sem_acquire(&t->p->cpu, NULL) != 0)
            break;  /* cancelled: the writer sees the missing strips as an error */
        k = atomic_fetch_add(&t->next, 1);
        if (k >= t->n) {
            if (!holds_token)
                ip__sem_release(&t->p->cpu);
            break;
        }
        t0 = ip__now_ns();
        ip_error_clear(&err);
        if (t->fmt == IP_FORMAT_PNG)
            rc = ip__png_strip_encode(t->img, t->p->cfg.encode.png_level, k, &t->bufs[k], &t->adlers[k],
                                      &t->lens[k], &err);
        else
            rc = ip__jpeg_strip_encode(t->img, t->p->cfg.encode.jpeg_quality, k, &t->bufs[k], &err);
        t0 = ip__now_ns() - t0;
        if (!holds_token)
            ip__sem_release(&t->p->cpu);
        pthread_mutex_lock(&t->lock);
        if (!holds_token)
            t->helper_busy_ns += t0;  /* the writer's own time is counted by write_one */
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

/* Encodes img (a PNG or JPEG with strips) with a team; the caller holds one CPU token. */
static int encode_team(struct ip_pipeline *p, struct ip__item *item, const struct ip_image *img,
                       enum ip_format fmt, uint32_t n, struct ip_buf *enc)
{
    struct strip_team t;
    pthread_t helpers[64];
    int nh = 0, want = p->cfg.jobs - 1;

    memset(&t, 0, sizeof t);
    t.p = p;
    t.img = img;
    t.fmt = fmt;
    t.n = n;
    atomic_init(&t.next, 0);
    t.bufs = calloc(n, sizeof *t.bufs);
    t.adlers = calloc(n, sizeof *t.adlers);
    t.lens = calloc(n, sizeof *t.lens);
    pthread_mutex_init(&t.lock, NULL);
    if (!t.bufs || !t.adlers || !t.lens) {
        t.rc = ip_error_set(&item->err, IP_ENOMEM, "out of memory for PNG strips");
        goto out;
    }
    if (want > (int)n - 1)
        want = (int)n - 1;
    if (want > 64)
        want = 64;
    for (; nh < want; nh++)
        if (pthread_create(&helpers[nh], NULL, team_main, &t) != 0)
            break;
    team_work(&t, 1);
    /* Lend our token while the helpers finish, so none waits on it forever. */
    ip__sem_release(&p->cpu);
    for (int i = 0; i < nh; i++)
        pthread_join(helpers[i], NULL);
    if (ip__sem_acquire(&p->cpu, NULL) != 0 && !t.rc)
        t.rc = ip_error_set(&t.err, IP_EINTR, "interrupted");
    if (!t.rc && t.done != n)
        t.rc = ip_error_set(&t.err, IP_EINTR, "interrupted");
    ip__stage_add(p, item, IP_STAGE_ENCODE, t.helper_busy_ns);
    if (t.rc)
        item->err = t.err;
    else if (fmt == IP_FORMAT_PNG)
        t.rc = ip__png_strips_join(img, p->cfg.encode.png_level, t.bufs, t.adlers, t.lens, n, enc,
                                   &item->err);
    else
        t.rc = ip__jpeg_strips_join(img, t.bufs, n, enc, &item->err);
out:
    for (uint32_t k = 0; t.bufs && k < n; k++)
        ip_buf_free(&t.bufs[k]);
    free(t.bufs);
    free(t.adlers);
    free(t.lens);
    pthread_mutex_destroy(&t.lock);
    return t.rc;
}

static int write_one(struct ip_pipeline *p, struct ip__item *item, struct ip_buf *enc)
{
    const struct ip_image *img = p->cfg.no_filter ? &item->src : &item->dst;
    uint64_t t0;
    int rc;

    if (ip__sem_acquire(&p->cpu, NULL) != 0)
        return ip_error_set(&item->err, IP_EINTR, "interrupted");
    t0 = ip__now_ns();
    enc->len = 0;
    enum ip_format fmt = output_format(item);
    uint32_t strips = fmt == IP_FORMAT_PNG ? ip__png_strip_count(img) : ip__jpeg_strip_count(img);
    if (strips > 1 && p->cfg.jobs > 1)
        rc = encode_team(p, item, img, fmt, strips, enc);
    else
        rc = ip_encode(img, output_format(item), &p->cfg.encode, enc, &item->err);
    ip__stage_add(p, item, IP_STAGE_ENCODE, ip__now_ns() - t0);
    ip__sem_release(&p->cpu);
    ip__arena_free(p->arena, item->block);
    item->block = NULL;
    if (rc)
        return rc;
    if (atomic_load(&p->cancelled))
        return ip_error_set(&item->err, IP_EINTR, "interrupted");
    t0 = ip__now_ns();
    rc = ip__write_file_atomic(item->out_path, enc->data, enc->len, p->cfg.fsync, &p->cancelled,
                               &item->err);
    ip__stage_add(p, item, IP_STAGE_WRITE, ip__now_ns() - t0);
    if (rc == 0)
        item->bytes_out = enc->len;
    return rc;
}

void *ip__writer_main(void *arg)
{
    struct ip_pipeline *p = arg;
    struct ip_buf enc = {0};
    void *ptr;

    for (;;) {
        struct ip__item *item;
        struct ip_error warning;
        uint64_t wait_ns = 0;
        int rc = ip__queue_pop(&p->write_q, &ptr, &wait_ns);

        ip__stage_add(p, NULL, IP_STAGE_WAIT_WRITE, wait_ns);
        if (rc != 0)
            break;
        item = ptr;
        if (item->err.code) {
            ip__item_finish(p, item, IP_RESULT_FAILED);
            continue;
        }
        /* The encoder clears item->err: keep a decoder's warning (code 0,
         * e.g. a truncated image accepted under allow_truncated). */
        warning = item->err;
        rc = write_one(p, item, &enc);
        if (rc == 0)
            item->err = warning;
        ip__item_finish(p, item, rc ? IP_RESULT_FAILED : IP_RESULT_OK);
    }
    ip_buf_free(&enc);
    return NULL;
}
