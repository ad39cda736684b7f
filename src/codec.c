/* Codec front end: format detection, decoder dispatch, pixel allocation,
 * encoder dispatch and whole-file reads.
 *
 * DESIGN
 * - The format comes from magic bytes only. TGA has none, so it is the last
 *   resort: whatever stb_image can read the header of after every magic
 *   check failed is called TGA.
 * - PNG goes to libpng (codec_png.c), JPEG to libjpeg-turbo (codec_jpeg.c)
 *   unless opts->decoder is IP_DECODER_STB; everything else goes to
 *   stb_image (codec_stb.c).
 * - Limits come first: a PNG's IHDR dimensions are checked here before any
 *   decoder runs; JPEG and stb decoders check the header's dimensions before
 *   they allocate. Decoders then call ip__pixels_alloc once the output shape
 *   is known: it checks the limits again, then allocates with the caller's
 *   allocator or malloc. On any failure the decoder calls ip__pixels_free,
 *   so *out ends zeroed.
 * - An empty input is IP_ETRUNC "empty file"; an unrecognised one is
 *   IP_EFORMAT "not a recognized image format".
 * - Everything here is reentrant: any thread may decode or encode at any
 *   time, with no global state.
 * - On success ip_decode leaves err->code 0; err->msg may then hold a
 *   warning (a truncated image decoded under allow_truncated). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec_internal.h"
#include "imgpar/codec.h"

void ip_decode_opts_default(struct ip_decode_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    ip_limits_default(&opts->limits);
    opts->decoder = IP_DECODER_NATIVE;
}

void ip_encode_opts_default(struct ip_encode_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->png_level = 6;
    opts->jpeg_quality = 90;
}

static int has_prefix(const uint8_t *data, size_t len, const char *magic, size_t n)
{
    return len >= n && memcmp(data, magic, n) == 0;
}

enum ip_format ip_format_detect(const uint8_t *data, size_t len)
{
    if (!data || len == 0)
        return IP_FORMAT_UNKNOWN;
    if (has_prefix(data, len, "\x89PNG\r\n\x1a\n", 8))
        return IP_FORMAT_PNG;
    if (has_prefix(data, len, "\xff\xd8\xff", 3))
        return IP_FORMAT_JPEG;
    if (has_prefix(data, len, "BM", 2))
        return IP_FORMAT_BMP;
    if (has_prefix(data, len, "GIF87a", 6) || has_prefix(data, len, "GIF89a", 6))
        return IP_FORMAT_GIF;
    if (has_prefix(data, len, "P5", 2) || has_prefix(data, len, "P6", 2))
        return IP_FORMAT_PNM;
    if (has_prefix(data, len, "8BPS", 4))
        return IP_FORMAT_PSD;
    if (has_prefix(data, len, "#?RADIANCE", 10) || has_prefix(data, len, "#?RGBE", 6))
        return IP_FORMAT_HDR;
    if (ip__stb_probe(data, len))
        return IP_FORMAT_TGA;
    return IP_FORMAT_UNKNOWN;
}

const char *ip_format_name(enum ip_format fmt)
{
    switch (fmt) {
    case IP_FORMAT_PNG: return "png";
    case IP_FORMAT_JPEG: return "jpeg";
    case IP_FORMAT_BMP: return "bmp";
    case IP_FORMAT_GIF: return "gif";
    case IP_FORMAT_PNM: return "pnm";
    case IP_FORMAT_PSD: return "psd";
    case IP_FORMAT_TGA: return "tga";
    case IP_FORMAT_HDR: return "hdr";
    case IP_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

/* Only PNG and JPEG are written; every other input format is written as PNG. */
const char *ip_format_ext(enum ip_format fmt)
{
    return fmt == IP_FORMAT_JPEG ? "jpg" : "png";
}

int ip__pixels_alloc(const struct ip_decode_opts *opts, struct ip_image *img,
                     uint32_t width, uint32_t height, uint32_t channels, struct ip_error *err)
{
    return ip__pixels_alloc_room(opts, img, width, height, channels, (size_t)width * channels, err);
}

