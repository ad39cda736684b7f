/* The progress line, for people at a terminal.
 *
 * DESIGN: only when stderr is a terminal (and not -q), one thread redraws a
 * single line in place ("\r...\033[K") every 100 ms: images done (of the
 * total, when the input list is known), MP/s, failures so far and an ETA.
 * It reads the counters of struct cli_report under its lock, and every
 * other stderr line is printed under the same lock after erasing the
 * progress line (cli_progress_clear), so lines never interleave. At the end
 * the line is replaced by one summary line. When stderr is not a terminal
 * nothing of this is printed, so scripts see only the lines they asked for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_NS 100000000ull   /* at most 10 redraws a second */

static void fmt_duration(char *buf, size_t size, double s)
{
    unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);

    if (t >= 3600)
        snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%lu:%02lu", t / 60, t % 60);
}

/* Draws the line; with r->lock held. */
static void draw(struct cli_report *r)
{
    uint64_t done = r->ok + r->failed + r->skipped;
    double el = (double)(cli_now_ns() - r->t0_ns) / 1e9;
    char eta[32] = "";

    if (el <= 0)
        el = 1e-9;
    if (r->total) {
        /* ETA from the rate of inputs done (skips are nearly free, but
         * counting them keeps the estimate honest at the start of a resume). */
        if (done > 0 && done < r->total) {
            char d[24];
            fmt_duration(d, sizeof d, (double)(r->total - done) * el / (double)done);
            snprintf(eta, sizeof eta, ", ETA %s", d);
        }
        fprintf(stderr, "\rimgpar: %llu/%llu images, %.1f MP/s, %llu failed%s\033[K",
                (unsigned long long)done, (unsigned long long)r->total, r->megapixels / el,
                (unsigned long long)r->failed, eta);
    } else {
        fprintf(stderr, "\rimgpar: %llu images, %.1f MP/s, %llu failed\033[K",
                (unsigned long long)done, r->megapixels / el, (unsigned long long)r->failed);
    }
    fflush(stderr);
    r->line_shown = 1;
}

void cli_progress_clear(struct cli_report *r)
{
    if (r->line_shown) {
        fputs("\r\033[K", stderr);
        r->line_shown = 0;
    }
}

static void *progress_main(void *arg)
{
    struct cli_report *r = arg;
    struct timespec next;

    pthread_mutex_lock(&r->lock);
    clock_gettime(CLOCK_REALTIME, &next);
    while (!r->progress_stop) {
        next.tv_nsec += (long)REDRAW_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        while (!r->progress_stop &&
               pthread_cond_timedwait(&r->progress_cond, &r->lock, &next) != ETIMEDOUT)
            ;
        if (!r->progress_stop)
            draw(r);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void cli_progress_start(struct cli_report *r)
{
    if (r->quiet || !isatty(STDERR_FILENO))
        return;
    r->progress = 1;
    if (pthread_create(&r->progress_thread, NULL, progress_main, r) == 0)
        r->progress_started = 1;
}

void cli_progress_finish(struct cli_report *r, int interrupted)
{
    uint64_t done;
    double el;

    pthread_mutex_lock(&r->lock);
    r->progress_stop = 1;
    pthread_cond_broadcast(&r->progress_cond);
    pthread_mutex_unlock(&r->lock);
    if (r->progress_started)
        pthread_join(r->progress_thread, NULL);
    r->progress_started = 0;

    pthread_mutex_lock(&r->lock);
    cli_progress_clear(r);
    if (r->progress) {
        done = r->ok + r->failed + r->skipped;
        el = (double)(cli_now_ns() - r->t0_ns) / 1e9;
        fprintf(stderr, "imgpar: %s %llu images in %.1f s: %llu ok, %llu skipped, %llu failed, %.1f MP/s\n",
                interrupted ? "interrupted after" : "done:", (unsigned long long)done, el,
                (unsigned long long)r->ok, (unsigned long long)r->skipped,
                (unsigned long long)r->failed, el > 0 ? r->megapixels / el : 0.0);
    }
    r->progress = 0;
    pthread_mutex_unlock(&r->lock);
}
