/* Reporting: one line per failed file, optional per-file lines, the JSON
 * Lines report (--report), counters for the progress line, statistics.
 *
 * DESIGN: every result goes through record(), under one lock: results of
 * the pipeline (cli_report_result, its on_result callback, called from its
 * threads) and decisions the CLI took itself while feeding it (skips,
 * inputs refused before they started), which come from the source, on
 * another thread. record() writes one JSON object per input and flushes it,
 * so an interrupted run leaves a valid report of what finished. JSON
 * strings must be UTF-8: a path that is not gets its invalid bytes escaped
 * as \u00XX (readable, but ambiguous) and its exact bytes in hex in a
 * second field (path_hex, output_hex). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

uint64_t cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void cli_report_init(struct cli_report *r, const struct cli_options *o)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->progress_cond, NULL);
    r->verbose = o->verbose;
    r->quiet = o->quiet;
    r->t0_ns = cli_now_ns();
    if (o->report_path && !o->dry_run) {
        if (!strcmp(o->report_path, "-")) {
            r->json = stdout;
            r->json_is_stdout = 1;
        } else {
            r->json = fopen(o->report_path, "we");
            if (!r->json) {
                fprintf(stderr, "imgpar: --report %s: %s\n", o->report_path, strerror(errno));
                exit(EXIT_USAGE);
            }
        }
    }
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf; /* no overlongs, no surrogates */
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = utf8_len(p);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

/* Writes s as a JSON string; bytes that are not valid UTF-8 become \u00XX. */
static void json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    while (*p) {
        int n = utf8_len(p);
        if (n == 1) {
            switch (*p) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\t': fputs("\\t", f); break;
            case '\r': fputs("\\r", f); break;
            default:
                if (*p < 0x20 || *p == 0x7f)
                    fprintf(f, "\\u%04x", *p);
                else
                    fputc(*p, f);
            }
            p++;
        } else if (n == 0) {
            fprintf(f, "\\u%04x", *p);
            p++;
        } else {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        }
    }
    fputc('"', f);
}

/* A path as it goes into a message line (see cli_msg). */
static void put_path(FILE *f, const char *s)
{
    const unsigned char *p;
    int plain = 1;

    for (p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            plain = 0;
            break;
        }
        p += n;
    }
    if (plain) {
        fputs(s, f);
        return;
    }
    fputs("$'", f);
    for (p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n > 1) {
            fwrite(p, 1, (size_t)n, f);
            p += n;
            continue;
        }
        switch (*p) {
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\'': fputs("\\'", f); break;
        default:
            if (n == 0 || *p < 0x20 || *p == 0x7f)
                fprintf(f, "\\x%02x", *p);
            else
                fputc(*p, f);
        }
        p++;
    }
    fputc('\'', f);
}

/* "imgpar: PATH<sep>message\n" as one write (see cli_msg). */
static void vmsg(const char *path, const char *sep, const char *fmt, va_list ap)
{
    char text[1024], *line = NULL;
    size_t len = 0;
    FILE *f;

    vsnprintf(text, sizeof text, fmt, ap);
    /* Built in memory and written with one call: lines from several
     * threads never interleave. */
    f = open_memstream(&line, &len);
    if (!f) {
        fprintf(stderr, "imgpar: %s%s%s\n", path ? path : "", path ? sep : "", text);
        return;
    }
    fputs("imgpar: ", f);
    if (path) {
        put_path(f, path);
        fputs(sep, f);
    }
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('\n', f);
    if (fclose(f) == 0)
        fwrite(line, 1, len, stderr);
    free(line);
}

void cli_msg(const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg(path, ": ", fmt, ap);
    va_end(ap);
}

