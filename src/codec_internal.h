/* Internal interface between codec.c (detection, dispatch, allocation)
 * and the per-library codec files codec_png.c, codec_jpeg.c, codec_stb.c.
 *
 * Every decoder receives validated arguments (data != NULL, len > 0, opts
 * filled in, out zeroed), gets its pixel buffer from ip__pixels_alloc once
 * the final shape is known, and on failure releases it with
 * ip__pixels_free so that *out is zeroed again. */
#ifndef IMGPAR_CODEC_INTERNAL_H
#define IMGPAR_CODEC_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "imgpar/codec.h"

/* Checks width x height x channels against opts->limits, then allocates a
 * tight buffer with opts->allocator (or malloc) and fills in *img. On
 * failure *img is zeroed and err holds the reason. */
int ip__pixels_alloc(const struct ip_decode_opts *opts, struct ip_image *img,
                     uint32_t width, uint32_t height, uint32_t channels, struct ip_error *err);

/* The same with row_room (>= width * channels) bytes per row allocated:
 * the allocator sees that as the stride, and the decoder may use the room
 * as working memory (the PNG fast path inflates there). *img gets the
 * tight stride, width * channels. */
int ip__pixels_alloc_room(const struct ip_decode_opts *opts, struct ip_image *img, uint32_t width,
                          uint32_t height, uint32_t channels, size_t row_room, struct ip_error *err);

/* Undoes ip__pixels_alloc (through the same allocator) and zeroes *img.
 * Safe on a zeroed image. */
void ip__pixels_free(const struct ip_decode_opts *opts, struct ip_image *img);

/* Appends n bytes to buf, growing it geometrically; IP_ENOMEM on failure
 * (buf unchanged). */
int ip__buf_append(struct ip_buf *buf, const void *bytes, size_t n, struct ip_error *err);

/* Makes room for at least `extra` more bytes after buf->len. */
int ip__buf_reserve(struct ip_buf *buf, size_t extra, struct ip_error *err);

/* Gives the whole pages inside [p, p + len) back to the kernel
 * (MADV_DONTNEED), keeping the memory allocated: for private anonymous
 * memory (malloc's), which then reads as zeros and is faulted in again
 * when touched. Returns the end of the last page given back (p when there
 * is none), or NULL when the kernel refused. */
uint8_t *ip__pages_give_back(uint8_t *p, size_t len);

/* Empties buf (len 0) and gives back the pages of its capacity when that
 * is at least IP__GIVE_BACK_MIN: a buffer kept for the next image then
 * holds no memory meanwhile. */
#define IP__GIVE_BACK_MIN ((size_t)256 << 10)
void ip__buf_give_back(struct ip_buf *buf);

/* The on/off switch of a fast decoding path (codec_png_fast.c,
 * codec_jpeg_prog.c): its mode starts at 1, or at 0 when the environment
 * variable env is "0" (read at first use); tests change it with
 * ip__switch_set. Initialise as {-1, "NAME"}. */
struct ip__switch {
    atomic_int mode;   /* -1 until read */
    const char *env;
};
int ip__switch_get(struct ip__switch *s);
void ip__switch_set(struct ip__switch *s, int mode);

/* ip_file_read, abandoned with IP_EINTR ("interrupted", nothing kept) once
 * *stop is nonzero: it is looked at before every read call (4 MiB). */
int ip__file_read(const char *path, uint64_t max_size, const atomic_int *stop, struct ip_buf *out,
                  struct ip_error *err);

/* A codec given a runner may spread a huge image's work over it (the
 * pipeline's loader and writer lend a strip team, team.c). run, if not NULL, calls
 * fn(ctx, k, err) for k = 0..n-1, perhaps on several threads at once and in
 * any order, and returns 0 once all have run, else the first failure (in
 * *err). used, if not NULL, is called when the decode was in fact spread
 * (and succeeded). stop, if not NULL, is the caller's flag to abandon the
 * decode (the pipeline's Ctrl-C): a whole decode on one thread looks at it
 * between deflate blocks (PNG fast path), every 16 rows (libpng) or at
 * every libjpeg progress call (a row, or an iMCU row of a scan), and
 * returns IP_EINTR with nothing allocated once it is nonzero. give_back
 * (with ip__decode_owned only): the decoder may give the pages of the
 * caller's buffer that it has read back to the kernel (PNG fast path; the
 * buffer must be private anonymous memory, as malloc's is); a decode that
 * then cannot finish returns IP__EREREAD, and the caller decodes the file
 * again from a fresh buffer without give_back. */
typedef int (*ip__strip_fn)(void *ctx, uint32_t k, struct ip_error *err);
struct ip__strip_runner {
    int (*run)(void *runner_ctx, uint32_t n, ip__strip_fn fn, void *ctx, struct ip_error *err);
    void (*used)(void *runner_ctx);
    void *runner_ctx;
    const atomic_int *stop;
    int give_back;
};
/* Not a public code: the input buffer was given back in part (give_back)
 * and the file must be read again (no message is set). */
