/* PNG decoding with libpng (encoding: codec_png_write.c).
 *
 * DESIGN
 * - Runs in whichever thread calls ip_decode; no global state.
 *   libpng reports errors through png_error, which lands in error_cb: it
 *   copies the message into the per-call struct png_ctx and longjmps back to
 *   the setjmp in decode. Everything that changes after setjmp lives
 *   in that struct, never in a register-allocated local.
 * - Decoding reads from memory (read_cb over data/len). Running past the end
 *   is "truncated PNG data" (IP_ETRUNC). CRC errors in every chunk, and
 *   libpng's "benign" errors (too much or too little image data, extra
 *   compressed data), are errors. Ancillary chunks other than tRNS are
 *   skipped unparsed (their CRC is still checked): imgpar does no colour
 *   management, and skipping them keeps a harmless iCCP oddity from being
 *   fatal once benign errors are.
 * - The output is 8-bit and tight: palette -> RGB(A), tRNS -> alpha, 1/2/4
 *   bit gray scaled up, 16-bit scaled down with rounding (png_set_scale_16),
 *   interlacing undone, no gamma correction.
 * - Limits: codec.c checks the IHDR dimensions before any decoder starts
 *   (a 100000x100000 header in a 45-byte file is refused at once); the final
 *   shape is checked again by ip__pixels_alloc before the pixels exist, and
 *   png_set_user_limits repeats max_dim inside libpng.
 * - allow_truncated: rows are decoded one at a time straight into the output;
 *   when the data ends early every row the data holds is kept (see read_cb),
 *   the rows not reached are zero (interlaced images are zeroed up front, so
 *   missing passes read as 0), the call succeeds and err->msg says how far
 *   decoding got (err->code stays 0). Truncation before the first row, or
 *   anything other than truncation, is still an error.
 * - A runner's stop flag (the pipeline's Ctrl-C) is looked at every 16
 *   rows: IP_EINTR, and the pixels are freed. */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "codec_internal.h"

/* State shared with libpng's callbacks; lives across setjmp/longjmp. */
struct png_ctx {
    const uint8_t *data;   /* input (decode) */
    size_t len, pos;       /* input size and read position */
    int truncated;         /* read_cb ran out of data */
    int allow_truncated;   /* opts->allow_truncated */
    int small_reads;       /* IDAT now read a byte at a time (near the end) */
    int reading_rows;      /* set once pixel rows are being decoded */
    int pass;              /* interlace pass being read (0 when not interlaced) */
    uint32_t rows_done;    /* rows of that pass fully read */
    char msg[IP_ERROR_MSG_MAX]; /* libpng's error message */
    struct ip_image img;   /* decoded pixels, owned until success */
};

