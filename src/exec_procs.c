/* Procs executor: forked worker processes over POSIX shared memory.
 *
 * DESIGN
 * - init() forks `workers` processes; the pipeline calls it before the
 *   process has any other thread. Each worker inherits the shared pixel
 *   arena (already mapped, already unlinked) at the same address, so a job
 *   descriptor with plain pointers is all that travels. Each worker talks to
 *   the parent over its own SOCK_SEQPACKET socketpair: one job message in,
 *   one reply out. No pixels ever go through a socket.
 * - A worker resets every signal handler, ignores SIGINT/SIGTERM/SIGHUP
 *   (its life is the parent's business), closes every fd but its socket and
 *   stdio, and dies with the parent: PR_SET_PDEATHSIG plus EOF on its socket.
 * - The parent runs one I/O thread that polls every worker socket and a
 *   wake pipe. A reply completes the worker's job; EOF or an error means
 *   the worker died: it is reaped at once, a fresh worker is forked (from
 *   this multithreaded parent: the child only uses recv/send, malloc - which
 *   glibc's fork handlers make safe - and the pure kernels), and its job is
 *   retried once; a second death fails that job alone with IP_EWORKER.
 * - Jobs come in two ways: submit() (the dispatcher's bands; the I/O thread
 *   reads the replies and posts them to the done list for wait()), and
 *   run() (a loader's whole image). A run() caller reads its reply itself:
 *   it polls its worker's socket and a cancel pipe, so the worker's reply
 *   wakes it directly, without a hop through the I/O thread; a death it
 *   sees it handles as the I/O thread would (reap, fork, retry once). The
 *   I/O thread leaves a worker with a waiter alone, and polls idle workers
 *   for hang-ups only (events 0), so such a reply never wakes it; submit()
 *   pokes it to poll its new job's socket for the reply. A run() caller
 *   takes the worker of its own index first (a loader thread keeps using
 *   one worker), else the first idle one; a submitted band takes the first
 *   idle worker. All under the one lock.
 * - fini() SIGKILLs and reaps every worker: they hold no state worth a
 *   graceful exit, and nothing is left behind (no zombies, no orphans). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct reply {
    int status;
    uint64_t busy_ns;
    long maxrss_kb;
};

/* A thread in procs_run, waiting for its job (only that thread touches it). */
struct waiter {
    int done;
    struct ip_job job;     /* the completed job */
};

struct worker {
    pid_t pid;             /* 0 when not running */
    int fd;                /* parent's end of the socketpair */
    int busy;              /* a job is outstanding */
    struct ip_job job;     /* the outstanding job (attempts = earlier tries) */
    struct waiter *waiter; /* procs_run's caller, who reads the reply from fd itself (the I/O
                            * thread keeps off), or NULL: the job completes to the done list */
};

struct ip_exec {
    struct ip_chain chain;
    char stall_pidfile[512];
    pid_t parent;
    int nworkers;
    struct worker *w;
    pthread_mutex_t lock;
    pthread_cond_t idle;     /* a worker became idle (or cancel) */
    int wake[2];             /* pipe: wakes the I/O thread */
    int cancel_pipe[2];      /* written once on cancel and never read: run() callers poll it */
    pthread_t io;
    int io_started;
    int cancelled, stopping;
    long peak_rss_kb;
    struct ip__donelist done;
};

static void write_pidfile(const char *path)
{
    char buf[32];
    int fd, n;

    if (!path[0])
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n)
        buf[0] = 0;
    close(fd);
}

static void worker_setup(int sock, pid_t parent)
{
    struct sigaction sa;
    sigset_t all;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    if (sock != 3) {
        dup2(sock, 3);
        close(sock);
    }
    fcntl(3, F_SETFD, 0);
    close_range(4, ~0u, 0);
}