#define IP__EREREAD (-100)
/* Bytes read between two give-backs (a MiB; the fuzz target lowers it to
 * a page, so that small inputs reach it). */
extern size_t ip__png_give_back_step;
/* Whether the runner's caller asked the decode to stop. */
static inline int ip__runner_stopped(const struct ip__strip_runner *runner)
{
    return runner && runner->stop && atomic_load_explicit(runner->stop, memory_order_relaxed);
}
/* fn(ctx, k, err) for k = 0..n-1: on runner's run when there is one, else
 * in order on this thread, stopping at the first failure (codec.c). */
int ip__strips_run(const struct ip__strip_runner *runner, uint32_t n, ip__strip_fn fn, void *ctx,
                   struct ip_error *err);

/* writable: NULL, or data itself when the caller lets the decoder
 * rearrange it (its contents are then unspecified after a successful
 * decode, and as given after a failed one). */
int ip__png_decode(const uint8_t *data, size_t len, uint8_t *writable, const struct ip_decode_opts *opts,
                   const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err);
/* ip_decode of a buffer the caller owns and gives up: as ip_decode, but a
 * PNG's IDAT data may be moved together in place instead of being copied
 * (the buffer's contents are unspecified afterwards). */
int ip__decode_owned(uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                     const struct ip__strip_runner *runner, struct ip_image *out, enum ip_format *format,
                     struct ip_error *err);
/* codec_png_fast.c: fast decoding of the common PNG layouts (strict
 * inflate, SIMD unfilter). Returns 0 (decoded, same bytes as the libpng
 * path), 1 (not handled: *out zeroed, err untouched; use libpng) or a
 * negative code from ip__pixels_alloc. ip__png_fast_set_enabled: 0 makes
 * it decline everything, 1 is normal, 2 avoids instructions beyond SSE2
 * (for tests; IMGPAR_PNG_FAST=0 in the environment starts it at 0). */
int ip__png_decode_fast(const uint8_t *data, size_t len, uint8_t *writable, const struct ip_decode_opts *opts,
                        const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err);
void ip__png_fast_set_enabled(int enabled);
/* Counts for tests: strips of a huge PNG inflated at once, strips left to
 * the serial pass, layouts given up after the team ran (a stream that
 * did not match its ipST chunk, or a bad stream: inflate_strict ran), and
 * strips unfiltered at once. */
extern atomic_uint_fast64_t ip__png_strips_parallel, ip__png_strips_deferred, ip__png_parallel_declined,
    ip__png_strips_unfiltered;
/* Bytes of replay records the strip-parallel inflate holds at once before
 * it leaves strips to the serial pass (default 32 MiB; a strip may hold a
 * 16th of it), and the largest strip it takes (default 16 MiB; a larger
 * one: the layout is ignored). Tests lower them. */
extern size_t ip__png_records_max, ip__png_strip_bytes_max;
/* Inflated size above which the fast path declines what would need
 * image-sized scratch (default 256 MiB; tests lower it). */
extern size_t ip__png_fast_max;

/* codec_png_write.c: the PNG encoder (libdeflate; zlib strips for huge images).
 * ws, when not NULL, is ws_len bytes the caller no longer needs: the
 * filtered rows go there when they fit, instead of a buffer of the thread's.
 * runner, when not NULL, encodes the strips of a huge image (ip__strips_run). */
int ip__png_write(const struct ip_image *img, int level, uint8_t *ws, size_t ws_len,
                  const struct ip__strip_runner *runner, struct ip_buf *out, struct ip_error *err);

/* ip_encode with a workspace for the PNG encoder and a runner for the
 * strips of a huge image (see ip__png_write, ip__jpeg_write). */
int ip__encode(const struct ip_image *img, enum ip_format fmt, const struct ip_encode_opts *opts,
               uint8_t *ws, size_t ws_len, const struct ip__strip_runner *runner, struct ip_buf *out,
               struct ip_error *err);

/* Images whose filtered PNG data is at least this many bytes are encoded as
 * strips (default 64 MiB; tests lower it through IMGPAR_TEST_PNG_STRIP_MIN). */
extern size_t ip__png_strip_min;
#define IP_PNG_STRIP_MIN ip__png_strip_min
/* Whether the first row of each strip is filtered with Sub (default 1), so
 * that strips unfilter independently; tests set 0 to write the layout of
 * earlier versions (Up there). */
extern int ip__png_strip_first_sub;
/* Rows per strip and number of strips (0: encoded whole); both depend only on the image. */
uint32_t ip__png_strip_rows(const struct ip_image *img);
uint32_t ip__png_strip_count(const struct ip_image *img);

