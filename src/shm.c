/* The pixel arena, private or in POSIX shared memory.
 *
 * DESIGN: one mapping, created by the pipeline before any worker is forked.
 * For the procs executor it is a shared memory object named
 * /imgpar-<pid>-<n>-<random> (O_CREAT|O_EXCL, mode 0600) that is unlinked
 * as soon as it is mapped: forked workers inherit the mapping at the same
 * address, so job descriptors carry plain pointers, and no name is left in
 * /dev/shm even if every process is killed afterwards. A SIGKILL in the
 * instant between shm_open and shm_unlink (imgpar bench kills its
 * configuration child that way when interrupted) would leave the name:
 * ip__shm_sweep_stale removes such names, those whose <pid> no longer
 * exists, before every shared arena is created and after bench kills a
 * child. The parent keeps the fd to fallocate blocks before use, so a
 * full /dev/shm is an error for one file (IP_ENOSPC) rather than a SIGBUS.
 * A bitmap, one bit per 4 KiB page, says which pages are allocated there:
 * a block's loader fallocates only the pages not yet allocated (tmpfs
 * serialises fallocate on the inode, and clears what it allocates), so a
 * reused block costs no system call. When /dev/shm runs out, the arena
 * shrinks to below the block that could not be allocated: images wait for
 * a block of that, like any full --mem budget, and only an image too big
 * for it fails (IP_ENOSPC).
 * Draining (ip__arena_drain, once the input is exhausted): tearing down
 * shared memory costs per 4 KiB page (unmapping it from the parent and
 * from every worker that touched it, then freeing it), about 25 ms for the
 * 130 MiB that 16 loaders use on photos, all of it on one core at the end
 * of the run, after the last image. So once no more images will start,
 * the free blocks' pages, and every block freed after that, are given back
 * at once (a punched hole) by the thread that frees them, on its own core
 * while the other loaders finish their last images; at the end little is
 * left to tear down. A private arena is left as it is (its huge pages cost
 * little to unmap).
 * Blocks are carved first-fit from an address-ordered list and coalesced on
 * free; callers that find the arena full may wait for a free (that wait is
 * the --mem backpressure). In a shared arena a loader's next block goes
 * where its previous one began when that space is free (near): the worker
 * process that filters the loader's images has those pages mapped
 * already, where a block elsewhere costs it a page fault per 4 KiB
 * (measured on the PNG batch: a fifth to a third fewer faults). Reusing
 * blocks keeps pages warm: first touch of fresh memory costs ~0.3
 * ns/byte. But free blocks keep their pages, and images of mixed sizes
 * leave holes the next image does not fit, taken above them in fresh
 * memory: so the arena counts the pages it holds (the bitmap above, for
 * private arenas too: set when a block is taken), and once they pass its
 * peak use by 8 MiB the free blocks give theirs back (trim). The writer
 * gives back the dead part of a huge image's block (its decoded pixels,
 * once filtered) with ip__arena_release: madvise(MADV_DONTNEED) in a
 * private arena, a punched hole in a shared one, whose pages are then
 * marked not allocated, so that they are fallocated again before the
 * next block there is used. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"

#define BLOCK_ALIGN 4096u

struct block {
    size_t off, len;
    int used;
    struct block *next;     /* next block by address */
};

struct ip__arena {
    uint8_t *base;
    size_t size;
    int fd;                 /* shared: the unlinked object, for fallocate; else -1 */
    pthread_mutex_t lock;
    pthread_cond_t freed;   /* signalled on every free */
    struct block *blocks;   /* address-ordered, covering [0, size) */
    int cancelled;
    size_t used, peak;      /* bytes allocated now, and at most so far */
    size_t limit;           /* blocks end at or before it: size, until /dev/shm ran out */
    _Atomic uint64_t *backed;       /* bit p set when page p may hold memory: allocated in /dev/shm
                                       (shared), or taken since last given back (private) */
    atomic_size_t resident;         /* pages whose bit is set */
    atomic_int draining;            /* shared: no more images start; freed blocks are punched */
};

static atomic_uint arena_counter;

void ip__shm_sweep_stale(void)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char name[NAME_MAX + 2], *end;
        long pid;

        if (strncmp(e->d_name, "imgpar-", 7) != 0)
            continue;
        errno = 0;
        pid = strtol(e->d_name + 7, &end, 10);
        if (errno || end == e->d_name + 7 || *end != '-' || pid <= 0 || pid != (pid_t)pid)
            continue;
        /* Alive (or not ours to signal: EPERM): leave it. */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(name, sizeof name, "/%s", e->d_name);
        shm_unlink(name);
    }
    closedir(d);
}

