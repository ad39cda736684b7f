/* PNG decode speed: the fast path (codec_png_fast.c) against the libpng
 * path, through ip_decode, file already in memory, single thread.
 *
 *   bench_png_decode [-n RUNS] FILE...
 *
 * For each file and each path: RUNS timed decodes (default 5) after one
 * warm-up, best wall-clock time and best thread CPU time reported (on a
 * shared machine the CPU time is the steadier of the two); every run's
 * output checksum must equal the libpng path's, and the fast path must
 * actually have handled the file. One JSON object per line on stdout:
 *   {"file":..., "path":"libpng"|"fast", "width":..., "height":..., "channels":...,
 *    "runs":..., "best_ms":..., "ns_per_pixel":..., "cpu_ns_per_pixel":...,
 *    "checksum":"..."}
 * then a summary line {"file":..., "speedup":..., "cpu_speedup":...}. Exit
 * status 1 when a checksum differs or the fast path declined.
 *
 * Photo-like inputs: /usr/bin/python3 tests/conformance/make_bench_png.py DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec_internal.h"
#include "imgpar/codec.h"
#include "testutil.h"

static double clock_s(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* FNV-1a over the shape and the pixel bytes. */
static uint64_t checksum(const struct ip_image *img)
{
    uint64_t h = 1469598103934665603ull;
    size_t i, n = img->stride * img->height;
    uint32_t shape[3] = {img->width, img->height, img->channels};
    const uint8_t *s = (const uint8_t *)shape;

    for (i = 0; i < sizeof shape; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    for (i = 0; i < n; i++)
        h = (h ^ img->pixels[i]) * 1099511628211ull;
    return h;
}

struct result {
    double best, best_cpu;
    uint64_t sum;
    struct ip_image shape;
    int ok;
};

static struct result run(const uint8_t *data, size_t len, int fast, int runs)
{
    struct result r = {1e30, 1e30, 0, {0}, 1};
    struct ip_decode_opts opts;
    int i;

    ip_decode_opts_default(&opts);
    ip__png_fast_set_enabled(fast);
    for (i = -1; i < runs; i++) {
        struct ip_image img;
        struct ip_error err;
        double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t0 = clock_s(CLOCK_MONOTONIC), dt, dc;
        int rc = ip_decode(data, len, &opts, &img, NULL, &err);
        uint64_t sum;

        dt = clock_s(CLOCK_MONOTONIC) - t0;
        dc = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        if (rc) {
            fprintf(stderr, "decode failed: %s\n", err.msg);
            r.ok = 0;
            return r;
        }
        sum = checksum(&img);
        if (i < 0) {
            r.sum = sum;
            r.shape = img;
        } else if (sum != r.sum) {
            fprintf(stderr, "checksum changed between runs\n");
            r.ok = 0;
        }
        if (i >= 0 && dt < r.best)
            r.best = dt;
        if (i >= 0 && dc < r.best_cpu)
            r.best_cpu = dc;
        ip_image_free(&img);
    }
    return r;
}

int main(int argc, char **argv)
{
    int runs = 5, argi = 1, status = 0;

    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        runs = atoi(argv[2]);
        argi = 3;
    }
    if (argi >= argc || runs < 1) {
        fprintf(stderr, "usage: %s [-n RUNS] FILE...\n", argv[0]);
        return 2;
    }
    for (; argi < argc; argi++) {
        size_t len;
        uint8_t *data = test_read_file(argv[argi], &len);
        struct ip_decode_opts opts;
        struct ip_image probe;
        struct ip_error err;
        struct result r[2];
        int p;

        /* The fast path must handle the file (else the numbers mean nothing). */
        ip_decode_opts_default(&opts);
        ip__png_fast_set_enabled(1);
        memset(&probe, 0, sizeof probe);
        ip_error_clear(&err);
        if (ip__png_decode_fast(data, len, NULL, &opts, &probe, &err) != 0) {
            fprintf(stderr, "%s: the fast path declines this file\n", argv[argi]);
            status = 1;
        }
        ip_image_free(&probe);

        r[0] = run(data, len, 0, runs);
        r[1] = run(data, len, 1, runs);
        for (p = 0; p < 2; p++) {
            double px = (double)r[p].shape.width * r[p].shape.height;
            printf("{\"file\":\"%s\",\"path\":\"%s\",\"width\":%u,\"height\":%u,\"channels\":%u,"
                   "\"runs\":%d,\"best_ms\":%.3f,\"ns_per_pixel\":%.3f,\"cpu_ns_per_pixel\":%.3f,"
                   "\"checksum\":\"%016llx\"}\n",
                   argv[argi], p ? "fast" : "libpng", r[p].shape.width, r[p].shape.height,
                   r[p].shape.channels, runs, r[p].best * 1e3, px > 0 ? r[p].best * 1e9 / px : 0.0,
                   px > 0 ? r[p].best_cpu * 1e9 / px : 0.0, (unsigned long long)r[p].sum);
        }
        if (!r[0].ok || !r[1].ok || r[0].sum != r[1].sum) {
            fprintf(stderr, "%s: outputs differ or a decode failed\n", argv[argi]);
            status = 1;
        }
        printf("{\"file\":\"%s\",\"speedup\":%.2f,\"cpu_speedup\":%.2f}\n", argv[argi],
               r[0].best / r[1].best, r[0].best_cpu / r[1].best_cpu);
        fflush(stdout);
        free(data);
    }
    return status;
}