/* codec_jpeg_strips.c: JPEG output, strip-parallel (restart markers) for
 * huge images; runner as for ip__png_write. */
int ip__jpeg_write(const struct ip_image *img, int quality, const struct ip__strip_runner *runner,
                   struct ip_buf *out, struct ip_error *err);
uint32_t ip__jpeg_strip_rows(const struct ip_image *img);
uint32_t ip__jpeg_strip_count(const struct ip_image *img);   /* 0: encoded whole */

/* runner: NULL, or a caller's whose stop flag the decode obeys (its run is not used). */
int ip__jpeg_decode(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                    const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err);
/* The output shape ip__jpeg_decode would give (channels 0 for CMYK files). */
int ip__jpeg_shape(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, struct ip_image *shape,
                   struct ip_error *err);
/* Decodes output rows [skip, skip + dst->height) of a JPEG into dst (same
 * width and channels), reading the data to its end when `finish`. */
int ip__jpeg_decode_rows(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, uint32_t skip,
                         const struct ip_image *dst, int finish, struct ip_error *err);

/* A sequential JPEG whose one scan has no restart markers, opened for
 * codec_jpeg_seq.c (ip__jpeg_seq_open): 0 and *out, or 1 (decode whole). */
struct ip__jpeg_seq;
struct ip__jpeg_seq_at;
int ip__jpeg_seq_new(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                     struct ip__jpeg_seq **out);
/* Output rows [skip, skip + dst->height) of a strip of that file: data is
 * the file's headers with the strip's height in SOF, then EOI; the strip's
 * MCUs start `skip_mcus` MCUs after `from`; `last`: it ends the image. */
int ip__jpeg_decode_seq_rows(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, uint32_t skip,
                             const struct ip_image *dst, const struct ip__jpeg_seq *seq,
                             const struct ip__jpeg_seq_at *from, uint64_t skip_mcus, int last,
                             struct ip_error *err);

/* codec_jpeg_strips.c: strip-parallel decoding of JPEGs with restart
 * markers. ip__jpeg_plan_strips returns NULL when the file must be decoded
 * whole (see the design note there); data must outlive the plan. Strips
 * may be decoded by any threads in any order into one image of the plan's
 * shape; together they give exactly ip__jpeg_decode's pixels. */
struct ip__jpeg_plan;
struct ip__jpeg_plan *ip__jpeg_plan_strips(const uint8_t *data, size_t len, const struct ip_decode_opts *opts);
/* Before the strips, a file without restart markers needs phases 0 and 1
 * of ip__jpeg_plan_prep_count(pl) tasks each (any threads, any order
 * within a phase; 0 tasks: none), then ip__jpeg_plan_ready: 0, or 1 when
 * it must be decoded whole (or *stop was set while it worked on one
 * thread). ip__jpeg_plan_prepare does it all on the calling thread. */
uint32_t ip__jpeg_plan_prep_count(const struct ip__jpeg_plan *pl);
int ip__jpeg_plan_prep(struct ip__jpeg_plan *pl, int phase, uint32_t k);
int ip__jpeg_plan_ready(struct ip__jpeg_plan *pl, const atomic_int *stop);
int ip__jpeg_plan_prepare(struct ip__jpeg_plan *pl);
uint32_t ip__jpeg_plan_count(const struct ip__jpeg_plan *pl);
struct ip_image ip__jpeg_plan_shape(const struct ip__jpeg_plan *pl);
int ip__jpeg_plan_decode(const struct ip__jpeg_plan *pl, uint32_t k, const struct ip_image *img,
                         struct ip_error *err);
void ip__jpeg_plan_free(struct ip__jpeg_plan *pl);
/* Offset of the next marker (0xFF then neither 0x00 nor 0xFF) in
 * entropy-coded data from pos, skipping stuffed bytes and fill; len if
 * there is none. */
size_t ip__jpeg_next_marker(const uint8_t *data, size_t len, size_t pos);
int ip__jpeg_encode(const struct ip_image *img, int quality, struct ip_buf *out, struct ip_error *err);

/* Decodes any format stb_image knows; fmt is what ip_format_detect said
 * (it selects the 16-bit PNG path and the JPEG truncation check). */
int ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                   const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err);

/* Nonzero if stb_image can read the header of data (used to recognise TGA,
 * the one format without magic bytes). */
int ip__stb_probe(const uint8_t *data, size_t len);

/* The 8 bytes at p as a little-endian number (any alignment, any host). */
static inline uint64_t ip__le64(const uint8_t *p)
{
    uint64_t v;

    __builtin_memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* libpng's png_do_scale_16_to_8: round(v * 255 / 65535), exact for all v.
 * Shared so that the stb path reduces 16-bit PNGs exactly like libpng. */
static inline uint8_t ip__scale_16_to_8(uint16_t v)
{
    return (uint8_t)(((uint32_t)v * 255u + 32895u) >> 16);
}

#endif
