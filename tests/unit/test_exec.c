/* Executors through their public ops (include/imgpar/exec.h), threads and
 * procs, against ip_chain_run in this process:
 *   - procs: run() from four threads at once while the main thread submits
 *     bands and waits for them (run() callers read their worker's reply
 *     themselves while the I/O thread reads the submitted bands'); threads
 *     (no run()): every image as bands. Every output equals the in-process
 *     reference, and every job reports status 0 after one attempt.
 * procs only:
 *   - a job whose worker crashes every time: status IP_EWORKER after two
 *     attempts, and the next jobs run on fresh workers;
 *   - a worker killed while its run() caller waits: the job is retried on
 *     a fresh worker, status 0, attempts 2, output equal to the reference;
 *   - idle workers killed: later jobs still complete correctly, and the
 *     dead ones are reaped (no zombie left);
 *   - cancel while run() waits on a worker that sleeps for 60 s: run()
 *     returns IP_EINTR within 5 s, and fini() leaves no worker behind.
 * Usage: test_exec (no arguments). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imgpar/exec.h"
#include "check.h"

#define NIMG 24
#define RUNNERS 4
#define WORKERS 3

struct pair {
    struct ip_image src, dst;
    uint8_t *ref;       /* ip_chain_run's output, private memory */
};

static struct ip_chain chain;
static struct pair img[NIMG];
static const struct ip_exec_ops *ops;
static struct ip_exec *ex;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* NIMG RGB images of several sizes in `shared`, their gray outputs after
 * them; references computed here. */
static void make_images(uint8_t *shared)
{
    unsigned long long seed = 0x1234567;
    struct ip_scratch *scratch = ip_scratch_new();
    uint8_t *at = shared;

    for (int i = 0; i < NIMG; i++) {
        uint32_t w = 40 + 37 * (uint32_t)i, h = 30 + 23 * (uint32_t)(NIMG - i);
        struct ip_image ref;
        size_t n = (size_t)w * h * 3;

        img[i].src = (struct ip_image){w, h, 3, (size_t)w * 3, at};
        at += (n + 63) & ~(size_t)63;
        for (size_t k = 0; k < n; k++)
            img[i].src.pixels[k] = (uint8_t)(check_rand(&seed) >> 56);
        img[i].dst = (struct ip_image){w, h, 1, w, at};
        at += ((size_t)w * h + 63) & ~(size_t)63;
        img[i].ref = malloc((size_t)w * h);
        ref = (struct ip_image){w, h, 1, w, img[i].ref};
        CHECK(img[i].ref && scratch && ip_chain_run(&chain, &img[i].src, &ref, scratch) == 0);
    }
    ip_scratch_free(scratch);
}

static void clear_outputs(void)
{
    for (int i = 0; i < NIMG; i++)
        memset(img[i].dst.pixels, 0xA5, (size_t)img[i].dst.width * img[i].dst.height);
}

static int output_ok(int i)
{
    return memcmp(img[i].dst.pixels, img[i].ref, (size_t)img[i].dst.width * img[i].dst.height) == 0;
}

static struct ip_job whole_job(int i, uint32_t flags)
{
    struct ip_job job;

    memset(&job, 0, sizeof job);
    job.kind = IP_JOB_BAND;
    job.tag = &img[i];
    job.src = img[i].src;
    job.dst = img[i].dst;
    job.y0 = 0;
    job.y1 = img[i].src.height;
    job.test_flags = flags;
    return job;
}

/* Runner r: images r, r + RUNNERS, ... among the first half, through run(). */
static void *runner(void *arg)
{
    int r = (int)(intptr_t)arg;
    int bad = 0;

    for (int i = r; i < NIMG / 2; i += RUNNERS) {
        struct ip_job job = whole_job(i, 0);
        if (ops->run(ex, &job) != 0 || job.status != 0 || job.attempts != 1 || job.tag != &img[i])
            bad++;
    }
    return (void *)(intptr_t)bad;
}

/* The second half's images as bands of 17 rows through submit() and wait(),
 * while the runners use run(); every image that way where the executor has
 * no run() (threads: the pipeline calls the kernels on the loader itself). */
static void mixed_round(void)
{
    pthread_t th[RUNNERS];
    int sent = 0, got = 0, bad = 0, first = ops->run ? NIMG / 2 : 0;

    clear_outputs();
    for (int r = 0; r < RUNNERS && ops->run; r++)
        CHECK(pthread_create(&th[r], NULL, runner, (void *)(intptr_t)r) == 0);
    for (int i = first; i < NIMG; i++) {
        for (uint32_t y = 0; y < img[i].src.height; y += 17) {
            struct ip_job job = whole_job(i, 0);
            job.y0 = y;
            job.y1 = y + 17 < img[i].src.height ? y + 17 : img[i].src.height;
            CHECK(ops->submit(ex, &job) == 0);
            sent++;
        }
    }
    while (got < sent) {
        struct ip_job done;
        CHECK_EQ_INT(ops->wait(ex, &done), 0);
        got++;
        if (done.status != 0 || done.attempts != 1 || (struct pair *)done.tag < img ||
            (struct pair *)done.tag >= img + NIMG)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (int r = 0; r < RUNNERS && ops->run; r++) {
        void *res;
        CHECK(pthread_join(th[r], &res) == 0);
        CHECK_EQ_INT((intptr_t)res, 0);
    }
    for (int i = 0; i < NIMG; i++)
        CHECK(output_ok(i));
}

/* Pids of this process's children (the workers), at most max. */
static int children(pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], buf[512], *p;
        FILE *f;
        long ppid = 0;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) != NULL && sscanf(p + 2, "%*c %ld", &ppid) == 1 &&
            ppid == (long)getpid())
            out[n++] = (pid_t)atol(e->d_name);
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A pid from the stall pidfile, once the stalling worker has written it. */
static pid_t stalled_pid(const char *path)
{
    for (int t = 0; t < 500; t++) {
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f) {
            int ok = fscanf(f, "%ld", &pid) == 1;
            fclose(f);
            if (ok && pid > 0)
                return (pid_t)pid;
        }
        usleep(10000);
    }
    return 0;
}