static int open_shm(size_t bytes, struct ip_error *err)
{
    char name[64];
    uint64_t rnd = 0;
    int fd;

    for (int attempt = 0; attempt < 8; attempt++) {
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            rnd ^= ip__now_ns();
        snprintf(name, sizeof name, "/imgpar-%ld-%u-%016llx", (long)getpid(),
                 atomic_fetch_add(&arena_counter, 1), (unsigned long long)rnd);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            break;
        if (errno != EEXIST)
            return ip_error_set(err, IP_ENOSPC, "cannot create shared memory %s: %s", name,
                                strerror(errno));
    }
    if (fd < 0)
        return ip_error_set(err, IP_ENOSPC, "cannot create a unique shared memory object");
    /* Unlink at once: the fd and the mappings keep it alive, the name never lingers. */
    shm_unlink(name);
    if (ftruncate(fd, (off_t)bytes) != 0) {
        int e = errno;
        close(fd);
        return ip_error_set(err, IP_ENOSPC, "cannot size shared memory to %zu bytes: %s", bytes,
                            strerror(e));
    }
    return fd;
}

/* A private arena on 2 MiB boundaries, with transparent huge pages asked
 * for: a huge image's first touch then takes one page fault per 2 MiB
 * instead of per 4 KiB, which matters when 16 threads decode into fresh
 * memory at once (the faults serialise on the process's memory map lock).
 * Without THP (or with it off) the advice does nothing. */
static void *map_private(size_t bytes)
{
    const size_t huge = 2u << 20;
    uint8_t *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    uint8_t *base;
    size_t head;

    if (raw == MAP_FAILED)
        return MAP_FAILED;
    base = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    head = (size_t)(base - raw);
    if (head)
        munmap(raw, head);
    if (huge - head)
        munmap(base + bytes, huge - head);
#ifdef MADV_HUGEPAGE
    madvise(base, bytes, MADV_HUGEPAGE);
#endif
    return base;
}

int ip__arena_create(struct ip__arena **out, size_t bytes, int shared, struct ip_error *err)
{
    struct ip__arena *a;
    int rc;

    *out = NULL;
    bytes = (bytes + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    if (bytes == 0)
        return ip_error_set(err, IP_EINVAL, "memory budget is zero");
    if (shared) {
        struct statvfs vfs;
        ip__shm_sweep_stale();
        if (statvfs("/dev/shm", &vfs) == 0) {
            uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
            if (avail < bytes) {
                /* Leave a little for others; the budget shrinks to what /dev/shm can hold. */
                uint64_t cap = avail / 10 * 9 / BLOCK_ALIGN * BLOCK_ALIGN;
                if (cap < (16u << 20))
                    return ip_error_set(err, IP_ENOSPC,
                                        "only %llu bytes free in /dev/shm: not enough shared memory",
                                        (unsigned long long)avail);
                bytes = (size_t)cap;
            }
        }
    }
    a = calloc(1, sizeof *a);
    if (!a)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    a->fd = -1;
    a->size = bytes;
    if (shared) {
        rc = open_shm(bytes, err);
        if (rc < 0)
            goto fail_struct;
        a->fd = rc;
        a->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
    } else {
        a->base = map_private(bytes);
    }
    if (a->base == MAP_FAILED) {
        rc = ip_error_set(err, IP_ENOMEM, "cannot map the --mem arena of %zu MiB: %s", bytes >> 20,
                          strerror(errno));
        goto fail_fd;
    }
    a->blocks = calloc(1, sizeof *a->blocks);
    if (!a->blocks) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory");
        goto fail_map;
    }
    a->blocks->len = bytes;
    a->limit = bytes;
    a->backed = calloc((bytes / BLOCK_ALIGN + 63) / 64, sizeof *a->backed);
    if (!a->backed) {
        free(a->blocks);
        rc = ip_error_set(err, IP_ENOMEM, "out of memory");
        goto fail_map;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->freed, NULL);
    *out = a;
    return 0;

fail_map:
    munmap(a->base, bytes);
fail_fd:
    if (a->fd >= 0)
        close(a->fd);
fail_struct:
    free(a);
    return rc;
}

