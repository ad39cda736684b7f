/* Overflow guards and argument checks: image limits, ip_mul_size, chain
 * construction limits, and ip_chain_run_rows rejecting bad arguments
 * without touching dst. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/filter.h"
#include "imgpar/image.h"
#include "check.h"

static void image_limits(void)
{
    struct ip_limits lim, big = {UINT64_MAX, UINT32_MAX, UINT64_MAX};
    struct ip_error err;
    size_t bytes = 0;

    ip_limits_default(&lim);
    CHECK_EQ_INT(ip_image_check(640, 480, 3, &lim, &bytes, &err), 0);
    CHECK_EQ_INT(bytes, 640 * 480 * 3);
    CHECK_EQ_INT(ip_image_check(1, 1, 1, NULL, &bytes, NULL), 0);
    CHECK_EQ_INT(bytes, 1);

    ip_error_clear(&err);
    CHECK_EQ_INT(ip_image_check(IP_DEFAULT_MAX_DIM + 1, 1, 1, &lim, &bytes, &err), IP_ETOOBIG);
    CHECK_EQ_INT(err.code, IP_ETOOBIG);
    CHECK(err.msg[0] != '\0');
    CHECK_EQ_INT(ip_image_check(1, IP_DEFAULT_MAX_DIM + 1, 1, &lim, &bytes, &err), IP_ETOOBIG);
    CHECK_EQ_INT(ip_image_check(IP_DEFAULT_MAX_DIM, 1, 4, &lim, &bytes, &err), 0);
    /* 20000^2 = 4e8 > 2^28 pixels, each side below max_dim. */
    CHECK_EQ_INT(ip_image_check(20000, 20000, 1, &lim, &bytes, &err), IP_ETOOBIG);
    CHECK_EQ_INT(ip_image_check(16384, 16384, 1, &lim, &bytes, &err), 0); /* exactly 2^28 */
    CHECK_EQ_INT(ip_image_check(16384, 16385, 1, &lim, &bytes, &err), IP_ETOOBIG);
    lim.max_pixels = 100;
    CHECK_EQ_INT(ip_image_check(10, 10, 4, &lim, &bytes, &err), 0);
    CHECK_EQ_INT(ip_image_check(10, 11, 4, &lim, &bytes, &err), IP_ETOOBIG);
    lim.max_dim = 9;
    CHECK_EQ_INT(ip_image_check(10, 1, 1, &lim, &bytes, &err), IP_ETOOBIG);

    /* With no limits, width*height*channels itself must not wrap. */
    bytes = 12345;
    CHECK_EQ_INT(ip_image_check(UINT32_MAX, UINT32_MAX, 4, &big, &bytes, &err), IP_ETOOBIG);
    CHECK_EQ_INT(bytes, 12345);
    if (sizeof(size_t) == 8) {
        /* (2^32-1)^2 * 1 fits 64 bits. */
        CHECK_EQ_INT(ip_image_check(UINT32_MAX, UINT32_MAX, 1, &big, &bytes, &err), 0);
        CHECK(bytes == (size_t)UINT32_MAX * UINT32_MAX);
    }

    CHECK_EQ_INT(ip_image_check(1, 1, 0, &lim, &bytes, &err), IP_EINVAL);
    CHECK_EQ_INT(ip_image_check(1, 1, 5, &lim, &bytes, &err), IP_EINVAL);
    CHECK(ip_image_check(0, 1, 1, &lim, &bytes, &err) < 0);
    CHECK(ip_image_check(1, 0, 1, &lim, &bytes, &err) < 0);
}

static void mul_size(void)
{
    size_t out = 7;

    CHECK_EQ_INT(ip_mul_size(SIZE_MAX, 2, &out), -1);
    CHECK_EQ_INT(ip_mul_size(2, SIZE_MAX, &out), -1);
    CHECK_EQ_INT(ip_mul_size(SIZE_MAX / 2 + 1, 2, &out), -1);
    CHECK_EQ_INT(out, 7);
    CHECK_EQ_INT(ip_mul_size(SIZE_MAX / 2, 2, &out), 0);
    CHECK(out == SIZE_MAX - 1);
    CHECK_EQ_INT(ip_mul_size(0, SIZE_MAX, &out), 0);
    CHECK_EQ_INT(out, 0);
    CHECK_EQ_INT(ip_mul_size(SIZE_MAX, 1, &out), 0);
    CHECK(out == SIZE_MAX);
    if (sizeof(size_t) == 8) {
        CHECK_EQ_INT(ip_mul_size((size_t)1 << 32, (size_t)1 << 32, &out), -1);
        CHECK_EQ_INT(ip_mul_size((size_t)1 << 32, ((size_t)1 << 32) - 1, &out), 0);
    }
}

