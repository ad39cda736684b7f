/* Small helpers shared by the conformance test programs: checks that count
 * failures, whole-file reads, a reader for flat JSON integer arrays and an
 * RGBA expansion of decoded images. Header-only; each test is one program. */
#ifndef IMGPAR_TEST_UTIL_H
#define IMGPAR_TEST_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"

static int test_failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            test_failures++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

static inline int test_finish(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, test_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

/* Reads a whole file with stdio (independent of ip_file_read). Exits on
 * failure: missing test data is a broken test, not a pass. */
static inline uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t cap = 0, n = 0;

    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(99);
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            data = realloc(data, cap);
            if (!data)
                exit(99);
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return data;
}

static inline int test_file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Parses a flat JSON array of non-negative integers ("[1, 2, 3]" with any
 * whitespace). Returns a malloc'd array and its length in *count, or NULL
 * on a syntax error. */
static inline long *test_json_ints(const char *path, size_t *count)
{
    size_t len, i = 0, n = 0, cap = 0;
    uint8_t *text = test_read_file(path, &len);
    long *vals = NULL;

#define SKIP_WS() while (i < len && strchr(" \t\r\n", text[i])) i++
    SKIP_WS();
    if (i >= len || text[i] != '[')
        goto bad;
    i++;
    SKIP_WS();
    if (i < len && text[i] == ']') {
        i++;
        goto end;
    }
    for (;;) {
        long v = 0;
        size_t digits = 0;

        SKIP_WS();
        while (i < len && text[i] >= '0' && text[i] <= '9' && digits < 12) {
            v = v * 10 + (text[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || digits >= 12)
            goto bad;
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            vals = realloc(vals, cap * sizeof *vals);
            if (!vals)
                exit(99);
        }
        vals[n++] = v;
        SKIP_WS();
        if (i < len && text[i] == ',') {
            i++;
            continue;
        }
        if (i < len && text[i] == ']') {
            i++;
            break;
        }
        goto bad;
    }
end:
    SKIP_WS();
    if (i != len)
        goto bad;
#undef SKIP_WS
    free(text);
    *count = n;
    if (!vals)
        vals = malloc(sizeof *vals);
    return vals;
bad:
    free(text);
    free(vals);
    return NULL;
}

/* Expands a decoded image to RGBA8 (gray g -> g,g,g,255; GA -> g,g,g,a;
 * RGB -> r,g,b,255). Returns a malloc'd width*height*4 array. */
static inline uint8_t *test_to_rgba(const struct ip_image *img)
{
    size_t npix = (size_t)img->width * img->height;
    uint8_t *rgba = malloc(npix * 4 + 1);
    uint32_t x, y;

    if (!rgba)
        exit(99);
    for (y = 0; y < img->height; y++) {
        const uint8_t *row = img->pixels + (size_t)y * img->stride;
        for (x = 0; x < img->width; x++) {
            const uint8_t *p = row + (size_t)x * img->channels;
            uint8_t *q = rgba + ((size_t)y * img->width + x) * 4;
            switch (img->channels) {
            case 1: q[0] = q[1] = q[2] = p[0]; q[3] = 255; break;
            case 2: q[0] = q[1] = q[2] = p[0]; q[3] = p[1]; break;
            case 3: q[0] = p[0]; q[1] = p[1]; q[2] = p[2]; q[3] = 255; break;
            default: memcpy(q, p, 4); break;
            }
        }
    }
    return rgba;
}

static inline int test_decode(const uint8_t *data, size_t len, enum ip_decoder decoder,
                              struct ip_image *img, struct ip_error *err)
{
    struct ip_decode_opts opts;

    ip_decode_opts_default(&opts);
    opts.decoder = decoder;
    return ip_decode(data, len, &opts, img, NULL, err);
}

#endif