int ip__pixels_alloc_room(const struct ip_decode_opts *opts, struct ip_image *img, uint32_t width,
                          uint32_t height, uint32_t channels, size_t row_room, struct ip_error *err)
{
    const struct ip_allocator *a = opts->allocator;
    uint8_t *pixels = NULL;
    size_t bytes;
    int rc;

    memset(img, 0, sizeof *img);
    rc = ip_image_check(width, height, channels, &opts->limits, &bytes, err);
    if (rc)
        return rc;
    if (row_room < (size_t)width * channels || ip_mul_size(row_room, height, &bytes) != 0)
        return ip_error_set(err, IP_ETOOBIG, "image %ux%u too large", width, height);
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->stride = row_room;   /* the shape the allocator sees */
    if (a) {
        rc = a->alloc(a->ctx, img, &pixels, err);
        if (rc == 0 && !pixels)
            rc = IP_ENOMEM;
        if (rc) {
            if (rc > 0)
                rc = IP_ENOMEM;
            if (!err || err->code == 0 || err->msg[0] == '\0')
                ip_error_set(err, rc, "allocator refused %ux%u image", width, height);
            memset(img, 0, sizeof *img);
            return rc;
        }
    } else {
        pixels = malloc(bytes);
        if (!pixels) {
            memset(img, 0, sizeof *img);
            return ip_error_set(err, IP_ENOMEM, "out of memory for %ux%u image", width, height);
        }
    }
    img->pixels = pixels;
    img->stride = (size_t)width * channels;
    return 0;
}

void ip__pixels_free(const struct ip_decode_opts *opts, struct ip_image *img)
{
    if (img->pixels) {
        if (opts->allocator)
            opts->allocator->free(opts->allocator->ctx, img->pixels);
        else
            free(img->pixels);
    }
    memset(img, 0, sizeof *img);
}

/* Checks a PNG's IHDR dimensions before any decoder allocates anything
 * (libpng would otherwise read on to the first IDAT first, stb_image gives
 * no reason). Malformed headers are left for the decoder to reject. */
static int png_precheck(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                        struct ip_error *err)
{
    uint32_t width, height;

    if (len < 24 || memcmp(data + 12, "IHDR", 4) != 0)
        return 0;
    width = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
    height = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu)
        return 0;
    return ip_image_check(width, height, 1, &opts->limits, NULL, err);
}

/* ip_decode; writable is NULL or data, runner NULL or a caller's (ip__decode_owned). */
static int decode_any(const uint8_t *data, uint8_t *writable, size_t len, const struct ip_decode_opts *opts,
                      const struct ip__strip_runner *runner, struct ip_image *out, enum ip_format *format,
                      struct ip_error *err)
{
    struct ip_decode_opts def;
    enum ip_format fmt;
    int rc;

    ip_error_clear(err);
    if (format)
        *format = IP_FORMAT_UNKNOWN;
    if (!out)
        return ip_error_set(err, IP_EINVAL, "no output image");
    memset(out, 0, sizeof *out);
    if (!data && len > 0)
        return ip_error_set(err, IP_EINVAL, "no input data");
    if (!opts) {
        ip_decode_opts_default(&def);
        opts = &def;
    }
    if (opts->allocator && (!opts->allocator->alloc || !opts->allocator->free))
        return ip_error_set(err, IP_EINVAL, "allocator lacks alloc or free");
    if (len == 0)
        return ip_error_set(err, IP_ETRUNC, "empty file");

    fmt = ip_format_detect(data, len);
    if (format)
        *format = fmt;
    switch (fmt) {
    case IP_FORMAT_UNKNOWN:
        return ip_error_set(err, IP_EFORMAT, "not a recognized image format");
    case IP_FORMAT_PNG:
        rc = png_precheck(data, len, opts, err);
        if (rc)
            break;
        rc = opts->decoder == IP_DECODER_STB ? ip__stb_decode(data, len, fmt, opts, out, err)
                                             : ip__png_decode(data, len, writable, opts, runner, out, err);
        break;
    case IP_FORMAT_JPEG:
        rc = opts->decoder == IP_DECODER_STB ? ip__stb_decode(data, len, fmt, opts, out, err)
                                             : ip__jpeg_decode(data, len, opts, runner, out, err);
        break;
    default:
        rc = ip__stb_decode(data, len, fmt, opts, out, err);
        break;
    }
    if (rc) {
        /* Decoders free their buffer on failure; this is a safety net. */
        if (out->pixels)
            ip__pixels_free(opts, out);
        if (err && err->msg[0] == '\0')
            ip_error_set(err, rc, "%s", ip_strerror(rc));
    }
    return rc;
}