struct stalled {
    struct ip_job job;
    int rc;
    double took;
};

static void *stalled_runner(void *arg)
{
    struct stalled *s = arg;
    double t0 = now_s();

    s->rc = ops->run(ex, &s->job);
    s->took = now_s() - t0;
    return NULL;
}

static void procs_faults(const char *pidfile)
{
    struct ip_job job;
    pid_t pids[16], pid;
    pthread_t th;
    struct stalled st;
    int n;

    /* A worker that crashes on every attempt. */
    job = whole_job(0, IP_JOB_TEST_CRASH);
    CHECK_EQ_INT(ops->run(ex, &job), 0);
    CHECK_EQ_INT(job.status, IP_EWORKER);
    CHECK_EQ_INT(job.attempts, 2);
    mixed_round();

    /* A worker killed while its caller waits. */
    unlink(pidfile);
    clear_outputs();
    memset(&st, 0, sizeof st);
    st.job = whole_job(1, IP_JOB_TEST_STALL);
    CHECK(pthread_create(&th, NULL, stalled_runner, &st) == 0);
    pid = stalled_pid(pidfile);
    CHECK(pid > 0);
    if (pid > 0)
        kill(pid, SIGKILL);
    pthread_join(th, NULL);
    CHECK_EQ_INT(st.rc, 0);
    CHECK_EQ_INT(st.job.status, 0);
    CHECK_EQ_INT(st.job.attempts, 2);
    CHECK(st.took < 30);
    CHECK(output_ok(1));
    if (pid > 0)
        CHECK(kill(pid, 0) != 0 && errno == ESRCH);   /* reaped, not a zombie */

    /* Idle workers killed: the executor replaces them before or at their next job. */
    n = children(pids, 16);
    CHECK_EQ_INT(n, WORKERS);
    for (int k = 0; k < n; k++)
        kill(pids[k], SIGKILL);
    usleep(200000);
    clear_outputs();
    for (int i = 0; i < NIMG; i++) {
        job = whole_job(i, 0);
        CHECK_EQ_INT(ops->run(ex, &job), 0);
        CHECK_EQ_INT(job.status, 0);
        CHECK(output_ok(i));
    }
    for (int k = 0; k < n; k++)
        CHECK(kill(pids[k], 0) != 0 && errno == ESRCH);
    mixed_round();

    /* Cancel while run() waits on a sleeping worker. */
    unlink(pidfile);
    memset(&st, 0, sizeof st);
    st.job = whole_job(2, IP_JOB_TEST_STALL);
    CHECK(pthread_create(&th, NULL, stalled_runner, &st) == 0);
    pid = stalled_pid(pidfile);
    CHECK(pid > 0);
    ops->cancel(ex);
    pthread_join(th, NULL);
    CHECK_EQ_INT(st.rc, IP_EINTR);
    CHECK(st.took < 5);
    job = whole_job(3, 0);
    CHECK_EQ_INT(ops->run(ex, &job), IP_EINTR);   /* cancelled: nothing new starts */
    n = children(pids, 16);
    ops->fini(ex);
    ex = NULL;
    for (int k = 0; k < n; k++)
        CHECK(kill(pids[k], 0) != 0 && errno == ESRCH);
}

int main(void)
{
    size_t bytes = 64u << 20;
    uint8_t *shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char pidfile[64];

    CHECK(shared != MAP_FAILED);
    if (shared == MAP_FAILED)
        return check_exit("executors");
    snprintf(pidfile, sizeof pidfile, "/tmp/imgpar-test-exec-%ld.pid", (long)getpid());
    ip_chain_default(&chain);
    make_images(shared);
    for (int kind = IP_EXEC_THREADS; kind <= IP_EXEC_PROCS; kind++) {
        struct ip_exec_config cfg = {.workers = WORKERS, .chain = &chain, .stall_pidfile = pidfile};
        struct ip_error err;

        memset(&err, 0, sizeof err);
        ops = ip_exec_ops_get((enum ip_exec_kind)kind);
        CHECK(ops && (ops->run || kind == IP_EXEC_THREADS));
        if (!ops || ops->init(&ex, &cfg, &err) != 0) {
            CHECK(0);
            continue;
        }
        for (int round = 0; round < 3; round++)
            mixed_round();
        if (kind == IP_EXEC_PROCS) {
            procs_faults(pidfile);
        } else {
            ops->fini(ex);
            ex = NULL;
        }
    }
    unlink(pidfile);
    for (int i = 0; i < NIMG; i++)
        free(img[i].ref);
    munmap(shared, bytes);
    return check_exit("executors");
}
