/* PngSuite conformance.
 *
 *   test_pngsuite reference DIR   every valid file (name not starting with
 *                                 'x') decodes with libpng to its json/
 *                                 RGBA8 reference (16-bit files: NAME_to8.json
 *                                 or v>>8 of NAME.json, within 1 level)
 *   test_pngsuite corrupt DIR     every x*.png is rejected with a code and a
 *                                 message, by the default (libpng) decoder
 *   test_pngsuite stb DIR         libpng and stb_image decode every valid file
 *                                 to the same channels and bytes
 *
 * DIR is the pngsuite directory (png/ and json/ below it). The expected
 * file counts are asserted so that a missing directory cannot pass. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"
#include "testutil.h"

#define VALID_FILES 161
#define CORRUPT_FILES 14

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names (without .png) of the files in png/; exits if the directory is missing. */
static char **list_pngs(const char *dir, size_t *count)
{
    char path[4096];
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    snprintf(path, sizeof path, "%s/png", dir);
    d = opendir(path);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(99);
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".png") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                exit(99);
        }
        names[n] = strdup(de->d_name);
        names[n][len - 4] = '\0';
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    *count = n;
    return names;
}

/* Compares one valid file with its json reference; returns 1 if compared. */
static int check_reference(const char *dir, const char *name)
{
    char path[4096];
    struct ip_image img;
    struct ip_error err;
    size_t len, nref, i, npix, bad = 0;
    uint8_t *data, *rgba;
    long *ref;
    int rc, sixteen, shift = 0, tolerance = 0, worst = 0;

    snprintf(path, sizeof path, "%s/png/%s.png", dir, name);
    data = test_read_file(path, &len);
    sixteen = len > 24 && data[24] == 16;   /* IHDR bit depth */
    rc = test_decode(data, len, IP_DECODER_NATIVE, &img, &err);
    free(data);
    CHECK(rc == 0, "%s: decode failed: %d %s", name, rc, err.msg);
    if (rc)
        return 1;

    if (sixteen) {
        tolerance = 1;   /* rounding (libpng scale_16) vs the reference's v >> 8 */
        snprintf(path, sizeof path, "%s/json/%s_to8.json", dir, name);
        if (!test_file_exists(path)) {
            snprintf(path, sizeof path, "%s/json/%s.json", dir, name);
            shift = 8;
        }
    } else {
        snprintf(path, sizeof path, "%s/json/%s.json", dir, name);
    }
    ref = test_json_ints(path, &nref);
    CHECK(ref != NULL, "%s: bad json %s", name, path);
    if (!ref) {
        ip_image_free(&img);
        return 1;
    }
    npix = (size_t)img.width * img.height;
    CHECK(nref == npix * 4, "%s: json has %zu values, image %ux%u", name, nref, img.width,
          img.height);
    if (nref == npix * 4) {
        rgba = test_to_rgba(&img);
        for (i = 0; i < nref; i++) {
            long want = ref[i] >> shift;
            int diff = abs((int)rgba[i] - (int)want);
            if (want > 255 || diff > tolerance) {
                if (bad++ < 3)
                    fprintf(stderr, "%s: sample %zu (pixel %zu) got %d want %ld\n", name, i,
                            i / 4, rgba[i], want);
            }
            if (diff > worst)
                worst = diff;
        }
        CHECK(bad == 0, "%s: %zu samples differ (worst %d, %u channels)", name, bad, worst,
              img.channels);
        free(rgba);
    }
    free(ref);
    ip_image_free(&img);
    return 1;
}

static int check_corrupt(const char *dir, const char *name)
{
    char path[4096];
    struct ip_image img;
    struct ip_error err;
    size_t len;
    uint8_t *data;
    int rc;

    snprintf(path, sizeof path, "%s/png/%s.png", dir, name);
    data = test_read_file(path, &len);
    rc = test_decode(data, len, IP_DECODER_NATIVE, &img, &err);
    free(data);
    CHECK(rc < 0, "%s: corrupt file decoded (%ux%u)", name, img.width, img.height);
    CHECK(rc == err.code, "%s: return %d but err.code %d", name, rc, err.code);
    CHECK(err.msg[0] != '\0', "%s: empty message", name);
    CHECK(img.pixels == NULL, "%s: pixels left after failure", name);
    if (rc == 0)
        ip_image_free(&img);
    else
        printf("%s: %d %s\n", name, rc, err.msg);
    return 1;
}

static int check_stb(const char *dir, const char *name)
{
    char path[4096];
    struct ip_image a, b;
    struct ip_error ea, eb;
    size_t len;
    uint8_t *data;
    int ra, rb;

    snprintf(path, sizeof path, "%s/png/%s.png", dir, name);
    data = test_read_file(path, &len);
    ra = test_decode(data, len, IP_DECODER_NATIVE, &a, &ea);
    rb = test_decode(data, len, IP_DECODER_STB, &b, &eb);
    free(data);
    CHECK(ra == 0, "%s: libpng failed: %s", name, ea.msg);
    CHECK(rb == 0, "%s: stb failed: %s", name, eb.msg);
    if (ra == 0 && rb == 0) {
        CHECK(a.width == b.width && a.height == b.height && a.channels == b.channels,
              "%s: libpng %ux%ux%u, stb %ux%ux%u", name, a.width, a.height, a.channels, b.width,
              b.height, b.channels);
        if (a.width == b.width && a.height == b.height && a.channels == b.channels) {
            size_t n = a.stride * a.height, i, diff = 0;
            for (i = 0; i < n; i++)
                diff += a.pixels[i] != b.pixels[i];
            CHECK(diff == 0, "%s: %zu of %zu bytes differ", name, diff, n);
        }
    }
    ip_image_free(&a);
    ip_image_free(&b);
    return 1;
}

int main(int argc, char **argv)
{
    size_t count, i, done = 0, expected;
    char **names;
    const char *mode;
    int corrupt_mode;

    if (argc != 3) {
        fprintf(stderr, "usage: %s reference|corrupt|stb PNGSUITE_DIR\n", argv[0]);
        return 99;
    }
    mode = argv[1];
    corrupt_mode = strcmp(mode, "corrupt") == 0;
    names = list_pngs(argv[2], &count);
    for (i = 0; i < count; i++) {
        int is_corrupt = names[i][0] == 'x';
        if (is_corrupt != corrupt_mode)
            continue;
        if (strcmp(mode, "reference") == 0)
            done += check_reference(argv[2], names[i]);
        else if (corrupt_mode)
            done += check_corrupt(argv[2], names[i]);
        else if (strcmp(mode, "stb") == 0)
            done += check_stb(argv[2], names[i]);
        else {
            fprintf(stderr, "unknown mode %s\n", mode);
            return 99;
        }
    }
    expected = corrupt_mode ? CORRUPT_FILES : VALID_FILES;
    CHECK(done == expected, "checked %zu files, expected %zu", done, expected);
    printf("%s: checked %zu files\n", mode, done);
    for (i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return test_finish(mode);
}