static void __attribute__((noreturn)) worker_main(struct ip_exec *ex)
{
    struct ip_scratch *scratch = ip_scratch_new();
    struct ip_job job;
    struct reply r;
    struct rusage ru;

    for (;;) {
        ssize_t n = recv(3, &job, sizeof job, 0);
        if (n == 0)
            _exit(0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (n != (ssize_t)sizeof job)
            _exit(2);
        if ((job.test_flags & IP_JOB_TEST_STALL) && job.attempts == 0) {
            write_pidfile(ex->stall_pidfile);
            sleep(60);
        }
        if (job.test_flags & IP_JOB_TEST_CRASH)
            abort();
        if (scratch)
            ip__job_run(&ex->chain, &job, scratch);
        else
            job.status = IP_ENOMEM;
        memset(&r, 0, sizeof r);
        r.status = job.status;
        r.busy_ns = job.busy_ns;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            r.maxrss_kb = ru.ru_maxrss;
        if (send(3, &r, sizeof r, MSG_NOSIGNAL) != (ssize_t)sizeof r)
            _exit(1);
    }
}

/* Forks worker i. Called with ex->lock held or before threads exist. */
static int spawn(struct ip_exec *ex, int i)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return IP_EWORKER;
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        errno = e;
        return IP_EWORKER;
    }
    if (pid == 0) {
        worker_setup(sv[1], ex->parent);
        worker_main(ex);
    }
    close(sv[1]);
    ex->w[i].pid = pid;
    ex->w[i].fd = sv[0];
    return 0;
}

static void reap(struct worker *w)
{
    if (w->pid > 0) {
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (w->fd >= 0)
        close(w->fd);
    w->pid = 0;
    w->fd = -1;
}

/* One byte into a non-blocking pipe (full is as good as written). */
static void signal_pipe(int fd)
{
    char c = 1;
    if (write(fd, &c, 1) < 0 && errno != EAGAIN)
        return;
}

static void poke(struct ip_exec *ex) { signal_pipe(ex->wake[1]); }

/* Sends w's job; on failure whoever reads w's replies (the I/O thread, or
 * its waiter) sees the worker's death. */
static void send_job(struct worker *w)
{
    if (send(w->fd, &w->job, sizeof w->job, MSG_NOSIGNAL) != (ssize_t)sizeof w->job)
        shutdown(w->fd, SHUT_RDWR);
}

/* w's job is over (w->job says how): to its waiter, or to the done list;
 * w is idle. Called under ex->lock. */
static void complete(struct ip_exec *ex, struct worker *w, int status)
{
    w->busy = 0;
    pthread_cond_broadcast(&ex->idle);
    w->job.status = status;
    if (w->waiter) {
        w->waiter->job = w->job;
        w->waiter->done = 1;
        w->waiter = NULL;
    } else {
        ip__donelist_post(&ex->done, &w->job);
    }
}

/* w's reply r arrived: its job is over. Called under ex->lock. */
static void take_reply(struct ip_exec *ex, struct worker *w, const struct reply *r)
{
    w->job.busy_ns = r->busy_ns;
    w->job.attempts++;
    if (r->maxrss_kb > ex->peak_rss_kb)
        ex->peak_rss_kb = r->maxrss_kb;
    complete(ex, w, r->status);
}

/* The worker at index i died or broke its protocol: reap, replace, retry. */
static void handle_death(struct ip_exec *ex, int i)
{
    struct worker *w = &ex->w[i];

    reap(w);
    if (ex->cancelled || ex->stopping) {
        if (w->busy)
            complete(ex, w, IP_EINTR);
        return;
    }
    if (spawn(ex, i) != 0) {
        /* Cannot fork: fail the job; the slot stays empty. */
        if (w->busy)
            complete(ex, w, IP_EWORKER);
        return;
    }
    if (w->busy) {
        w->job.attempts++;
        if (w->job.attempts >= 2) {
            complete(ex, w, IP_EWORKER);
        } else {
            send_job(w);
        }
    } else {
        pthread_cond_broadcast(&ex->idle);
    }
}

static void *io_main(void *arg)
{
    struct ip_exec *ex = arg;
    struct pollfd *pfd = calloc((size_t)ex->nworkers + 1, sizeof *pfd);
    int *idx = calloc((size_t)ex->nworkers + 1, sizeof *idx);

    if (!pfd || !idx) {
        free(pfd);
        free(idx);
        return NULL;
    }
    for (;;) {
        int n = 0;

        pthread_mutex_lock(&ex->lock);
        if (ex->stopping) {
            pthread_mutex_unlock(&ex->lock);
            break;
        }
        pfd[n].fd = ex->wake[0];
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < ex->nworkers; i++) {
            if (ex->w[i].fd < 0 || ex->w[i].waiter)
                continue;
            /* Idle: a hang-up (always reported) is all there is to see. */
            pfd[n].fd = ex->w[i].fd;
            pfd[n].events = ex->w[i].busy ? POLLIN : 0;
            idx[n++] = i;
        }
        pthread_mutex_unlock(&ex->lock);

        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        pthread_mutex_lock(&ex->lock);
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] < 0) {
                char buf[64];
                while (read(ex->wake[0], buf, sizeof buf) > 0)
                    ;
                continue;
            }
            struct worker *w = &ex->w[idx[k]];
            if (w->fd != pfd[k].fd || w->waiter)
                continue;
            struct reply r;
            ssize_t got = (pfd[k].revents & POLLIN) ? recv(w->fd, &r, sizeof r, MSG_DONTWAIT) : 0;
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got == (ssize_t)sizeof r && w->busy) {
                take_reply(ex, w, &r);
            } else {
                handle_death(ex, idx[k]);
            }
        }
        pthread_mutex_unlock(&ex->lock);
    }
    free(pfd);
    free(idx);
    return NULL;
}

