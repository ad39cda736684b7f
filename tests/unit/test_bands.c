/* Band independence: computing an image as bands of random heights (1-row
 * bands included), in any order, on any thread, with a reused, fresh or NULL
 * scratch, gives exactly the bytes of the whole-image run, and writes
 * nothing outside the band's rows. The SIMD levels agree byte for byte. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/filter.h"
#include "imgpar/image.h"
#include "filter_internal.h"
#include "check.h"

static unsigned long long seed = 0x5eed1234abcdull;

static uint32_t rnd(uint32_t n)
{
    return (uint32_t)(check_rand(&seed) % n);
}

/* A padded image: stride larger than the row, padding bytes set to 0xEE. */
static int make_image(struct ip_image *img, uint32_t w, uint32_t h, uint32_t c, size_t pad)
{
    img->width = w, img->height = h, img->channels = c;
    img->stride = (size_t)w * c + pad;
    img->pixels = malloc(img->stride * h);
    if (!img->pixels)
        return -1;
    memset(img->pixels, 0xEE, img->stride * h);
    return 0;
}

static void random_pixels(struct ip_image *img)
{
    int sparse_alpha = rnd(3) == 0;
    for (uint32_t y = 0; y < img->height; y++)
        for (size_t i = 0; i < (size_t)img->width * img->channels; i++) {
            uint8_t v = (uint8_t)check_rand(&seed);
            if (sparse_alpha && (img->channels % 2 == 0) && i % img->channels == img->channels - 1)
                v = rnd(10) ? 0 : v;
            img->pixels[y * img->stride + i] = v;
        }
}

static void random_chain(struct ip_chain *chain, int kind)
{
    static const double sigmas[] = {0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0};

    ip_chain_init(chain);
    switch (kind) {
    case 0:
        ip_chain_add_gray(chain, IP_GRAY_601);
        ip_chain_add_gauss(chain, sigmas[rnd(8)]);
        break;
    case 1:
        ip_chain_add_gauss(chain, sigmas[rnd(8)]);
        ip_chain_add_box(chain, 1 + (int)rnd(6));
        break;
    case 2:
        ip_chain_add_box(chain, 1 + (int)rnd(6));
        ip_chain_add_gauss(chain, sigmas[rnd(8)]);
        ip_chain_add_gray(chain, IP_GRAY_709);
        break;
    default:
        for (int n = 1 + (int)rnd(4); n > 0; n--) {
            switch (rnd(4)) {
            case 0: ip_chain_add_gray(chain, rnd(2) ? IP_GRAY_601 : IP_GRAY_709); break;
            case 1: ip_chain_add_box(chain, 1 + (int)rnd(8)); break;
            default: ip_chain_add_gauss(chain, 0.3 + rnd(80) / 10.0); break;
            }
        }
    }
}

/* Row bytes equal, padding untouched. */
static int same_image(const struct ip_image *a, const struct ip_image *b)
{
    size_t row = (size_t)a->width * a->channels;
    for (uint32_t y = 0; y < a->height; y++) {
        if (memcmp(a->pixels + y * a->stride, b->pixels + y * b->stride, row) != 0)
            return 0;
        for (size_t i = row; i < b->stride; i++)
            if (b->pixels[y * b->stride + i] != 0xEE)
                return 0;
    }
    return 1;
}

static void clear_rows(struct ip_image *img)
{
    for (uint32_t y = 0; y < img->height; y++)
        memset(img->pixels + y * img->stride, 0x5A, (size_t)img->width * img->channels);
}

/* Cuts [0, h) into bands; returns the count. Mostly short bands, often 1 row. */
static int cut_bands(uint32_t h, uint32_t *starts)
{
    int n = 0;
    for (uint32_t y = 0; y < h; n++) {
        uint32_t len = rnd(3) == 0 ? 1 : 1 + rnd(rnd(2) ? 4 : h);
        starts[n] = y;
        y = y + len > h ? h : y + len;
    }
    starts[n] = h;
    return n;
}

struct job {
    const struct ip_chain *chain;
    const struct ip_image *src;
    struct ip_image *dst;
    const uint32_t *starts;
    int first, step, count;
    int rc;
};

static void *run_job(void *arg)
{
    struct job *job = arg;
    struct ip_scratch *scratch = ip_scratch_new();
    job->rc = scratch ? 0 : IP_ENOMEM;
    for (int b = job->first; b < job->count && job->rc == 0; b += job->step)
        job->rc = ip_chain_run_rows(job->chain, job->src, job->dst, job->starts[b],
                                    job->starts[b + 1], scratch);
    ip_scratch_free(scratch);
    return NULL;
}