static void error_cb(png_structp png, png_const_charp msg)
{
    struct png_ctx *ctx = png_get_error_ptr(png);

    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void read_cb(png_structp png, png_bytep dst, size_t n)
{
    struct png_ctx *ctx = png_get_io_ptr(png);

    if (n > ctx->len - ctx->pos) {
        ctx->truncated = 1;
        png_error(png, "truncated PNG data");
    }
    memcpy(dst, ctx->data + ctx->pos, n);
    ctx->pos += n;
    /* libpng feeds zlib in PNG_IDAT_READ_SIZE pieces and reads a whole
     * piece before inflating it, so a cut inside the last piece would lose
     * every row it holds. Near the end of the data, when truncation is
     * tolerated, read IDAT data a byte at a time instead (on a read struct
     * png_set_compression_buffer_size sets that piece size) so that every
     * row the data contains is decoded. */
    if (ctx->allow_truncated && !ctx->small_reads &&
        ctx->len - ctx->pos <= (size_t)PNG_IDAT_READ_SIZE + 12) {
        ctx->small_reads = 1;
        png_set_compression_buffer_size(png, 1);
    }
}

/* Ancillary chunks libpng would parse but imgpar has no use for. */
static const png_byte skipped_chunks[] =
    "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
    "sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";

static int error_code(const struct png_ctx *ctx)
{
    if (ctx->truncated)
        return IP_ETRUNC;
    if (strstr(ctx->msg, "ut of memory") || strstr(ctx->msg, "Insufficient memory"))
        return IP_ENOMEM;
    if (strstr(ctx->msg, "exceeds user limit"))
        return IP_ETOOBIG;
    return IP_ECORRUPT;
}

/* Sets up transforms and reads all rows into ctx->img. Called after
 * setjmp; any libpng error longjmps out of it. */
static int decode_rows(png_structp png, png_infop info, struct png_ctx *ctx,
                       const struct ip_decode_opts *opts, const struct ip__strip_runner *runner,
                       struct ip_error *err)
{
    uint32_t width, height, channels, y;
    int bit_depth, color_type, interlace, passes, pass, rc;

    png_read_info(png, info);
    width = png_get_image_width(png, info);
    height = png_get_image_height(png, info);
    bit_depth = png_get_bit_depth(png, info);
    color_type = png_get_color_type(png, info);
    interlace = png_get_interlace_type(png, info);

    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16)
        png_set_scale_16(png);
    passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    channels = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || channels < 1 || channels > 4)
        return ip_error_set(err, IP_ECORRUPT, "unexpected PNG layout after transforms");
    rc = ip__pixels_alloc(opts, &ctx->img, width, height, channels, err);
    if (rc)
        return rc;
    if (png_get_rowbytes(png, info) != ctx->img.stride)
        return ip_error_set(err, IP_ECORRUPT, "unexpected PNG row size");
    if (interlace != PNG_INTERLACE_NONE && opts->allow_truncated)
        memset(ctx->img.pixels, 0, ctx->img.stride * height);

    ctx->reading_rows = 1;
    for (pass = 0; pass < passes; pass++) {
        ctx->pass = pass;
        ctx->rows_done = 0;
        for (y = 0; y < height; y++) {
            if (y % 16 == 0 && ip__runner_stopped(runner))
                return ip_error_set(err, IP_EINTR, "interrupted");
            png_read_row(png, ctx->img.pixels + (size_t)y * ctx->img.stride, NULL);
            ctx->rows_done = y + 1;
        }
    }
    png_read_end(png, NULL);
    return 0;
}

int ip__png_decode(const uint8_t *data, size_t len, uint8_t *writable, const struct ip_decode_opts *opts,
                   const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err)
{
    struct png_ctx ctx;
    png_structp png;
    png_infop info = NULL;
    uint32_t max_dim;
    int rc;

    if ((rc = ip__png_decode_fast(data, len, writable, opts, runner, out, err)) != 1)
        return rc;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.len = len;
    ctx.allow_truncated = opts->allow_truncated;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, error_cb, warning_cb);
    if (!png)
        return ip_error_set(err, IP_ENOMEM, "out of memory creating PNG decoder");
    info = png_create_info_struct(png);
    if (!info) {
        rc = ip_error_set(err, IP_ENOMEM, "out of memory creating PNG decoder");
        goto done;
    }

    if (setjmp(png_jmpbuf(png))) {
        rc = error_code(&ctx);
        if (rc == IP_ETRUNC && opts->allow_truncated && ctx.reading_rows) {
            size_t stride = ctx.img.stride;
            uint32_t h = ctx.img.height;
            int interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;

            if (!interlaced && ctx.rows_done < h)
                memset(ctx.img.pixels + (size_t)ctx.rows_done * stride, 0,
                       (size_t)(h - ctx.rows_done) * stride);
            if (interlaced)
                ip_error_set(err, 0, "truncated PNG data: stopped in pass %d of 7, row %u of %u",
                             ctx.pass + 1, ctx.rows_done, h);
            else
                ip_error_set(err, 0, "truncated PNG data: decoded %u of %u rows", ctx.rows_done, h);
            rc = 0;
        } else if (rc == IP_ETRUNC) {
            ip_error_set(err, rc, "truncated PNG data");
        } else if (ctx.msg[0] == '\0') {
            ip_error_set(err, rc, "corrupt PNG data");
        } else {
            ip_error_set(err, rc, "PNG: %s", ctx.msg);
        }
        goto done;
    }

    /* Strict: bad CRCs anywhere and libpng's benign errors are fatal. */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_benign_errors(png, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped_chunks,
                                (int)(sizeof skipped_chunks / 5));
    max_dim = opts->limits.max_dim < PNG_UINT_31_MAX ? opts->limits.max_dim : PNG_UINT_31_MAX;
    png_set_user_limits(png, max_dim, max_dim);
    png_set_read_fn(png, &ctx, read_cb);

    rc = decode_rows(png, info, &ctx, opts, runner, err);

done:
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    if (rc) {
        ip__pixels_free(opts, &ctx.img);
        return rc;
    }
    *out = ctx.img;
    return 0;
}

