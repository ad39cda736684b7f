/* imgpar command line: parse options, plan outputs, run the pipeline.
 *
 * DESIGN: everything that touches pixels lives in libimgpar; the CLI turns
 * arguments into a struct ip_pipeline_config and a source of tasks: a
 * checked task list for INPUT arguments (plan.c, which refuses plans that
 * would lose data before any work starts) or a streamed --files-from list
 * (filelist.c, which refuses collisions as entries come). It prints one
 * line per failed file and writes the JSON report (report.c), draws the
 * progress line on a terminal (progress.c), and maps the outcome to an
 * exit status. Signals are handled by a dedicated thread (sigwait): the
 * first SIGINT/SIGTERM/SIGHUP cancels the pipeline, which discards
 * unfinished outputs and reaps its workers; a second one exits at once
 * (nothing is left behind either way: temporaries are unnamed and the
 * shared memory was unlinked when it was mapped). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static struct {
    pthread_mutex_t lock;
    struct ip_pipeline *pipeline;   /* set while a run may be cancelled */
    int signals;                    /* stop signals received */
} sig_state = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        pthread_mutex_lock(&sig_state.lock);
        if (++sig_state.signals > 1)
            _exit(EXIT_INTERRUPTED);
        if (sig_state.pipeline)
            ip_pipeline_cancel(sig_state.pipeline);
        pthread_mutex_unlock(&sig_state.lock);
    }
    return NULL;
}

static void filelist_result(void *ctx, const struct ip_result *r)
{
    cli_filelist_done(ctx, r->out_path);
}

int main(int argc, char **argv)
{
    static sigset_t sigs;
    struct cli_options o;
    struct cli_report report;
    struct cli_plan plan;
    struct cli_filelist *list = NULL;
    struct ip_source source;
    struct ip_pipeline *pipeline = NULL;
    struct ip_stats stats;
    struct ip_error err;
    pthread_t sig_thread;
    int rc, pre_failed = 0, report_rc;

    /* Block the stop signals in every thread from the start: a signal that
     * arrives while planning stays pending and cancels the run as soon as the
     * signal thread exists; the pipeline's threads inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Past RLIMIT_FSIZE a write fails with EFBIG (that output is reported
     * failed, the batch goes on) instead of the signal killing imgpar. */
    signal(SIGXFSZ, SIG_IGN);

    if (argc > 1 && !strcmp(argv[1], "bench"))
        return cli_bench_main(argc - 1, argv + 1);
    cli_parse(argc, argv, 1, &o);
    ip_pipeline_config_resolve(&o.cfg);
    memset(&plan, 0, sizeof plan);
    if (o.files_from)
        list = cli_filelist_open(&o, &report);
    else
        cli_plan_build(&plan, &o);

    if (o.dry_run) {
        uint64_t bad = 0;
        if (list) {
            bad = cli_filelist_dry_run(list, stdout);
            cli_filelist_close(list);
        } else {
            cli_plan_dry_run(&plan, stdout);
            pre_failed = plan.pre_failed;
            cli_plan_free(&plan);
        }
        if (fflush(stdout) != 0)
            return EXIT_SOME_FAILED;
        return (bad || pre_failed) ? EXIT_SOME_FAILED : 0;
    }

    cli_report_init(&report, &o);
    if (list) {
        report.on_pipeline_result = filelist_result;
        report.on_pipeline_ctx = list;
    } else {
        report.total = plan.count;
    }

    /* The procs executor forks here, before this process has any other thread. */
    o.cfg.on_result = cli_report_result;
    o.cfg.cb_ctx = &report;
    rc = ip_pipeline_create(&pipeline, &o.cfg, &err);
    if (rc) {
        fprintf(stderr, "imgpar: cannot start: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        cli_plan_free(&plan);
        cli_filelist_close(list);
        cli_report_close(&report);
        return EXIT_NO_START;
    }
    sig_state.pipeline = pipeline;
    if (pthread_create(&sig_thread, NULL, signal_main, &sigs) != 0) {
        fprintf(stderr, "imgpar: cannot start signal thread\n");
        ip_pipeline_destroy(pipeline);
        cli_plan_free(&plan);
        cli_filelist_close(list);
        cli_report_close(&report);
        return EXIT_NO_START;
    }

    if (list)
        cli_filelist_source(list, &source);
    else {
        cli_plan_order(&plan);
        cli_plan_source(&plan, &report, &source);
    }
    report.t0_ns = cli_now_ns();
    cli_progress_start(&report);
    ip_error_clear(&err);
    rc = ip_pipeline_run(pipeline, &source, &stats, &err);

    pthread_mutex_lock(&sig_state.lock);
    sig_state.pipeline = NULL;
    pthread_mutex_unlock(&sig_state.lock);
    ip_pipeline_destroy(pipeline);
    cli_progress_finish(&report, rc == IP_EINTR);

    if (o.show_stats) {
        /* Count what the CLI decided itself (skips, refusals) as well. */
        stats.images_ok = report.ok;
        stats.images_failed = report.failed;
        stats.images_skipped = report.skipped;
        cli_print_stats(stderr, &stats, o.cfg.exec);
    }
    report_rc = cli_report_close(&report);
    pre_failed = plan.pre_failed;
    cli_plan_free(&plan);
    if (rc == IP_EINTR) {
        cli_filelist_close(list);
        fprintf(stderr, "imgpar: interrupted\n");
        return EXIT_INTERRUPTED;
    }
    if (rc && list && cli_filelist_error(list)) {
        /* The list could not be read to its end: what was read was processed. */
        cli_filelist_close(list);
        return EXIT_SOME_FAILED;
    }
    cli_filelist_close(list);
    if (rc) {
        fprintf(stderr, "imgpar: %s\n", err.msg[0] ? err.msg : ip_strerror(rc));
        return EXIT_NO_START;
    }
    return (report.failed || pre_failed || report_rc) ? EXIT_SOME_FAILED : 0;
}