static void one_case(uint32_t w, uint32_t h, uint32_t c, const struct ip_chain *chain,
                     struct ip_scratch *scratch)
{
    struct ip_image src, whole, bands;
    uint32_t oc = ip_chain_out_channels(chain, c);
    uint32_t *starts = malloc(sizeof *starts * (h + 1));
    int n;

    if (!starts || make_image(&src, w, h, c, rnd(3) * 7) || make_image(&whole, w, h, oc, 0)
        || make_image(&bands, w, h, oc, 1 + rnd(5))) {
        CHECK(!"out of memory");
        return;
    }
    random_pixels(&src);
    CHECK_EQ_INT(ip_chain_run(chain, &src, &whole, scratch), 0);

    /* In order, shared scratch. */
    n = cut_bands(h, starts);
    clear_rows(&bands);
    for (int b = 0; b < n; b++)
        CHECK_EQ_INT(ip_chain_run_rows(chain, &src, &bands, starts[b], starts[b + 1], scratch), 0);
    CHECK(same_image(&whole, &bands));

    /* Reverse order, each band checked to write only its own rows; NULL scratch. */
    n = cut_bands(h, starts);
    clear_rows(&bands);
    for (int b = n - 1; b >= 0; b--) {
        int outside = 0;
        CHECK_EQ_INT(ip_chain_run_rows(chain, &src, &bands, starts[b], starts[b + 1],
                                       b % 2 ? NULL : scratch), 0);
        for (uint32_t y = 0; y < starts[b]; y++)
            for (size_t i = 0; i < (size_t)w * oc; i++)
                outside += bands.pixels[y * bands.stride + i] != 0x5A;
        CHECK_EQ_INT(outside, 0);
    }
    CHECK(same_image(&whole, &bands));

    /* Two threads taking alternate bands. */
    n = cut_bands(h, starts);
    clear_rows(&bands);
    {
        struct job jobs[2];
        pthread_t tid[2];
        for (int t = 0; t < 2; t++) {
            jobs[t] = (struct job){chain, &src, &bands, starts, t, 2, n, -1};
            CHECK_EQ_INT(pthread_create(&tid[t], NULL, run_job, &jobs[t]), 0);
        }
        for (int t = 0; t < 2; t++) {
            pthread_join(tid[t], NULL);
            CHECK_EQ_INT(jobs[t].rc, 0);
        }
    }
    CHECK(same_image(&whole, &bands));

    /* Portable and SSE2 kernels give the same bytes as the default (AVX2 where present). */
    for (int level = 0; level <= 1; level++) {
        clear_rows(&bands);
        ip__simd_limit(level);
        CHECK_EQ_INT(ip_chain_run(chain, &src, &bands, scratch), 0);
        ip__simd_limit(2);
        CHECK(same_image(&whole, &bands));
    }

    free(src.pixels);
    free(whole.pixels);
    free(bands.pixels);
    free(starts);
}

int main(void)
{
    struct ip_scratch *scratch = ip_scratch_new();
    struct ip_chain chain;
    int cases = 0;

    CHECK(scratch != NULL);
    for (int i = 0; i < 400; i++) {
        uint32_t w = 1 + rnd(70), h = 1 + rnd(i % 4 ? 12 : 80), c = 1 + rnd(4);
        random_chain(&chain, i % 5);
        one_case(w, h, c, &chain, scratch);
        cases++;
    }
    /* Wider and taller shapes, one column, one row. */
    {
        static const uint32_t shapes[][2] = {{257, 61}, {1000, 9}, {1, 300}, {300, 1}, {3, 2}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int kind = 0; kind < 4; kind++) {
                random_chain(&chain, kind);
                one_case(shapes[s][0], shapes[s][1], 1 + rnd(4), &chain, scratch);
                cases++;
            }
    }
    /* Huge width: scratch stays a few rows of it. */
    ip_chain_default(&chain);
    one_case(20000, 24, 3, &chain, scratch);
    ip_chain_init(&chain);
    ip_chain_add_box(&chain, 4);
    ip_chain_add_gauss(&chain, 1.5);
    one_case(20000, 17, 4, &chain, scratch);
    /* The longest chain, halo larger than the image. */
    ip_chain_init(&chain);
    while (chain.count < IP_CHAIN_MAX)
        chain.count % 3 ? ip_chain_add_gauss(&chain, 1.0) : ip_chain_add_box(&chain, 2);
    one_case(23, 19, 4, &chain, scratch);
    cases += 3;

    ip_scratch_free(scratch);
    printf("test_bands: %d images\n", cases);
    return check_exit("test_bands");
}