static void chain_limits(void)
{
    struct ip_chain chain;
    const double bad_sigmas[] = {0.0, -1.0, -0.0, 100.0000001, 1e300, INFINITY, -INFINITY, NAN};

    ip_chain_init(&chain);
    CHECK_EQ_INT(chain.count, 0);
    for (size_t i = 0; i < sizeof bad_sigmas / sizeof bad_sigmas[0]; i++)
        CHECK_EQ_INT(ip_chain_add_gauss(&chain, bad_sigmas[i]), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_box(&chain, 0), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_box(&chain, -3), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_box(&chain, IP_BLUR_MAX_RADIUS + 1), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_gray(&chain, (enum ip_gray_weights)600), IP_EINVAL);
    CHECK_EQ_INT(chain.count, 0);
    CHECK_EQ_INT(ip_chain_add_gauss(NULL, 1.0), IP_EINVAL);

    CHECK_EQ_INT(ip_chain_add_gauss(&chain, 100.0), 0);
    CHECK_EQ_INT(chain.filters[0].radius, 300);
    CHECK_EQ_INT(ip_chain_add_gauss(&chain, 1e-6), 0);
    CHECK_EQ_INT(chain.filters[1].radius, 1);
    CHECK_EQ_INT(ip_chain_add_box(&chain, 1), 0);
    CHECK_EQ_INT(ip_chain_add_box(&chain, IP_BLUR_MAX_RADIUS), 0);
    CHECK_EQ_INT(ip_chain_add_gray(&chain, IP_GRAY_709), 0);
    CHECK_EQ_INT(chain.count, 5);
    while (chain.count < IP_CHAIN_MAX)
        CHECK_EQ_INT(ip_chain_add_gray(&chain, IP_GRAY_601), 0);
    CHECK_EQ_INT(ip_chain_add_gray(&chain, IP_GRAY_601), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_gauss(&chain, 2.0), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_add_box(&chain, 2), IP_EINVAL);
    CHECK_EQ_INT(chain.count, IP_CHAIN_MAX);
    CHECK_EQ_INT(ip_chain_halo(&chain), 300 + 1 + 1 + 300);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 3), 1);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 4), 2);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 2), 2);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 1), 1);

    ip_chain_default(&chain);
    CHECK_EQ_INT(chain.count, 2);
    CHECK_EQ_INT(chain.filters[0].kind, IP_FILTER_GRAY);
    CHECK_EQ_INT(chain.filters[0].gray, IP_GRAY_601);
    CHECK_EQ_INT(chain.filters[1].kind, IP_FILTER_GAUSS);
    CHECK(chain.filters[1].sigma == 2.0);
    CHECK_EQ_INT(chain.filters[1].radius, 6);
    CHECK_EQ_INT(ip_chain_halo(&chain), 6);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 3), 1);

    ip_chain_init(&chain);
    CHECK_EQ_INT(ip_chain_halo(&chain), 0);
    CHECK_EQ_INT(ip_chain_out_channels(&chain, 4), 4);
}

/* Taps: sum exactly 1 << 14, symmetric, non-negative, falling off the
 * centre, each side tap the rounded normalised weight (the centre takes the
 * residue, so at large sigma it may be a little below its neighbours),
 * radius ceil(3 sigma). */
static void gauss_taps(void)
{
    for (double sigma = 0.05; sigma <= 100.0; sigma *= 1.07) {
        struct ip_chain chain;
        const struct ip_filter *f = &chain.filters[0];
        int r, sum = 0, bad = 0;
        double total = 0.0;

        ip_chain_init(&chain);
        CHECK_EQ_INT(ip_chain_add_gauss(&chain, sigma), 0);
        r = f->radius;
        CHECK_EQ_INT(r, ceil(3.0 * sigma) < 1 ? 1 : ceil(3.0 * sigma));
        for (int i = -r; i <= r; i++)
            total += exp(-(double)i * i / (2.0 * sigma * sigma));
        for (int i = 0; i <= 2 * r; i++) {
            int d = i - r;
            sum += f->taps[i];
            bad += f->taps[i] < 0 || f->taps[i] != f->taps[2 * r - i];
            if (d > 0)
                bad += f->taps[i] > f->taps[i - 1] && i - 1 != r;  /* falls away from the centre */
            if (d != 0)
                bad += f->taps[i] != (int)floor(exp(-(double)d * d / (2.0 * sigma * sigma)) / total
                                                * (1 << IP_GAUSS_SHIFT) + 0.5);
        }
        for (int i = 2 * r + 1; i < 2 * IP_BLUR_MAX_RADIUS + 1; i++)
            bad += f->taps[i] != 0;
        CHECK_EQ_INT(sum, 1 << IP_GAUSS_SHIFT);
        CHECK_EQ_INT(bad, 0);
    }
}

