/* Every whole-image decode path obeys a runner's stop flag (the pipeline's
 * Ctrl-C): ip__decode_owned returns IP_EINTR, says "interrupted", hands
 * back no image and leaves nothing allocated.
 *
 *   test_decode_stop CONFORMANCE_DIR
 *
 * The paths: the PNG fast path straight into the output (8-bit RGB) and
 * through scratch (palette, 16-bit), libpng (an interlaced file, and the
 * RGB file with the fast path off), a baseline JPEG, a progressive JPEG
 * with the fast path on (codec_jpeg_prog.c) and off (libjpeg's multi-scan
 * input loop). For each file:
 * - flag clear: the same pixels as ip_decode without a runner;
 * - flag set before the call: IP_EINTR;
 * - flag set by the pixel allocator, that is after the header, once the
 *   decode is under way: IP_EINTR, and the allocator's block freed. Without
 *   the checks inside the decoders this decode would succeed. The fast
 *   path's palette and 16-bit files allocate last, once everything is
 *   inflated: for them the flag comes too late and the decode succeeds.
 * Every block allocated is freed (by the decoder, or here on success). */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "imgpar/codec.h"
#include "testutil.h"

struct counting_alloc {
    atomic_int *stop;   /* set on alloc when set_on_alloc */
    int set_on_alloc;
    int allocs, frees;
};

static int count_alloc(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err)
{
    struct counting_alloc *a = ctx;

    *pixels = malloc((size_t)shape->stride * shape->height);
    if (!*pixels)
        return ip_error_set(err, IP_ENOMEM, "out of memory");
    a->allocs++;
    if (a->set_on_alloc)
        atomic_store(a->stop, 1);
    return 0;
}

static void count_free(void *ctx, uint8_t *pixels)
{
    ((struct counting_alloc *)ctx)->frees++;
    free(pixels);
}

enum when { NEVER, BEFORE, ON_ALLOC };

/* alloc_last: the decoder allocates the pixels after all its work. */
static void check_stop(const char *name, const uint8_t *file, size_t len, int alloc_last)
{
    static const char *const whens[] = {"flag clear", "flag set before", "flag set on alloc"};
    struct ip_image ref;
    struct ip_error err;
    int rc = ip_decode(file, len, NULL, &ref, NULL, &err);

    CHECK(rc == 0, "%s: reference decode failed: %s", name, err.msg);
    if (rc)
        return;
    for (int w = NEVER; w <= ON_ALLOC; w++) {
        atomic_int stop = w == BEFORE;
        struct counting_alloc ca = {&stop, w == ON_ALLOC, 0, 0};
        struct ip_allocator alloc = {count_alloc, count_free, &ca};
        struct ip__strip_runner runner = {NULL, NULL, NULL, &stop, 0};
        struct ip_decode_opts opts;
        struct ip_image img;
        uint8_t *copy = malloc(len);

        if (!copy)
            exit(99);
        memcpy(copy, file, len);   /* ip__decode_owned may rearrange its buffer */
        ip_decode_opts_default(&opts);
        opts.allocator = &alloc;
        rc = ip__decode_owned(copy, len, &opts, &runner, &img, NULL, &err);
        if (w == NEVER || (w == ON_ALLOC && alloc_last)) {
            CHECK(rc == 0, "%s, %s: rc %d (%s)", name, whens[w], rc, err.msg);
            CHECK(rc != 0 || (img.width == ref.width && img.height == ref.height &&
                              img.channels == ref.channels &&
                              memcmp(img.pixels, ref.pixels, (size_t)ref.stride * ref.height) == 0),
                  "%s, %s: pixels differ from ip_decode's", name, whens[w]);
            CHECK(w == NEVER || ca.allocs == 1, "%s, %s: %d allocs", name, whens[w], ca.allocs);
            if (rc == 0)
                ip__pixels_free(&opts, &img);
        } else {
            CHECK(rc == IP_EINTR, "%s, %s: rc %d (%s), wanted IP_EINTR", name, whens[w], rc, err.msg);
            CHECK(strcmp(err.msg, "interrupted") == 0, "%s, %s: message \"%s\"", name, whens[w], err.msg);
            CHECK(img.pixels == NULL, "%s, %s: an image came back", name, whens[w]);
            CHECK(w != ON_ALLOC || ca.allocs >= 1, "%s, %s: never allocated", name, whens[w]);
        }
        CHECK(ca.allocs == ca.frees, "%s, %s: %d allocs, %d frees", name, whens[w], ca.allocs, ca.frees);
        free(copy);
    }
    ip_image_free(&ref);
}

