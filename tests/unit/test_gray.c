/* Gray weights: every RGB triple through the chain, both weight sets, every
 * kernel (SIMD and baseline), checked
 * against the defining inequality of half-up rounding of the exact decimal
 * weights (an expression independent of the kernel's division), plus
 * hand-computed values and alpha pass-through. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/filter.h"
#include "filter_internal.h"
#include "check.h"

/* y is round-half-up(num / den) iff den*y <= num + den/2 < den*(y+1), with
 * num/den the exact weighted sum scaled by den (den even, so den/2 exact). */
static int is_rounded(uint32_t y, uint64_t num, uint64_t den)
{
    return den * y <= num + den / 2 && num + den / 2 < den * (y + 1);
}

static int gray_of(enum ip_gray_weights weights, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t in[3] = {r, g, b}, out[1] = {0};
    struct ip_image src = {1, 1, 3, 3, in}, dst = {1, 1, 1, 1, out};
    struct ip_chain chain;

    ip_chain_init(&chain);
    ip_chain_add_gray(&chain, weights);
    if (ip_chain_run(&chain, &src, &dst, NULL) != 0)
        return -1;
    return out[0];
}

static void exhaustive(enum ip_gray_weights weights, uint32_t channels)
{
    /* 4096 x 4096 pixels: pixel i has R = i >> 16, G = (i >> 8) & 255, B = i & 255. */
    const uint32_t side = 4096;
    struct ip_image src, dst;
    struct ip_chain chain;
    long bad = 0, alpha_bad = 0;

    ip_chain_init(&chain);
    CHECK_EQ_INT(ip_chain_add_gray(&chain, weights), 0);
    CHECK_EQ_INT(ip_image_alloc(&src, side, side, channels, NULL, NULL), 0);
    CHECK_EQ_INT(ip_image_alloc(&dst, side, side, channels - 2, NULL, NULL), 0);
    if (!src.pixels || !dst.pixels)
        return;
    for (uint32_t i = 0; i < side * side; i++) {
        uint8_t *p = src.pixels + (size_t)i * channels;
        p[0] = (uint8_t)(i >> 16);
        p[1] = (uint8_t)(i >> 8);
        p[2] = (uint8_t)i;
        if (channels == 4)
            p[3] = (uint8_t)(i * 7 + 3);
    }
    CHECK_EQ_INT(ip_chain_run(&chain, &src, &dst, NULL), 0);
    for (uint32_t i = 0; i < side * side; i++) {
        uint64_t r = i >> 16, g = (i >> 8) & 255, b = i & 255;
        uint32_t y = dst.pixels[(size_t)i * (channels - 2)];
        int ok = weights == IP_GRAY_601
            ? is_rounded(y, 299 * r + 587 * g + 114 * b, 1000)
            : is_rounded(y, 2126 * r + 7152 * g + 722 * b, 10000);
        bad += !ok;
        if (channels == 4)
            alpha_bad += dst.pixels[(size_t)i * 2 + 1] != (uint8_t)(i * 7 + 3);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(alpha_bad, 0);
    ip_image_free(&src);
    ip_image_free(&dst);
}

/* Widths 1..70 exercise every SIMD tail; compare with single-pixel runs. */
static void widths(void)
{
    unsigned long long seed = 99;
    for (uint32_t w = 1; w <= 70; w++) {
        for (uint32_t c = 3; c <= 4; c++) {
            struct ip_image src, dst;
            struct ip_chain chain;
            long bad = 0;
            ip_chain_init(&chain);
            ip_chain_add_gray(&chain, w % 2 ? IP_GRAY_601 : IP_GRAY_709);
            CHECK_EQ_INT(ip_image_alloc(&src, w, 3, c, NULL, NULL), 0);
            CHECK_EQ_INT(ip_image_alloc(&dst, w, 3, c - 2, NULL, NULL), 0);
            for (size_t i = 0; i < (size_t)w * 3 * c; i++)
                src.pixels[i] = (uint8_t)check_rand(&seed);
            CHECK_EQ_INT(ip_chain_run(&chain, &src, &dst, NULL), 0);
            for (size_t i = 0; i < (size_t)w * 3; i++) {
                const uint8_t *p = src.pixels + i * c;
                bad += dst.pixels[i * (c - 2)] != gray_of(chain.filters[0].gray, p[0], p[1], p[2]);
                if (c == 4)
                    bad += dst.pixels[i * 2 + 1] != p[3];
            }
            CHECK_EQ_INT(bad, 0);
            ip_image_free(&src);
            ip_image_free(&dst);
        }
    }
}

int main(void)
{
    /* Hand-computed: 0.299*255 = 76.245, 0.2126*255 = 54.213, 0.587*255 = 149.685,
     * 0.7152*255 = 182.376, 0.114*255 = 29.07, 0.0722*255 = 18.411. */
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 255, 0, 0), 76);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 255, 0, 0), 54);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 255, 0), 150);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 0, 255, 0), 182);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 0, 255), 29);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 0, 0, 255), 18);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 255, 255, 255), 255);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 255, 255, 255), 255);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 0, 0), 0);
    /* Exact ties round up: 0.114*250 = 28.5 -> 29; 0.587*12 + 0.114*4 = 7.5 -> 8;
     * 0.7152*14 + 0.0722*76 = 15.5 -> 16. Just below: 0.114*249 = 28.386 -> 28;
     * 0.2126*50 = 10.63 -> 11; 0.299*5 + 0.587*5 = 4.43 -> 4. */
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 0, 250), 29);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 12, 4), 8);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 0, 14, 76), 16);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 0, 0, 249), 28);
    CHECK_EQ_INT(gray_of(IP_GRAY_709, 50, 0, 0), 11);
    CHECK_EQ_INT(gray_of(IP_GRAY_601, 5, 5, 0), 4);

    /* Every kernel this machine has: the best, and capped at the baseline
     * (on x86-64 the AVX2 RGB kernel divides in float, the baseline by
     * integers: both must be the exact rounding). */
    for (int level = 2; level >= 0; level -= 2) {
        ip__simd_limit(level);
        exhaustive(IP_GRAY_601, 3);
        exhaustive(IP_GRAY_709, 3);
        exhaustive(IP_GRAY_601, 4);
        exhaustive(IP_GRAY_709, 4);
        widths();
    }
    ip__simd_limit(2);
    return check_exit("test_gray");
}