static void procs_fini(struct ip_exec *ex);

static int procs_init(struct ip_exec **out, const struct ip_exec_config *cfg, struct ip_error *err)
{
    struct ip_exec *ex = calloc(1, sizeof *ex);

    *out = NULL;
    if (!ex)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    ex->chain = *cfg->chain;
    if (cfg->stall_pidfile)
        snprintf(ex->stall_pidfile, sizeof ex->stall_pidfile, "%s", cfg->stall_pidfile);
    ex->parent = getpid();
    ex->wake[0] = ex->wake[1] = -1;
    ex->cancel_pipe[0] = ex->cancel_pipe[1] = -1;
    ex->w = calloc((size_t)cfg->workers, sizeof *ex->w);
    if (!ex->w || ip__donelist_init(&ex->done) != 0) {
        free(ex->w);
        free(ex);
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->idle, NULL);
    ex->nworkers = cfg->workers;
    for (int i = 0; i < ex->nworkers; i++)
        ex->w[i].fd = -1;
    if (pipe2(ex->wake, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(ex->cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        procs_fini(ex);
        return ip_error_set(err, IP_EWORKER, "cannot create pipe: %s", strerror(errno));
    }
    for (int i = 0; i < ex->nworkers; i++) {
        if (spawn(ex, i) != 0) {
            int e = errno, n = ex->nworkers;   /* socketpair or fork failed */
            procs_fini(ex);
            return ip_error_set(err, IP_EWORKER, "cannot start worker process %d of %d: %s", i + 1, n,
                                strerror(e));
        }
    }
    if (pthread_create(&ex->io, NULL, io_main, ex) != 0) {
        procs_fini(ex);
        return ip_error_set(err, IP_EWORKER, "cannot start worker I/O thread");
    }
    ex->io_started = 1;
    *out = ex;
    return 0;
}

static int is_idle(const struct worker *w) { return w->fd >= 0 && !w->busy; }

/* Waits for an idle worker, worker `prefer` first (-1: none), and sends it
 * job, for waiter (or NULL). Returns the
 * worker's index, or IP_EINTR once cancelled. Called under ex->lock. */
static int start_job(struct ip_exec *ex, const struct ip_job *job, struct waiter *waiter, int prefer)
{
    for (;;) {
        int k = prefer >= 0 && is_idle(&ex->w[prefer]) ? prefer : 0;

        if (ex->cancelled)
            return IP_EINTR;
        while (k < ex->nworkers && !is_idle(&ex->w[k]))
            k++;
        if (k < ex->nworkers) {
            struct worker *w = &ex->w[k];
            w->job = *job;
            w->job.attempts = 0;
            w->busy = 1;
            w->waiter = waiter;
            send_job(w);
            return k;
        }
        pthread_cond_wait(&ex->idle, &ex->lock);
    }
}

static int procs_submit(struct ip_exec *ex, const struct ip_job *job)
{
    int rc;

    if (job->kind == IP_JOB_END)
        return ip__donelist_post(&ex->done, job);
    pthread_mutex_lock(&ex->lock);
    rc = start_job(ex, job, NULL, -1);
    pthread_mutex_unlock(&ex->lock);
    if (rc < 0)
        return rc;
    poke(ex);   /* the I/O thread polls this worker for its reply from now on */
    return 0;
}

/* The worker run() callers prefer: one per calling thread, numbered in the
 * order threads first call (a loader keeps its worker, whose mappings of
 * the loader's arena blocks are then already made). */
static int preferred_worker(struct ip_exec *ex)
{
    static atomic_uint next_thread;
    static _Thread_local unsigned thread_no = 0;

    if (!thread_no)
        thread_no = atomic_fetch_add(&next_thread, 1) + 1;
    return (int)((thread_no - 1) % (unsigned)ex->nworkers);
}

static int procs_run(struct ip_exec *ex, struct ip_job *job)
{
    struct waiter wt = {0};
    struct worker *w;
    int k, fd;

    pthread_mutex_lock(&ex->lock);
    k = start_job(ex, job, &wt, preferred_worker(ex));
    if (k < 0) {
        pthread_mutex_unlock(&ex->lock);
        return k;
    }
    w = &ex->w[k];
    fd = w->fd;
    pthread_mutex_unlock(&ex->lock);
    /* The worker has a waiter: nobody else reads fd, and only this thread
     * replaces the worker, under the lock, until it is done. */
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = ex->cancel_pipe[0], .events = POLLIN}};
        struct reply r;
        ssize_t got;

        if (poll(pfd, 2, -1) < 0) {
            if (errno != EINTR)   /* ENOMEM: try again in a moment */
                nanosleep(&(struct timespec){0, 1000000}, NULL);
            continue;
        }
        pthread_mutex_lock(&ex->lock);
        if (pfd[1].revents || ex->cancelled) {
            /* The job's reply, if any, goes to the (cancelled) done list:
             * the I/O thread takes the worker over. */
            w->waiter = NULL;
            pthread_mutex_unlock(&ex->lock);
            poke(ex);
            return IP_EINTR;
        }
        got = pfd[0].revents ? recv(fd, &r, sizeof r, MSG_DONTWAIT) : -1;
        if (got == (ssize_t)sizeof r) {
            take_reply(ex, w, &r);
        } else if (got >= 0 || (pfd[0].revents && errno != EAGAIN && errno != EINTR)) {
            handle_death(ex, k);   /* completes the job, or sends it to a new worker */
            fd = w->fd;
        }
        pthread_mutex_unlock(&ex->lock);
        if (wt.done)
            break;
    }
    *job = wt.job;
    return 0;
}

