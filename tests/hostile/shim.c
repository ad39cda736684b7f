/* LD_PRELOAD shim for the hostile suite: observes and perturbs the few
 * libc calls whose use the tests must check from outside.
 *
 *   IMGPAR_SHIM_LOG=FILE     append one line per event to FILE:
 *                              shm_open NAME FLAGS_HEX MODE_OCTAL FSTAT_MODE_OCTAL T_NS
 *                              shm_unlink NAME T_NS
 *                              fsync FD / fdatasync FD
 *                              tmpfile DIR           (an open with O_TMPFILE)
 *                              excl PATH             (an open with O_CREAT|O_EXCL)
 *   IMGPAR_SHIM_NO_TMPFILE=1 opens with O_TMPFILE fail with EOPNOTSUPP, as
 *                            on a file system without it (forces the named
 *                            O_EXCL fallback)
 *   IMGPAR_SHIM_SHM_HOLD_MS=N a successful shm_open sleeps N ms before it
 *                            returns: holds the name in /dev/shm, so a test
 *                            can kill the process before shm_unlink
 *   IMGPAR_SHIM_FALLOCATE_LIMIT=N  a fallocate reaching past byte N fails
 *                            with ENOSPC, as on a /dev/shm with N bytes free;
 *                            every fallocate is logged as
 *                              fallocate OFFSET LEN
 *                            (one that punches a hole, never refused, as
 *                              punch OFFSET LEN)
 *   (always)                 madvise(MADV_POPULATE_WRITE) is logged as
 *                              populate LEN
 *                            and a read() asking for 1 MiB or more as
 *                              read LEN
 *   IMGPAR_SHIM_SLOW_READ_MS=N such a read returns at most 1 MiB, N ms
 *                            late: a slow disk
 *
 * Lines are written with one write() on an O_APPEND descriptor, so events
 * from threads and forked workers never mix. */
/* Define open and open64 as themselves (meson's _FILE_OFFSET_BITS=64 would
 * make the declaration of open name open64). */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* dlsym returns void *; ISO C has no cast from it to a function pointer. */
#define LOOKUP(var, name)                       \
    do {                                        \
        void *sym_ = dlsym(RTLD_NEXT, name);    \
        memcpy(&(var), &sym_, sizeof(var));     \
    } while (0)

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    static int (*real_open)(const char *, int, ...);
    const char *path = getenv("IMGPAR_SHIM_LOG");
    char line[1024];
    va_list ap;
    int fd, n;

    if (!path || !*path)
        return;
    if (!real_open)
        LOOKUP(real_open, "open");
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof line)
        return;
    fd = real_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) != n)
        n = 0;
    close(fd);
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Applies the open policy; returns 1 (with errno set) when the call must fail. */
static int refuse_open(const char *path, int flags)
{
    if ((flags & O_TMPFILE) == O_TMPFILE) {
        log_line("tmpfile %s\n", path);
        if (getenv("IMGPAR_SHIM_NO_TMPFILE")) {
            errno = EOPNOTSUPP;
            return 1;
        }
    } else if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
        log_line("excl %s\n", path);
    }
    return 0;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_WRAPPER(name)                                                        \
    int name(const char *path, int flags, ...);                                   \
    int name(const char *path, int flags, ...)                                    \
    {                                                                             \
        static int (*real)(const char *, int, ...);                              \
        va_list ap;                                                               \
        mode_t mode;                                                              \
        if (!real)                                                                \
            LOOKUP(real, #name);      \
        va_start(ap, flags);                                                      \
        mode = mode_arg(flags, ap);                                               \
        va_end(ap);                                                               \
        if (refuse_open(path, flags))                                             \
            return -1;                                                            \
        return real(path, flags, mode);                                           \
    }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                      \
    int name(int dirfd, const char *path, int flags, ...);                        \
    int name(int dirfd, const char *path, int flags, ...)                         \
    {                                                                             \
        static int (*real)(int, const char *, int, ...);                         \
        va_list ap;                                                               \
        mode_t mode;                                                              \
        if (!real)                                                                \
            LOOKUP(real, #name); \
        va_start(ap, flags);                                                      \
        mode = mode_arg(flags, ap);                                               \
        va_end(ap);                                                               \
        if (refuse_open(path, flags))                                             \
            return -1;                                                            \
        return real(dirfd, path, flags, mode);                                    \
    }

OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

int shm_open(const char *name, int flags, mode_t mode)
{
    static int (*real)(const char *, int, mode_t);
    struct stat st;
    int fd;

    if (!real)
        LOOKUP(real, "shm_open");
    fd = real(name, flags, mode);
    if (fd >= 0 && fstat(fd, &st) == 0)
        log_line("shm_open %s %x %o %o %lld\n", name, (unsigned)flags, (unsigned)mode,
                 (unsigned)(st.st_mode & 07777), now_ns());
    if (fd >= 0 && getenv("IMGPAR_SHIM_SHM_HOLD_MS")) {
        long ms = atol(getenv("IMGPAR_SHIM_SHM_HOLD_MS"));
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return fd;
}

int shm_unlink(const char *name)
{
    static int (*real)(const char *);

    if (!real)
        LOOKUP(real, "shm_unlink");
    log_line("shm_unlink %s %lld\n", name, now_ns());
    return real(name);
}

int fsync(int fd)
{
    static int (*real)(int);

    if (!real)
        LOOKUP(real, "fsync");
    log_line("fsync %d\n", fd);
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);

    if (!real)
        LOOKUP(real, "fdatasync");
    log_line("fdatasync %d\n", fd);
    return real(fd);
}

/* Both names: a caller built with _FILE_OFFSET_BITS=64 calls fallocate64. */
static int shim_fallocate(const char *sym, int fd, int mode, off_t offset, off_t len)
{
    int (*real)(int, int, off_t, off_t);
    const char *limit = getenv("IMGPAR_SHIM_FALLOCATE_LIMIT");

    LOOKUP(real, sym);
    if (mode & FALLOC_FL_PUNCH_HOLE) {   /* pages given back: logged, never refused */
        log_line("punch %lld %lld\n", (long long)offset, (long long)len);
        return real(fd, mode, offset, len);
    }
    log_line("fallocate %lld %lld\n", (long long)offset, (long long)len);
    if (limit && *limit && offset + len > atoll(limit)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, mode, offset, len);
}

int fallocate(int fd, int mode, off_t offset, off_t len)
{
    return shim_fallocate("fallocate", fd, mode, offset, len);
}

int fallocate64(int fd, int mode, off_t offset, off_t len)
{
    return shim_fallocate("fallocate64", fd, mode, offset, len);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int madvise(void *addr, size_t len, int advice)
{
    static int (*real)(void *, size_t, int);

    if (!real)
        LOOKUP(real, "madvise");
    if (advice == MADV_POPULATE_WRITE)
        log_line("populate %zu\n", len);
    return real(addr, len, advice);
}

/* A slow disk: a read asking for 1 MiB or more gets at most 1 MiB, after
 * IMGPAR_SHIM_SLOW_READ_MS ms; logged as "read LEN" (the length asked). */
ssize_t read(int fd, void *buf, size_t count)
{
    static ssize_t (*real)(int, void *, size_t);
    const char *slow = getenv("IMGPAR_SHIM_SLOW_READ_MS");

    if (!real)
        LOOKUP(real, "read");
    if (count >= (1u << 20)) {
        log_line("read %zu\n", count);
        if (slow && *slow) {
            long ms = strtol(slow, NULL, 10);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

            nanosleep(&ts, NULL);
            count = 1u << 20;
        }
    }
    return real(fd, buf, count);
}
