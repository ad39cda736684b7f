/* Kernel benchmark: single thread, whole image, scratch reused.
 *
 * usage: bench_kernels [runs] [width] [height] [simd_level]
 *   simd_level caps the kernels: 2 AVX2 (default, if the CPU has it), 1 SSE2,
 *   0 portable C.
 * For each case it prints one line of key=value pairs with the best of `runs`
 * in ns per pixel; every run's output checksum must equal the first run's,
 * otherwise it exits 1. A benchmark, not a test: meson builds it, nobody
 * registers it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imgpar/filter.h"
#include "imgpar/image.h"
#include "filter_internal.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint64_t checksum(const struct ip_image *img)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (uint32_t y = 0; y < img->height; y++) {
        const uint8_t *row = img->pixels + y * img->stride;
        for (size_t i = 0; i < (size_t)img->width * img->channels; i++)
            h = (h ^ row[i]) * 1099511628211ull;
    }
    return h;
}

/* Smooth gradients plus noise, roughly photo-like; content does not change
 * the cost of integer kernels much. */
static void fill(struct ip_image *img)
{
    uint32_t s = 12345;
    for (uint32_t y = 0; y < img->height; y++)
        for (uint32_t x = 0; x < img->width; x++)
            for (uint32_t c = 0; c < img->channels; c++) {
                s ^= s << 13, s ^= s >> 17, s ^= s << 5;
                img->pixels[y * img->stride + x * img->channels + c] =
                    (uint8_t)((x * (c + 1) + y * 2) / 16 + (s & 31));
            }
}

static int bench(const char *name, const struct ip_chain *chain, const struct ip_image *src,
                 int runs, struct ip_scratch *scratch)
{
    struct ip_image dst;
    uint64_t first = 0;
    double best = 1e30;
    int rc = ip_image_alloc(&dst, src->width, src->height,
                            ip_chain_out_channels(chain, src->channels), NULL, NULL);

    if (rc) {
        fprintf(stderr, "%s: alloc: %s\n", name, ip_strerror(rc));
        return 1;
    }
    for (int i = 0; i < runs; i++) {
        double t0 = now_ns(), t;
        uint64_t sum;
        if ((rc = ip_chain_run(chain, src, &dst, scratch)) != 0) {
            fprintf(stderr, "%s: %s\n", name, ip_strerror(rc));
            ip_image_free(&dst);
            return 1;
        }
        t = now_ns() - t0;
        sum = checksum(&dst);
        if (i == 0)
            first = sum;
        else if (sum != first) {
            fprintf(stderr, "%s: run %d checksum %016llx != %016llx\n", name, i,
                    (unsigned long long)sum, (unsigned long long)first);
            ip_image_free(&dst);
            return 1;
        }
        if (t < best)
            best = t;
    }
    printf("bench=%s simd=%d width=%u height=%u channels=%u runs=%d best_ns_per_pixel=%.3f "
           "checksum=%016llx\n", name, ip__simd_level(), src->width, src->height, src->channels, runs,
           best / ((double)src->width * src->height), (unsigned long long)first);
    ip_image_free(&dst);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    uint32_t width = argc > 2 ? (uint32_t)atoi(argv[2]) : 4000;
    uint32_t height = argc > 3 ? (uint32_t)atoi(argv[3]) : 3000;
    struct ip_scratch *scratch = ip_scratch_new();
    struct ip_image rgb, gray;
    struct ip_chain chain;
    int fail = 0;

    if (argc > 4)
        ip__simd_limit(atoi(argv[4]));

    if (runs < 1 || !scratch || ip_image_alloc(&rgb, width, height, 3, NULL, NULL)
        || ip_image_alloc(&gray, width, height, 1, NULL, NULL)) {
        fprintf(stderr, "usage: bench_kernels [runs>=1] [width] [height] [simd_level]\n");
        return 2;
    }
    fill(&rgb);
    fill(&gray);

    ip_chain_default(&chain);
    fail |= bench("gray601+gauss2", &chain, &rgb, runs, scratch);
    ip_chain_init(&chain);
    ip_chain_add_gray(&chain, IP_GRAY_601);
    fail |= bench("gray601", &chain, &rgb, runs, scratch);
    ip_chain_init(&chain);
    ip_chain_add_gauss(&chain, 2.0);
    fail |= bench("gauss2_gray_input", &chain, &gray, runs, scratch);
    fail |= bench("gauss2_rgb_input", &chain, &rgb, runs, scratch);
    ip_chain_init(&chain);
    ip_chain_add_box(&chain, 2);
    fail |= bench("box2_gray_input", &chain, &gray, runs, scratch);
    ip_chain_init(&chain);
    ip_chain_add_gauss(&chain, 2.0);
    {
        /* Alpha path (premultiplied, scalar): a smaller image keeps it quick. */
        struct ip_image rgba;
        if (ip_image_alloc(&rgba, width / 4 ? width / 4 : 1, height / 4 ? height / 4 : 1, 4,
                           NULL, NULL) == 0) {
            fill(&rgba);
            fail |= bench("gauss2_rgba_input", &chain, &rgba, runs, scratch);
            ip_image_free(&rgba);
        }
    }

    ip_image_free(&rgb);
    ip_image_free(&gray);
    ip_scratch_free(scratch);
    return fail;
}