static int procs_wait(struct ip_exec *ex, struct ip_job *done)
{
    return ip__donelist_wait(&ex->done, done);
}

static void procs_cancel(struct ip_exec *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->cancelled = 1;
    pthread_cond_broadcast(&ex->idle);
    pthread_mutex_unlock(&ex->lock);
    ip__donelist_cancel(&ex->done);
    signal_pipe(ex->cancel_pipe[1]);
    poke(ex);
}

static void procs_fini(struct ip_exec *ex)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stopping = 1;
    pthread_mutex_unlock(&ex->lock);
    if (ex->io_started) {
        poke(ex);
        pthread_join(ex->io, NULL);
    }
    /* Every worker is killed before any is waited for: they exit (and
     * unmap what they touched of the arena) at once, on their own cores. */
    for (int i = 0; i < ex->nworkers; i++)
        if (ex->w[i].pid > 0)
            kill(ex->w[i].pid, SIGKILL);
    for (int i = 0; i < ex->nworkers; i++)
        reap(&ex->w[i]);
    if (ex->wake[0] >= 0)
        close(ex->wake[0]);
    if (ex->wake[1] >= 0)
        close(ex->wake[1]);
    for (int k = 0; k < 2; k++)
        if (ex->cancel_pipe[k] >= 0)
            close(ex->cancel_pipe[k]);
    ip__donelist_destroy(&ex->done);
    pthread_cond_destroy(&ex->idle);
    pthread_mutex_destroy(&ex->lock);
    free(ex->w);
    free(ex);
}

static long procs_rss(struct ip_exec *ex)
{
    long v;
    pthread_mutex_lock(&ex->lock);
    v = ex->peak_rss_kb;
    pthread_mutex_unlock(&ex->lock);
    return v;
}

const struct ip_exec_ops ip__exec_procs_ops = {
    .name = "procs",
    .init = procs_init,
    .submit = procs_submit,
    .wait = procs_wait,
    .cancel = procs_cancel,
    .fini = procs_fini,
    .worker_peak_rss_kb = procs_rss,
    .run = procs_run,
};