static uint8_t *make_pixels(uint32_t w, uint32_t h, uint32_t ch)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    uint32_t s = 7;

    if (!p)
        exit(99);
    for (size_t i = 0; i < (size_t)w * h * ch; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (uint8_t)((i / ch % w + i / ch / w) * 2 + (s >> 28));   /* gradient plus noise */
    }
    return p;
}

static void check_encoded(const char *name, const struct ip_image *img, enum ip_format fmt)
{
    struct ip_buf buf = {0};
    struct ip_error err;
    int rc = ip_encode(img, fmt, NULL, &buf, &err);

    CHECK(rc == 0, "%s: encode failed: %s", name, err.msg);
    if (rc == 0)
        check_stop(name, buf.data, buf.len, 0);
    ip_buf_free(&buf);
}

struct enc_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
};

static void enc_error_exit(j_common_ptr cinfo)
{
    longjmp(((struct enc_err *)cinfo->err)->jmp, 1);
}

/* img as a progressive JPEG (libjpeg's simple progression, 4:2:0). */
static void check_progressive(const char *name, const struct ip_image *img)
{
    struct jpeg_compress_struct cinfo;
    struct enc_err jerr;
    unsigned char *out = NULL;
    unsigned long out_len = 0;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = enc_error_exit;
    if (setjmp(jerr.jmp)) {
        fprintf(stderr, "libjpeg failed to write the progressive test file\n");
        exit(99);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &out_len);
    cinfo.image_width = img->width;
    cinfo.image_height = img->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 85, TRUE);
    jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->pixels + (size_t)cinfo.next_scanline * img->stride;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    check_stop(name, out, out_len, 0);
    free(out);
}

static void check_file(const char *dir, const char *base, int alloc_last)
{
    char path[1024];
    size_t len;
    uint8_t *data;

    snprintf(path, sizeof path, "%s/pngsuite/png/%s", dir, base);
    data = test_read_file(path, &len);
    check_stop(base, data, len, alloc_last);
    free(data);
}

int main(int argc, char **argv)
{
    struct ip_image rgb = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: test_decode_stop CONFORMANCE_DIR\n");
        return 2;
    }
    rgb.width = 300;
    rgb.height = 200;
    rgb.channels = 3;
    rgb.stride = rgb.width * 3;
    rgb.pixels = make_pixels(rgb.width, rgb.height, 3);

    check_encoded("PNG RGB, fast path", &rgb, IP_FORMAT_PNG);
    ip__png_fast_set_enabled(0);
    check_encoded("PNG RGB, libpng", &rgb, IP_FORMAT_PNG);
    ip__png_fast_set_enabled(1);
    check_file(argv[1], "basn3p08.png", 1);   /* palette: fast path, scratch */
    check_file(argv[1], "basn2c16.png", 1);   /* 16-bit: fast path, scratch */
    check_file(argv[1], "basi2c08.png", 0);   /* interlaced: libpng */
    check_encoded("baseline JPEG", &rgb, IP_FORMAT_JPEG);
    check_progressive("progressive JPEG, fast path", &rgb);
    ip__jpeg_prog_set_enabled(0);
    check_progressive("progressive JPEG, libjpeg", &rgb);
    ip__jpeg_prog_set_enabled(1);

    free(rgb.pixels);
    return test_finish("decode_stop");
}