static void run_rows_args(void)
{
    uint8_t a[6 * 5 * 3], b[6 * 5 * 3], before[sizeof b];
    struct ip_image src = {6, 5, 3, 18, a}, dst = {6, 5, 1, 6, b}, tmp;
    struct ip_chain chain, bad;
    struct ip_scratch *scratch = ip_scratch_new();

    CHECK(scratch != NULL);
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)(i * 37);
    memset(b, 0xAB, sizeof b);
    memcpy(before, b, sizeof b);
    ip_chain_default(&chain);

    CHECK_EQ_INT(ip_chain_run_rows(NULL, &src, &dst, 0, 5, scratch), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_run_rows(&chain, NULL, &dst, 0, 5, scratch), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, NULL, 0, 5, scratch), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &dst, 0, 6, scratch), IP_EINVAL);
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &dst, 3, 2, scratch), IP_EINVAL);
    tmp = dst, tmp.channels = 3;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    tmp = dst, tmp.width = 5;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    tmp = dst, tmp.height = 4;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 4, scratch), IP_EINVAL);
    tmp = dst, tmp.stride = 5;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    tmp = dst, tmp.pixels = NULL;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    tmp = src, tmp.channels = 5;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &tmp, &dst, 0, 5, scratch), IP_EINVAL);
    /* dst overlapping src. */
    tmp = dst, tmp.pixels = a + 10;
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    /* Hand-corrupted chains. */
    bad = chain, bad.count = IP_CHAIN_MAX + 1;
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.count = -1;
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.filters[1].taps[6] += 1;       /* sum != 1 << 14 */
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.filters[1].taps[0] += 1, bad.filters[1].taps[1] -= 1; /* asymmetric */
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.filters[1].radius = 7;          /* radius does not match sigma */
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.filters[1].kind = (enum ip_filter_kind)42;
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    bad = chain, bad.filters[0].gray = (enum ip_gray_weights)0;
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &dst, 0, 5, scratch), IP_EINVAL);
    ip_chain_init(&bad);
    ip_chain_add_box(&bad, 3);
    bad.filters[0].radius = IP_BLUR_MAX_RADIUS + 1;
    tmp = dst, tmp.channels = 3, tmp.stride = 18;
    CHECK_EQ_INT(ip_chain_run_rows(&bad, &src, &tmp, 0, 5, scratch), IP_EINVAL);
    CHECK(memcmp(b, before, sizeof b) == 0);

    /* An empty band is fine and writes nothing; a real band writes only its rows. */
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &dst, 2, 2, scratch), 0);
    CHECK(memcmp(b, before, sizeof b) == 0);
    CHECK_EQ_INT(ip_chain_run_rows(&chain, &src, &dst, 1, 3, NULL), 0);
    CHECK(memcmp(b, before, 6) == 0);
    CHECK(memcmp(b + 18, before + 18, sizeof b - 18) == 0);
    CHECK(memcmp(b + 6, before + 6, 12) != 0);

    /* Empty chain: a copy, also into a wider stride. */
    {
        uint8_t wide[5 * 20];
        struct ip_image out = {6, 5, 3, 20, wide};
        ip_chain_init(&chain);
        memset(wide, 0, sizeof wide);
        CHECK_EQ_INT(ip_chain_run(&chain, &src, &out, scratch), 0);
        for (int y = 0; y < 5; y++) {
            CHECK(memcmp(wide + y * 20, a + y * 18, 18) == 0);
            CHECK(wide[y * 20 + 18] == 0 && wide[y * 20 + 19] == 0);
        }
    }
    ip_scratch_free(scratch);
    ip_scratch_free(NULL);
}

int main(void)
{
    image_limits();
    mul_size();
    chain_limits();
    gauss_taps();
    run_rows_args();
    return check_exit("test_guards");
}