void ip__arena_destroy(struct ip__arena *a)
{
    struct block *b, *next;

    if (!a)
        return;
    for (b = a->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    munmap(a->base, a->size);
    if (a->fd >= 0)
        close(a->fd);
    pthread_cond_destroy(&a->freed);
    pthread_mutex_destroy(&a->lock);
    free(a->backed);
    free(a);
}

size_t ip__arena_size(struct ip__arena *a) { return a->size; }

size_t ip__arena_peak(struct ip__arena *a)
{
    size_t peak;

    pthread_mutex_lock(&a->lock);
    peak = a->peak;
    pthread_mutex_unlock(&a->lock);
    return peak;
}

/* Marks the free block b taken for its first len bytes, splitting off
 * the rest as a free block. NULL when out of memory for the split. */
static struct block *carve(struct block *b, size_t len)
{
    if (b->len > len) {
        struct block *rest = malloc(sizeof *rest);
        if (!rest)
            return NULL;
        rest->off = b->off + len;
        rest->len = b->len - len;
        rest->used = 0;
        rest->next = b->next;
        b->next = rest;
        b->len = len;
    }
    b->used = 1;
    return b;
}

/* First fit under the lock; splits the block. NULL when nothing fits now. */
static struct block *take(struct ip__arena *a, size_t len)
{
    for (struct block *b = a->blocks; b; b = b->next)
        if (!b->used && b->len >= len && b->off + len <= a->limit)
            return carve(b, len);
    return NULL;
}

/* Under the lock: [off, off + len), when it lies in one free block (which
 * is split around it); else NULL. */
static struct block *take_at(struct ip__arena *a, size_t off, size_t len)
{
    struct block *b = a->blocks;

    while (b && b->off + b->len <= off)
        b = b->next;
    if (!b || b->used || off + len > b->off + b->len || off + len > a->limit)
        return NULL;
    if (b->off < off) {   /* the free part before it stays free */
        struct block *at = malloc(sizeof *at), *front = b;
        if (!at)
            return NULL;
        at->off = off;
        at->len = b->off + b->len - off;
        at->used = 0;
        at->next = b->next;
        b->len = off - b->off;
        b->next = at;
        if (!(b = carve(at, len))) {   /* no memory: one free block again */
            front->len += at->len;
            front->next = at->next;
            free(at);
        }
        return b;
    }
    return carve(b, len);
}

/* Frees b (taken, and counted in a->used when `counted`). */
static void release(struct ip__arena *a, struct block *b, int counted)
{
    struct block *prev = NULL, *cur;

    b->used = 0;
    if (counted)
        a->used -= b->len;
    /* Merge with the following free block, then with the preceding one. */
    if (b->next && !b->next->used) {
        struct block *n = b->next;
        b->len += n->len;
        b->next = n->next;
        free(n);
    }
    for (cur = a->blocks; cur && cur != b; cur = cur->next)
        prev = cur;
    if (prev && !prev->used) {
        prev->len += b->len;
        prev->next = b->next;
        free(b);
    }
}

/* Sets (or clears) the bits of pages [from, to). */
static void mark_backed(struct ip__arena *a, size_t from, size_t to, int set)
{
    while (from < to) {
        size_t w = from / 64, n = 64 - from % 64 < to - from ? 64 - from % 64 : to - from;
        uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << (from % 64);
        if (set)
            atomic_fetch_add(&a->resident, (size_t)__builtin_popcountll(~atomic_fetch_or(&a->backed[w], mask) & mask));
        else
            atomic_fetch_sub(&a->resident, (size_t)__builtin_popcountll(atomic_fetch_and(&a->backed[w], ~mask) & mask));
        from += n;
    }
}

/* The first page in [from, end) whose bit equals `backed`, or end: a
 * word (64 pages) at a time. */
static size_t find_page(const struct ip__arena *a, size_t from, size_t end, int backed)
{
    while (from < end) {
        uint64_t w = atomic_load_explicit(&a->backed[from / 64], memory_order_relaxed);

        w = (backed ? w : ~w) >> (from % 64);
        if (w) {
            from += (size_t)__builtin_ctzll(w);
            return from < end ? from : end;
        }
        from = (from / 64 + 1) * 64;
    }
    return end;
}

/* Finds the first run of pages in [*page, end) whose bits equal `backed`:
 * its start goes to *page (end when there is none), its end is returned. */
static size_t next_run(const struct ip__arena *a, size_t *page, size_t end, int backed)
{
    *page = find_page(a, *page, end, backed);
    return find_page(a, *page, end, !backed);
}

/* Whether any page of the block [off, off + len) has its bit equal to `backed`. */
static int block_has(const struct ip__arena *a, size_t off, size_t len, int backed)
{
    size_t page = off / BLOCK_ALIGN, end = (off + len) / BLOCK_ALIGN;

    next_run(a, &page, end, backed);
    return page < end;
}

/* Allocates pages [from, to) in /dev/shm (errno says why not). */
static int back_pages(struct ip__arena *a, size_t from, size_t to)
{
    if (fallocate(a->fd, 0, (off_t)(from * BLOCK_ALIGN), (off_t)((to - from) * BLOCK_ALIGN)) != 0 &&
        errno != EOPNOTSUPP && errno != ENOSYS)
        return -1;
    return 0;
}

/* Allocates the pages of the block [off, off + len) that are not yet
 * allocated; the caller owns the block. */
static int back_block(struct ip__arena *a, size_t off, size_t len)
{
    size_t page = off / BLOCK_ALIGN, end = (off + len) / BLOCK_ALIGN, run;

    for (run = next_run(a, &page, end, 0); page < end; run = next_run(a, &page, end, 0)) {
        if (back_pages(a, page, run) != 0)
            return -1;
        mark_backed(a, page, run, 1);
        page = run;
    }
    return 0;
}

/* Gives the pages [from, to), which the caller owns, back to the kernel:
 * punched out of a shared arena (in every process), MADV_DONTNEED in a
 * private one (they then read as zeros); marked empty once they are. */
static void give_back_pages(struct ip__arena *a, size_t from, size_t to)
{
    int rc;

    if (to <= from)
        return;
    if (a->fd >= 0)
        rc = fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(from * BLOCK_ALIGN),
                       (off_t)((to - from) * BLOCK_ALIGN));
    else
        rc = madvise(a->base + from * BLOCK_ALIGN, (to - from) * BLOCK_ALIGN, MADV_DONTNEED);
    if (rc == 0)
        mark_backed(a, from, to, 0);
}