/* "imgpar: PATH -> ..." (-v) */
static void msg_arrow(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_arrow(const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg(path, " -> ", fmt, ap);
    va_end(ap);
}

static void json_hex(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fprintf(f, "%02x", *p);
    fputc('"', f);
}

/* "name": "string"[, "name_hex": "..."] */
static void json_path_field(FILE *f, const char *name, const char *s)
{
    fprintf(f, "\"%s\":", name);
    json_str(f, s);
    if (s && !utf8_valid(s)) {
        fprintf(f, ",\"%s_hex\":", name);
        json_hex(f, s);
    }
}

static const char *status_name(enum ip_result_status s)
{
    switch (s) {
    case IP_RESULT_OK: return "ok";
    case IP_RESULT_FAILED: return "failed";
    case IP_RESULT_SKIPPED: return "skipped";
    }
    return "failed";
}

static void json_record(struct cli_report *st, const struct ip_result *r)
{
    static const enum ip_stage stages[] = {IP_STAGE_READ, IP_STAGE_DECODE, IP_STAGE_FILTER,
                                           IP_STAGE_ENCODE, IP_STAGE_WRITE};
    FILE *f = st->json;
    int decoded = r->width > 0;

    fputc('{', f);
    json_path_field(f, "path", r->in_path);
    fprintf(f, ",\"status\":\"%s\",\"error\":", status_name(r->status));
    if (r->status == IP_RESULT_FAILED)
        json_str(f, r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
    else
        fputs("null", f);
    fputc(',', f);
    json_path_field(f, "output", r->out_path);
    fputs(",\"format\":", f);
    if (r->status == IP_RESULT_FAILED && !decoded)
        fputs("null", f);
    else
        fprintf(f, "\"%s\"", ip_format_name(r->out_format));
    fputs(",\"input_format\":", f);
    if (decoded)
        fprintf(f, "\"%s\"", ip_format_name(r->in_format));
    else
        fputs("null", f);
    if (decoded)
        fprintf(f, ",\"width\":%u,\"height\":%u,\"channels\":%u", r->width, r->height, r->channels);
    else
        fputs(",\"width\":null,\"height\":null,\"channels\":null", f);
    fprintf(f, ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"seconds\":{", (unsigned long long)r->bytes_in,
            (unsigned long long)r->bytes_out);
    for (size_t i = 0; i < sizeof stages / sizeof *stages; i++)
        fprintf(f, "%s\"%s\":%.9f", i ? "," : "", ip_stage_name(stages[i]),
                (double)r->stage_ns[stages[i]] / 1e9);
    fputs("}}\n", f);
    if (fflush(f) != 0 || ferror(f)) {
        if (!st->json_broken) {
            cli_progress_clear(st);
            fprintf(stderr, "imgpar: writing the report failed: %s\n", strerror(errno));
        }
        st->json_broken = 1;
        clearerr(f);
    }
}

/* The one place results are counted and written. Called with st->lock held. */
static void record(struct cli_report *st, const struct ip_result *r)
{
    if (r->status == IP_RESULT_FAILED) {
        st->failed++;
        if (r->err.code != IP_EINTR) {
            cli_progress_clear(st);
            cli_msg(r->in_path, "%s", r->err.msg[0] ? r->err.msg : ip_strerror(r->err.code));
        }
    } else if (r->status == IP_RESULT_SKIPPED) {
        st->skipped++;
        if (st->verbose) {
            cli_progress_clear(st);
            cli_msg(r->in_path, "skipped, %s is newer", r->out_path);
        }
    } else {
        st->ok++;
        st->megapixels += (double)r->width * r->height / 1e6;
        if (r->err.msg[0] && !st->quiet) {
            cli_progress_clear(st);
            cli_msg(r->in_path, "warning: %s", r->err.msg);
        }
        if (st->verbose) {
            cli_progress_clear(st);
            msg_arrow(r->in_path, "%s (%ux%u, %llu -> %llu bytes)", r->out_path, r->width,
                    r->height, (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out);
        }
    }
    if (st->json)
        json_record(st, r);
}

void cli_report_result(void *ctx, const struct ip_result *r)
{
    struct cli_report *st = ctx;

    pthread_mutex_lock(&st->lock);
    if (st->on_pipeline_result)
        st->on_pipeline_result(st->on_pipeline_ctx, r);
    record(st, r);
    pthread_mutex_unlock(&st->lock);
}

void cli_report_skip(struct cli_report *st, const char *in_path, const char *out_path, enum ip_format fmt)
{
    struct ip_result r;

    memset(&r, 0, sizeof r);
    r.in_path = in_path;
    r.out_path = out_path;
    r.status = IP_RESULT_SKIPPED;
    r.out_format = fmt;
    if (fmt == IP_FORMAT_UNKNOWN)
        r.out_format = cli_sniff(in_path) == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;
    pthread_mutex_lock(&st->lock);
    record(st, &r);
    pthread_mutex_unlock(&st->lock);
}

void cli_report_fail(struct cli_report *st, const char *in_path, const char *out_path, int code,
                     const char *reason)
{
    struct ip_result r;

    memset(&r, 0, sizeof r);
    r.in_path = in_path;
    r.out_path = out_path;
    r.status = IP_RESULT_FAILED;
    r.err.code = code;
    snprintf(r.err.msg, sizeof r.err.msg, "%s", reason);
    pthread_mutex_lock(&st->lock);
    record(st, &r);
    pthread_mutex_unlock(&st->lock);
}

void cli_report_error(struct cli_report *st, const char *path, const char *reason)
{
    pthread_mutex_lock(&st->lock);
    cli_progress_clear(st);
    cli_msg(path, "%s", reason);
    pthread_mutex_unlock(&st->lock);
}

int cli_report_close(struct cli_report *st)
{
    int rc = st->json_broken ? -1 : 0;

    if (st->json && !st->json_is_stdout) {
        if (fclose(st->json) != 0 && !st->json_broken) {
            fprintf(stderr, "imgpar: writing the report failed: %s\n", strerror(errno));
            rc = -1;
        }
    } else if (st->json && fflush(st->json) != 0) {
        rc = -1;
    }
    st->json = NULL;
    return rc;
}

void cli_print_stats(FILE *f, const struct ip_stats *s, enum ip_exec_kind exec)
{
    uint64_t n = s->images_ok + s->images_failed;
    double wall = s->wall_s > 0 ? s->wall_s : 1e-9;

    fprintf(f, "imgpar stats: %llu images (%llu failed) in %.3f s: %.2f images/s, %.2f MP/s\n",
            (unsigned long long)n, (unsigned long long)s->images_failed, s->wall_s,
            (double)s->images_ok / wall, s->megapixels / wall);
    if (s->images_skipped)
        fprintf(f, "  skipped (up to date): %llu\n", (unsigned long long)s->images_skipped);
    fprintf(f, "  setup: -j %d, %s executor with %d worker%s, %d io-threads, %d writers, "
                    "queue %d, mem %llu MiB\n",
            s->jobs, ip_exec_name(exec), s->workers, s->workers == 1 ? "" : "s", s->io_threads,
            s->writers, s->queue, (unsigned long long)(s->mem >> 20));
    fprintf(f, "  busy seconds, summed over threads/processes:");
    for (int i = 0; i < IP_STAGE_COUNT; i++)
        fprintf(f, " %s %.3f", ip_stage_name((enum ip_stage)i), (double)s->busy_ns[i] / 1e9);
    fputc('\n', f);
    fprintf(f, "  peak RSS: imgpar %.1f MiB, largest worker %.1f MiB; pixels in flight at most %.1f MiB\n",
            (double)s->peak_rss_kb / 1024.0, (double)s->worker_peak_rss_kb / 1024.0,
            (double)s->peak_pixel_bytes / (1024.0 * 1024.0));
    if (s->strip_decodes)
        fprintf(f, "  decoded by strips on several cores: %llu image%s\n",
                (unsigned long long)s->strip_decodes, s->strip_decodes == 1 ? "" : "s");
    if (s->whole_on_loader)
        fprintf(f, "  from decode to output file on one thread, no hand-offs: %llu image%s\n",
                (unsigned long long)s->whole_on_loader, s->whole_on_loader == 1 ? "" : "s");
}