int ip_decode(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
              struct ip_image *out, enum ip_format *format, struct ip_error *err)
{
    return decode_any(data, NULL, len, opts, NULL, out, format, err);
}

int ip__decode_owned(uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                     const struct ip__strip_runner *runner, struct ip_image *out, enum ip_format *format,
                     struct ip_error *err)
{
    return decode_any(data, data, len, opts, runner, out, format, err);
}

int ip_encode(const struct ip_image *img, enum ip_format fmt, const struct ip_encode_opts *opts,
              struct ip_buf *out, struct ip_error *err)
{
    return ip__encode(img, fmt, opts, NULL, 0, NULL, out, err);
}

int ip__strips_run(const struct ip__strip_runner *runner, uint32_t n, ip__strip_fn fn, void *ctx,
                   struct ip_error *err)
{
    int rc = 0;

    if (runner && runner->run)
        return runner->run(runner->runner_ctx, n, fn, ctx, err);
    for (uint32_t k = 0; k < n && !rc; k++)
        rc = fn(ctx, k, err);
    return rc;
}

int ip__encode(const struct ip_image *img, enum ip_format fmt, const struct ip_encode_opts *opts,
               uint8_t *ws, size_t ws_len, const struct ip__strip_runner *runner, struct ip_buf *out,
               struct ip_error *err)
{
    struct ip_encode_opts def;

    ip_error_clear(err);
    if (!out)
        return ip_error_set(err, IP_EINVAL, "no output buffer");
    if (!img || !img->pixels)
        return ip_error_set(err, IP_EINVAL, "no image to encode");
    if (img->width == 0 || img->height == 0)
        return ip_error_set(err, IP_EINVAL, "cannot encode an empty %ux%u image",
                            img->width, img->height);
    if (img->channels < 1 || img->channels > 4)
        return ip_error_set(err, IP_EINVAL, "cannot encode %u channels", img->channels);
    if (img->stride / img->channels < img->width)
        return ip_error_set(err, IP_EINVAL, "stride %zu too small for width %u",
                            img->stride, img->width);
    if (!opts) {
        ip_encode_opts_default(&def);
        opts = &def;
    }
    switch (fmt) {
    case IP_FORMAT_PNG:
        if (opts->png_level < 0 || opts->png_level > 9)
            return ip_error_set(err, IP_EINVAL, "PNG level %d is not in 0..9", opts->png_level);
        return ip__png_write(img, opts->png_level, ws, ws_len, runner, out, err);
    case IP_FORMAT_JPEG:
        if (opts->jpeg_quality < 1 || opts->jpeg_quality > 100)
            return ip_error_set(err, IP_EINVAL, "JPEG quality %d is not in 1..100",
                                opts->jpeg_quality);
        return ip__jpeg_write(img, opts->jpeg_quality, runner, out, err);
    default:
        return ip_error_set(err, IP_EINVAL, "cannot encode %s (only png and jpeg)",
                            ip_format_name(fmt));
    }
}

int ip__buf_reserve(struct ip_buf *buf, size_t extra, struct ip_error *err)
{
    size_t need, cap;
    uint8_t *p;

    if (extra > SIZE_MAX - buf->len)
        return ip_error_set(err, IP_ENOMEM, "output buffer size overflow");
    need = buf->len + extra;
    if (need <= buf->cap)
        return 0;
    cap = buf->cap ? buf->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(buf->data, cap);
    if (!p)
        return ip_error_set(err, IP_ENOMEM, "out of memory for %zu-byte output buffer", cap);
    buf->data = p;
    buf->cap = cap;
    return 0;
}