/* Gives back the pages of the block [off, off + len) that hold memory; the
 * caller owns the block. */
static void give_back_block(struct ip__arena *a, size_t off, size_t len)
{
    size_t page = off / BLOCK_ALIGN, end = (off + len) / BLOCK_ALIGN, run;

    for (run = next_run(a, &page, end, 1); page < end; run = next_run(a, &page, end, 1)) {
        give_back_pages(a, page, run);
        page = run;
    }
}

/* Gives back the memory of the free block b, reserved meanwhile (used,
 * not counted) while the lock is dropped. Returns 0, or -1 when some of
 * its pages still hold memory (the kernel refused, or the block was taken
 * again after it). Called and returns with the lock held. */
static int give_back_free(struct ip__arena *a, struct block *b)
{
    size_t off = b->off, len = b->len;

    b->used = 1;
    pthread_mutex_unlock(&a->lock);
    give_back_block(a, off, len);
    pthread_mutex_lock(&a->lock);
    release(a, b, 0);
    pthread_cond_broadcast(&a->freed);
    return block_has(a, off, len, 1) ? -1 : 0;
}

/* Holes smaller than this are not given back. */
#define TRIM_MIN ((size_t)1 << 20)

size_t ip__arena_trim_slack = (size_t)8 << 20;

/* Keeps the memory the arena holds (pages taken, or allocated in
 * /dev/shm, and not given back) within ip__arena_trim_slack of its peak use: the
 * free blocks that hold memory give it back, in address order, until the
 * excess is gone. Photos of mixed sizes leave holes that the next image
 * does not fit; kept, the holes added up to 17 to 36 MiB beyond the
 * pixels in flight at -j16 on the PNG batch. The pages of a hole are
 * fresh again when a block there is next taken (about 0.3 ns a byte).
 * Called and returns with the lock held; each hole is reserved while its
 * pages go back, as in ip__arena_drain. */
static void trim(struct ip__arena *a)
{
    for (;;) {
        size_t held = atomic_load(&a->resident) * BLOCK_ALIGN;
        struct block *b;

        if (held <= a->peak + ip__arena_trim_slack)
            return;
        for (b = a->blocks; b; b = b->next)
            if (!b->used && b->len >= TRIM_MIN && block_has(a, b->off, b->len, 1))
                break;
        if (!b)
            return;
        if (give_back_free(a, b) != 0)
            return;
    }
}

