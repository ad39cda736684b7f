/* Every prefix of real PNG and JPEG files, decoded in-process.
 *
 * usage: test_truncation STRIDE TAIL FILE...
 *
 * For each FILE and each prefix length L in 0..63, every multiple of STRIDE,
 * and the last TAIL lengths before the whole file, with both decoders
 * (native: libpng / libjpeg-turbo, and stb_image):
 *   - default options: ip_decode fails; once the signature is complete the
 *     code is IP_ETRUNC and the reason says "truncated"; below it the data
 *     is "empty file" or not recognised; the output image is zeroed and
 *     every pixel buffer handed out by the allocator was given back;
 *   - allow_truncated: either success with a warning that says "truncated"
 *     (err.code 0), full-size pixels, or the same IP_ETRUNC failure;
 *     never anything else;
 * and the whole file decodes without error or warning. A counting
 * allocator checks that nothing leaks on any path (ASan checks the rest). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/codec.h"
#include "../unit/check.h"

struct counting {
    long live;       /* buffers handed out and not yet freed */
    long total;      /* buffers handed out */
};

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err)
{
    struct counting *c = ctx;

    *pixels = malloc(shape->stride * shape->height);
    if (!*pixels)
        return ip_error_set(err, IP_ENOMEM, "test allocator: out of memory");
    c->live++;
    c->total++;
    return 0;
}

static void count_free(void *ctx, uint8_t *pixels)
{
    struct counting *c = ctx;

    free(pixels);
    c->live--;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc(n > 0 ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return data;
}

static int is_zeroed(const struct ip_image *img)
{
    return img->pixels == NULL && img->width == 0 && img->height == 0 && img->channels == 0 &&
           img->stride == 0;
}

static long prefixes_tried;

/* Decodes data[0..cut) (a copy, so that ASan sees reads past the cut). */
static void try_prefix(const char *path, const uint8_t *data, size_t cut, size_t magic,
                       enum ip_decoder decoder, int allow, const struct ip_image *whole)
{
    struct counting counts = {0, 0};
    struct ip_allocator alloc = {count_alloc, count_free, &counts};
    struct ip_decode_opts opts;
    struct ip_image img;
    struct ip_error err;
    enum ip_format fmt;
    uint8_t *copy = malloc(cut ? cut : 1);
    int rc;

    memcpy(copy, data, cut);
    ip_decode_opts_default(&opts);
    opts.decoder = decoder;
    opts.allow_truncated = allow;
    opts.allocator = &alloc;
    rc = ip_decode(copy, cut, &opts, &img, &fmt, &err);
    prefixes_tried++;
    if (rc == 0) {
        int ok = allow && err.code == 0 && strstr(err.msg, "truncated") != NULL &&
                 img.width == whole->width && img.height == whole->height &&
                 img.channels == whole->channels && counts.live == 1;
        if (!ok)
            fprintf(stderr, "%s: prefix %zu (%s%s): decoded (%ux%u) with message '%s'\n", path,
                    cut, decoder == IP_DECODER_STB ? "stb" : "native",
                    allow ? ", allow_truncated" : "", img.width, img.height, err.msg);
        CHECK(ok);
        if (img.pixels)
            count_free(&counts, img.pixels);
    } else {
        int ok;
        if (cut == 0)
            ok = rc == IP_ETRUNC && strcmp(err.msg, "empty file") == 0;
        else if (cut < magic)
            ok = rc == IP_EFORMAT || rc == IP_ETRUNC;
        else
            ok = rc == IP_ETRUNC && err.code == IP_ETRUNC && strstr(err.msg, "truncated") != NULL;
        if (!ok)
            fprintf(stderr, "%s: prefix %zu (%s%s): rc %d, '%s'\n", path, cut,
                    decoder == IP_DECODER_STB ? "stb" : "native", allow ? ", allow_truncated" : "",
                    rc, err.msg);
        CHECK(ok);
        CHECK(is_zeroed(&img));
        CHECK(err.msg[0] != '\0');
    }
    CHECK_EQ_INT(counts.live, 0);
    free(copy);
}

int main(int argc, char **argv)
{
    size_t stride, tail;

    if (argc < 4) {
        fprintf(stderr, "usage: %s STRIDE TAIL FILE...\n", argv[0]);
        return 2;
    }
    stride = (size_t)strtoul(argv[1], NULL, 10);
    tail = (size_t)strtoul(argv[2], NULL, 10);
    if (stride == 0)
        stride = 1;
    for (int i = 3; i < argc; i++) {
        size_t len, magic;
        uint8_t *data = read_file(argv[i], &len);
        enum ip_format fmt;

        CHECK(data != NULL);
        if (!data) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            continue;
        }
        fmt = ip_format_detect(data, len);
        CHECK(fmt == IP_FORMAT_PNG || fmt == IP_FORMAT_JPEG);
        magic = fmt == IP_FORMAT_PNG ? 8 : 3;
        for (int d = 0; d < 2; d++) {
            enum ip_decoder decoder = d ? IP_DECODER_STB : IP_DECODER_NATIVE;
            struct ip_decode_opts opts;
            struct ip_image whole;
            struct ip_error err;
            long before = prefixes_tried;

            ip_decode_opts_default(&opts);
            opts.decoder = decoder;
            if (ip_decode(data, len, &opts, &whole, NULL, &err) != 0 && decoder == IP_DECODER_STB) {
                /* stb_image has no arithmetic-coded JPEG, for one */
                printf("%s (stb): not decodable whole (%s), skipped\n", argv[i], err.msg);
                continue;
            }
            CHECK(whole.pixels != NULL);
            CHECK(err.msg[0] == '\0');
            if (!whole.pixels)
                continue;
            for (size_t cut = 0; cut < len; cut++) {
                if (!(cut < 64 || cut % stride == 0 || cut + tail >= len))
                    continue;
                try_prefix(argv[i], data, cut, magic, decoder, 0, &whole);
                try_prefix(argv[i], data, cut, magic, decoder, 1, &whole);
            }
            printf("%s (%s): %ld prefixes of %zu bytes\n", argv[i], d ? "stb" : "native",
                   (prefixes_tried - before) / 2, len);
            ip_image_free(&whole);
        }
        free(data);
    }
    return check_exit("truncation");
}