int ip__buf_append(struct ip_buf *buf, const void *bytes, size_t n, struct ip_error *err)
{
    int rc;

    if (n == 0)
        return 0;
    rc = ip__buf_reserve(buf, n, err);
    if (rc)
        return rc;
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    return 0;
}

uint8_t *ip__pages_give_back(uint8_t *p, size_t len)
{
    long n = sysconf(_SC_PAGESIZE);   /* glibc answers from memory */
    size_t page = n > 0 && (n & (n - 1)) == 0 ? (size_t)n : 4096;
    uintptr_t lo, hi;

    lo = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
    hi = ((uintptr_t)p + len) & ~(uintptr_t)(page - 1);
    if (hi <= lo)
        return p;
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0)
        return NULL;
    return p + (hi - (uintptr_t)p);
}

void ip__buf_give_back(struct ip_buf *buf)
{
    buf->len = 0;
    if (buf->data && buf->cap >= IP__GIVE_BACK_MIN)
        (void)ip__pages_give_back(buf->data, buf->cap);
}

void ip_buf_free(struct ip_buf *buf)
{
    if (buf) {
        free(buf->data);
        memset(buf, 0, sizeof *buf);
    }
}

/* A read asks for at most this much, so that a stop flag is seen every few
 * MiB (some tens of ms from a slow disk) rather than after a huge file. */
#define READ_CHUNK (4u << 20)

int ip_file_read(const char *path, uint64_t max_size, struct ip_buf *out, struct ip_error *err)
{
    return ip__file_read(path, max_size, NULL, out, err);
}

int ip__file_read(const char *path, uint64_t max_size, const atomic_int *stop, struct ip_buf *out,
                  struct ip_error *err)
{
    struct stat st;
    uint8_t *data = NULL;
    size_t size, done = 0;
    int fd, flags, rc;

    ip_error_clear(err);
    if (!out || !path)
        return ip_error_set(err, IP_EINVAL, "no path or output buffer");
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK so that opening a FIFO does not hang before fstat refuses it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return ip_error_set(err, IP_EIO, "%s", strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = ip_error_set(err, IP_EIO, "%s", strerror(errno));
        goto fail_fd;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = ip_error_set(err, IP_EIO, "is a directory");
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ip_error_set(err, IP_EIO, "not a regular file");
        goto fail_fd;
    }
    if ((uint64_t)st.st_size > max_size) {
        rc = ip_error_set(err, IP_ETOOBIG, "file size %llu exceeds --max-file-size %llu",
                          (unsigned long long)st.st_size, (unsigned long long)max_size);
        goto fail_fd;
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 1) {
        rc = ip_error_set(err, IP_ETOOBIG, "file size %llu too large for this machine",
                          (unsigned long long)st.st_size);
        goto fail_fd;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    size = (size_t)st.st_size;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    data = malloc(size ? size : 1);
    if (!data) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory for %zu-byte file", size);
        goto fail_fd;
    }
    /* Reads up to the size fstat gave; a file that shrinks meanwhile is
     * returned short, one that grows is cut at the size checked above. */
    while (done < size) {
        ssize_t n;

        if (stop && atomic_load(stop)) {
            rc = ip_error_set(err, IP_EINTR, "interrupted");
            goto fail_data;
        }
        n = read(fd, data + done, size - done < READ_CHUNK ? size - done : READ_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ip_error_set(err, IP_EIO, "%s", strerror(errno));
            goto fail_data;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    out->data = data;
    out->len = done;
    out->cap = size ? size : 1;
    return 0;

fail_data:
    free(data);
fail_fd:
    close(fd);
    return rc;
}

int ip__switch_get(struct ip__switch *s)
{
    int mode = atomic_load_explicit(&s->mode, memory_order_relaxed);

    if (mode < 0) {
        const char *v = getenv(s->env);
        int unread = -1;

        mode = v && strcmp(v, "0") == 0 ? 0 : 1;
        if (!atomic_compare_exchange_strong(&s->mode, &unread, mode))
            mode = unread;   /* another thread (or ip__switch_set) was first */
    }
    return mode;
}

void ip__switch_set(struct ip__switch *s, int mode)
{
    atomic_store(&s->mode, mode);
}
