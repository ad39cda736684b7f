/* Concurrent decoding and encoding: four threads decode every valid PngSuite
 * file and the JPEG test images with both decoders (and encode the results
 * to PNG and JPEG) at the same time, and must produce exactly what a
 * single-threaded pass produced. Catches hidden global state in the codecs
 * (stb_image keeps some; see codec_stb.c). Run under -Db_sanitize=thread to
 * catch races that happen to give the right bytes.
 *
 *   test_threads CONFORMANCE_DIR */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"
#include "testutil.h"

#define THREADS 4
#define MAX_FILES 256

struct job {
    char *name;
    uint8_t *data;
    size_t len;
    uint64_t sum[2];        /* reference checksum per decoder (0 = failed) */
    uint64_t encoded[2];    /* checksum of the PNG and JPEG encodings */
};

static struct job jobs[MAX_FILES];
static size_t njobs;
static int mismatches;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h)
{
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Checksums of the decode of job j with decoder d, and of encoding it. */
static void run_job(const struct job *j, int d, uint64_t *sum, uint64_t enc[2])
{
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    struct ip_buf buf = {0};

    ip_decode_opts_default(&opts);
    opts.decoder = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
    *sum = 0;
    if (ip_decode(j->data, j->len, &opts, &img, NULL, &err) != 0)
        return;
    *sum = fnv(img.pixels, img.stride * img.height,
               14695981039346656037ull ^ img.width ^ ((uint64_t)img.height << 20) ^
                   ((uint64_t)img.channels << 40));
    if (enc && d == 0) {
        if (ip_encode(&img, IP_FORMAT_PNG, NULL, &buf, &err) == 0)
            enc[0] = fnv(buf.data, buf.len, 1);
        ip_buf_free(&buf);
        if (ip_encode(&img, IP_FORMAT_JPEG, NULL, &buf, &err) == 0)
            enc[1] = fnv(buf.data, buf.len, 1);
        ip_buf_free(&buf);
    }
    ip_image_free(&img);
}

static void *worker(void *arg)
{
    size_t start = (size_t)(uintptr_t)arg, k, i;
    int d, round;

    for (round = 0; round < 2; round++) {
        for (k = 0; k < njobs; k++) {
            i = (start * 37 + k) % njobs;   /* threads walk the files in different orders */
            for (d = 0; d < 2; d++) {
                uint64_t sum, enc[2] = {0, 0};
                run_job(&jobs[i], d, &sum, d == 0 ? enc : NULL);
                if (sum != jobs[i].sum[d] ||
                    (d == 0 && (enc[0] != jobs[i].encoded[0] || enc[1] != jobs[i].encoded[1]))) {
                    pthread_mutex_lock(&lock);
                    if (mismatches++ < 5)
                        fprintf(stderr, "%s (%s): threaded result differs\n", jobs[i].name,
                                d ? "stb" : "native");
                    pthread_mutex_unlock(&lock);
                }
            }
        }
    }
    return NULL;
}

static void add(const char *dir, const char *name)
{
    char path[4096];

    if (njobs == MAX_FILES)
        exit(99);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    jobs[njobs].name = strdup(name);
    jobs[njobs].data = test_read_file(path, &jobs[njobs].len);
    njobs++;
}

int main(int argc, char **argv)
{
    char dir[4096];
    pthread_t th[THREADS];
    struct dirent *de;
    size_t i, decoded = 0;
    DIR *d;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFORMANCE_DIR\n", argv[0]);
        return 99;
    }
    snprintf(dir, sizeof dir, "%s/pngsuite/png", argv[1]);
    d = opendir(dir);
    if (!d)
        return 99;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strstr(de->d_name, ".png"))
            add(dir, de->d_name);   /* corrupt x*.png too: errors must be stable */
    closedir(d);
    snprintf(dir, sizeof dir, "%s/jpeg", argv[1]);
    add(dir, "testorig.jpg");
    add(dir, "testimgint.jpg");
    add(dir, "testimgari.jpg");
    add(dir, "monkey12.jpg");

    for (i = 0; i < njobs; i++) {
        run_job(&jobs[i], 0, &jobs[i].sum[0], jobs[i].encoded);
        run_job(&jobs[i], 1, &jobs[i].sum[1], NULL);
        decoded += jobs[i].sum[0] != 0;
    }
    CHECK(njobs == 175 + 4, "%zu input files", njobs);
    CHECK(decoded == 161 + 3, "%zu files decoded natively", decoded);
    for (i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            return 99;
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(mismatches == 0, "%d threaded results differ", mismatches);
    printf("%d threads x %zu files x 2 decoders x 2 rounds\n", THREADS, njobs);
    for (i = 0; i < njobs; i++) {
        free(jobs[i].name);
        free(jobs[i].data);
    }
    return test_finish("threads");
}