int ip__arena_alloc(struct ip__arena *a, size_t bytes, int wait, const void *near, void **ptr,
                    uint64_t *wait_ns, struct ip_error *err)
{
    struct block *b;
    size_t len;
    uint64_t t0 = 0;
    int e = ENOSPC;

    *ptr = NULL;
    if (bytes > a->size - BLOCK_ALIGN + 1)
        return ip_error_set(err, IP_ETOOBIG, "image needs %zu MiB, more than --mem %zu MiB",
                            (bytes + (1u << 20) - 1) >> 20, a->size >> 20);
    len = (bytes + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    if (len == 0)
        len = BLOCK_ALIGN;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        if (len > a->limit) {
            pthread_mutex_unlock(&a->lock);
            return ip_error_set(err, IP_ENOSPC, "no room in /dev/shm for %zu bytes: %s", len, strerror(e));
        }
        b = NULL;
        if (a->fd >= 0 && near && (const uint8_t *)near >= a->base && (const uint8_t *)near < a->base + a->size)
            b = take_at(a, (size_t)((const uint8_t *)near - a->base) / BLOCK_ALIGN * BLOCK_ALIGN, len);
        if (!b)
            b = take(a, len);
        if (b && a->fd >= 0 && block_has(a, b->off, b->len, 0)) {
            size_t off = b->off, blen = b->len;

            pthread_mutex_unlock(&a->lock);
            if (back_block(a, off, blen) == 0) {
                pthread_mutex_lock(&a->lock);
                break;
            }
            e = errno;
            /* /dev/shm is full: from now on the arena is what lies below
             * this block, and images wait for a block of that (or fail if
             * they can never fit in it). */
            pthread_mutex_lock(&a->lock);
            release(a, b, 0);
            if (a->limit > off)
                a->limit = off;
            pthread_cond_broadcast(&a->freed);
            continue;
        }
        if (b)
            break;
        if (a->cancelled || !wait) {
            pthread_mutex_unlock(&a->lock);
            if (a->cancelled)
                return ip_error_set(err, IP_EINTR, "interrupted");
            return ip_error_set(err, IP_ENOMEM, "memory budget exhausted");
        }
        if (!t0)
            t0 = ip__now_ns();
        pthread_cond_wait(&a->freed, &a->lock);
    }
    if (a->fd < 0)
        mark_backed(a, b->off / BLOCK_ALIGN, (b->off + b->len) / BLOCK_ALIGN, 1);
    a->used += b->len;
    if (a->used > a->peak)
        a->peak = a->used;
    trim(a);
    pthread_mutex_unlock(&a->lock);
    if (t0 && wait_ns)
        *wait_ns += ip__now_ns() - t0;
    *ptr = a->base + b->off;
    return 0;
}

void ip__arena_free(struct ip__arena *a, void *ptr)
{
    struct block *b;
    size_t off;

    if (!ptr)
        return;
    off = (size_t)((uint8_t *)ptr - a->base);
    pthread_mutex_lock(&a->lock);
    for (b = a->blocks; b; b = b->next)
        if (b->off == off && b->used)
            break;
    if (b && a->fd >= 0 && atomic_load(&a->draining)) {
        /* Still ours (a used block is never merged or freed by others):
         * its pages go back before it joins the free list. */
        size_t len = b->len;

        pthread_mutex_unlock(&a->lock);
        give_back_block(a, off, len);
        pthread_mutex_lock(&a->lock);
    }
    if (b)
        release(a, b, 1);
    pthread_cond_broadcast(&a->freed);
    pthread_mutex_unlock(&a->lock);
}

void ip__arena_drain(struct ip__arena *a)
{
    if (a->fd < 0 || atomic_exchange(&a->draining, 1))
        return;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        struct block *b;

        for (b = a->blocks; b; b = b->next)
            if (!b->used && block_has(a, b->off, b->len, 1))
                break;
        if (!b)
            break;
        if (give_back_free(a, b) != 0)
            break;   /* leave the rest to the end */
    }
    pthread_mutex_unlock(&a->lock);
}

void ip__arena_release(struct ip__arena *a, void *ptr, size_t len)
{
    uintptr_t page = BLOCK_ALIGN, from = ((uintptr_t)ptr + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)ptr + len) & ~(page - 1);

    /* The caller owns the range. In a shared arena the hole frees the pages
     * in every process; they are allocated again before the next block
     * there is used. */
    if (to > from)
        give_back_pages(a, (size_t)(from - (uintptr_t)a->base) / BLOCK_ALIGN,
                        (size_t)(to - (uintptr_t)a->base) / BLOCK_ALIGN);
}

void ip__arena_cancel(struct ip__arena *a)
{
    pthread_mutex_lock(&a->lock);
    a->cancelled = 1;
    pthread_cond_broadcast(&a->freed);
    pthread_mutex_unlock(&a->lock);
}
