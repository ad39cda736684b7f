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
 * path. Writers exit when the queue is closed and drained, or cancelled.
 * A loader that keeps an image to the end calls ip__writer_finish itself. */
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

/* The strip runner lent to the encoder (ip__encode): a huge PNG or JPEG is
 * encoded by a strip team (team.c), at -j1 too, where the writer works the
 * strips alone but stops at a cancel between two of them (a 20000x20000 PNG
 * at level 6 is 19 s of encoding). The layout depends only on the image, so
 * the bytes are the same whoever encodes which strip. */
struct encode_ctx {
    struct ip_pipeline *p;
    struct ip__item *item;
};

static int run_strips(void *ctx, uint32_t n, ip__strip_fn fn, void *fn_ctx, struct ip_error *err)
{
    struct encode_ctx *e = ctx;

    /* The writer's own time is counted by write_one. */
    return ip__team_run(e->p, e->item, IP_STAGE_ENCODE, n, fn, fn_ctx, err);
}

static int write_one(struct ip_pipeline *p, struct ip__item *item, struct ip_buf *enc)
{
    const struct ip_image *img = p->cfg.no_filter ? &item->src : &item->dst;
    /* Once filtered, the decoded pixels (before dst in the block) are dead:
     * the PNG encoder's workspace. */
    uint8_t *ws = !p->cfg.no_filter && item->block ? item->block : NULL;
    size_t ws_len = ws && img->pixels > ws ? (size_t)(img->pixels - ws) : 0;
    struct encode_ctx ectx = {p, item};
    struct ip__strip_runner runner = {run_strips, NULL, &ectx, NULL, 0};
    enum ip_format fmt = output_format(item);
    uint64_t t0;
    int rc;

    if (ip__sem_acquire(&p->cpu, NULL) != 0)
        return ip_error_set(&item->err, IP_EINTR, "interrupted");
    t0 = ip__now_ns();
    enc->len = 0;
    /* Only a PNG encoded whole uses the workspace. Elsewhere the dead part
     * of a huge image's block (the size from which strips are used, 64
     * MiB) goes back to the kernel now, also in /dev/shm (the workers are
     * done with it), so that the decoded pixels are not resident while the
     * output is encoded and joined. Smaller ones stay, warm for the next
     * image of a batch. */
    if (ws_len >= IP_PNG_STRIP_MIN && !(fmt == IP_FORMAT_PNG && ip__png_strip_count(img) == 0))
        ip__arena_release(p->arena, ws, ws_len);
    rc = ip__encode(img, fmt, &p->cfg.encode, ws, ws_len, &runner, enc, &item->err);
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
    /* Kept for the next image, without its pages meanwhile when the
     * loaders' and writers' buffers together could be large. */
    if ((size_t)(p->cfg.io_threads + p->cfg.writers) * enc->len > IP__HELD_MAX)
        ip__buf_give_back(enc);
    return rc;
}

void ip__writer_finish(struct ip_pipeline *p, struct ip__item *item, struct ip_buf *enc)
{
    struct ip_error warning;
    int rc;

    if (item->err.code) {
        ip__item_finish(p, item, IP_RESULT_FAILED);
        return;
    }
    /* The encoder clears item->err: keep a decoder's warning (code 0,
     * e.g. a truncated image accepted under allow_truncated). */
    warning = item->err;
    rc = write_one(p, item, enc);
    if (rc == 0)
        item->err = warning;
    ip__item_finish(p, item, rc ? IP_RESULT_FAILED : IP_RESULT_OK);
}

void *ip__writer_main(void *arg)
{
    struct ip_pipeline *p = arg;
    struct ip_buf enc = {0};
    void *ptr;

    for (;;) {
        uint64_t wait_ns = 0;
        int rc = ip__queue_pop(&p->write_q, &ptr, &wait_ns);

        ip__stage_add(p, NULL, IP_STAGE_WAIT_WRITE, wait_ns);
        if (rc != 0)
            break;
        ip__writer_finish(p, ptr, &enc);
    }
    ip_buf_free(&enc);
    return NULL;
}
