/* JPEG decoding and encoding with libjpeg-turbo's libjpeg API.
 *
 * DESIGN
 * - Runs in whichever thread calls ip_decode / ip_encode; no global state.
 *   A per-call error manager (struct jpeg_ctx) replaces libjpeg's: errors
 *   longjmp back to the setjmp in decode/encode with the library's own
 *   message, nothing is ever printed, and the library never exits.
 * - Warnings are judged, not ignored: the end of data (JWRN_JPEG_EOF, after
 *   which the memory source inserts a fake EOI that the entropy decoder then
 *   hits, JWRN_HIT_MARKER) is "truncated JPEG data" (IP_ETRUNC) unless
 *   allow_truncated, in which case libjpeg finishes the image with its
 *   usual fill, the call succeeds and err->msg says so (err->code stays 0).
 *   A real marker inside a scan (JWRN_HIT_MARKER with data left) and other
 *   corrupt entropy data (bad Huffman or arithmetic code, lost restart sync,
 *   bad scan parameters) are IP_ECORRUPT, even with allow_truncated.
 *   Any error after the data ran out is the truncation's doing (libjpeg
 *   reads the fake EOI as headers or scan data): IP_ETRUNC, so a file cut
 *   before its first scan is "truncated JPEG data" with allow_truncated too.
 *   Extraneous bytes before a marker and header oddities are harmless.
 * - Output: gray -> 1 channel, YCbCr/RGB -> RGB, CMYK/YCCK -> RGB through
 *   libjpeg's CMYK output (Adobe files store inverted CMYK: R = C*K/255).
 *   jpeg_luma_only makes YCbCr and gray files 1-channel (Y). opts->gray
 *   makes the other colour files 1-channel too: RGB rows, decoded in
 *   batches of up to 24 KiB that stay in cache, go through the gray
 *   filter's own row kernel, so
 *   the pixels are those of the gray filter on the RGB decode. JDCT_ISLOW keeps
 *   decodes identical across machines. 12-bit files (which this 8-bit
 *   libjpeg cannot decode) are IP_EUNSUP "unsupported 12-bit JPEG".
 * - Limits are checked on the header's dimensions before
 *   jpeg_start_decompress allocates anything image-sized.
 * - Progressive Huffman files (whole-image decodes) go through decode_prog:
 *   codec_jpeg_prog.c decodes their scans one iMCU row at a time and
 *   libjpeg's output pass makes the pixels, with no whole-image coefficient
 *   arrays. When that path declines or fails, the file is decoded again the
 *   ordinary way (run_job), so results, warnings and errors are libjpeg's.
 * - A whole decode given a runner with a stop flag (the pipeline's Ctrl-C)
 *   checks it in libjpeg's progress monitor, called at every output row
 *   and every input step of a multi-scan file, and longjmps out with
 *   IP_EINTR: a 20000x20000 decode stops within milliseconds, not seconds.
 * - Encoding writes through a destination manager into the caller's ip_buf
 *   (no library-owned buffer to leak on error): baseline, 4:2:0 for colour,
 *   no optimisation pass, so output depends only on the input and quality.
 *   Alpha is dropped; 2 channels encode the gray channel. Gray goes in
 *   through libjpeg's raw-data input (encode_gray_raw), the same bytes as
 *   its scanline input without its per-byte copies. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "codec_internal.h"
#include "codec_jpeg_prog.h"
#include "filter_internal.h"

/* Error manager plus everything that must survive a longjmp. */
struct jpeg_ctx {
    struct jpeg_error_mgr pub;    /* libjpeg's part; must come first */
    jmp_buf jmp;
    int code;                     /* IP_E* code of the error that longjmp'd */
    int allow_truncated;          /* decode: tolerate truncation warnings */
    int truncated;                /* decode: a truncation warning was seen */
    char msg[JMSG_LENGTH_MAX];    /* text of that error */
    struct ip_image img;          /* decode: output pixels until success */
    uint32_t channels;            /* decode: output channels */
    int cmyk;                     /* decode: libjpeg's CMYK output, converted to RGB here */
    int gray;                     /* decode: 0, or the weights that make RGB rows gray here */
    uint8_t *row;                 /* CMYK/RGB (decode) or alpha-free (encode) scratch row */
    /* Progressive fast path (decode_prog). */
    struct ip__jpeg_prog *prog;   /* the scans' decoder */
    JBLOCKARRAY (*access_barray)(j_common_ptr, jvirt_barray_ptr, JDIMENSION, JDIMENSION, boolean);
                                  /* libjpeg's own access method */
    char tokens[4];               /* the coefficient "arrays" libjpeg gets: &tokens[c] */
    int ntokens;                  /* how many it asked for */
    int prog_output;              /* output pass started: rows are decoded on demand */
    int seq_input;                /* a sequential strip's input pass: its scan is empty here */
    /* Stopping a whole decode (ip__strip_runner's stop flag). */
    struct jpeg_progress_mgr progress;   /* libjpeg calls it at every row and input pass step */
    const struct ip__strip_runner *runner;
    int stopped;                  /* the flag was seen: longjmp'd out with IP_EINTR */
};

/* libjpeg's progress monitor: out of the decode when the caller stops it. */
static void progress_cb(j_common_ptr cinfo)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;

    if (ip__runner_stopped(ctx->runner)) {
        ctx->stopped = 1;
        longjmp(ctx->jmp, 1);
    }
}

static void error_exit_cb(j_common_ptr cinfo)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;

    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
        ctx->code = IP_ENOMEM;
        break;
    case JERR_BAD_PRECISION:
        ctx->code = IP_EUNSUP;
        break;
    case JERR_IMAGE_TOO_BIG:
        ctx->code = IP_ETOOBIG;
        break;
    default:
        /* Once the data ran out (JWRN_JPEG_EOF, tolerated under
         * allow_truncated) libjpeg reads the fake EOI its source inserted
         * as more headers or scan data: whatever fails then ("datastream
         * contains no image", a bogus table) is the truncation. */
        if (cinfo->is_decompressor)
            ctx->code = ctx->truncated ? IP_ETRUNC : IP_ECORRUPT;
        else
            ctx->code = IP_EINVAL;
        break;
    }
    cinfo->err->format_message(cinfo, ctx->msg);
    longjmp(ctx->jmp, 1);
}

static void emit_message_cb(j_common_ptr cinfo, int msg_level)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;

    if (msg_level >= 0 || !cinfo->is_decompressor)
        return;   /* trace messages; the encoder warns about nothing we care for */
    cinfo->err->num_warnings++;
    if (ctx->seq_input)
        return;   /* libjpeg meets EOI where the strip's data would be (decode_seq) */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
        ctx->truncated = 1;
        if (ctx->allow_truncated)
            return;
        ctx->code = IP_ETRUNC;
        snprintf(ctx->msg, sizeof ctx->msg, "truncated JPEG data");
        longjmp(ctx->jmp, 1);
    case JWRN_HIT_MARKER:
        /* After JWRN_JPEG_EOF this is the fake EOI the source inserted (the
         * data ran out); otherwise a real marker cut a scan short, which
         * is corruption, not truncation. */
        if (ctx->truncated)
            return;
        /* fall through */
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        ctx->code = ctx->truncated ? IP_ETRUNC : IP_ECORRUPT;   /* see error_exit_cb */
        cinfo->err->format_message(cinfo, ctx->msg);
        longjmp(ctx->jmp, 1);
    default:
        return;   /* JWRN_EXTRANEOUS_DATA, JFIF version, Adobe transform, ... */
    }
}

static void output_message_cb(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void init_error_mgr(struct jpeg_ctx *ctx)
{
    jpeg_std_error(&ctx->pub);
    ctx->pub.error_exit = error_exit_cb;
    ctx->pub.emit_message = emit_message_cb;
    ctx->pub.output_message = output_message_cb;
}

static uint8_t mul_255(unsigned a, unsigned b)
{
    return (uint8_t)((a * b + 127) / 255);
}

/* One row of libjpeg's CMYK output to RGB. Adobe writers (the only common
 * CMYK source) store inverted values: 0 is full ink. */
static void cmyk_to_rgb(const uint8_t *src, uint8_t *dst, uint32_t width, int inverted)
{
    uint32_t x;

    for (x = 0; x < width; x++, src += 4, dst += 3) {
        unsigned c = src[0], m = src[1], y = src[2], k = src[3];

        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        dst[0] = mul_255(c, k);
        dst[1] = mul_255(m, k);
        dst[2] = mul_255(y, k);
    }
}

/* Reads the header and chooses the output colour space (ctx->channels,
 * ctx->cmyk). Called after setjmp, so libjpeg errors longjmp out of it. */
static int decode_setup(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx, const uint8_t *data,
                        size_t len, const struct ip_decode_opts *opts, struct ip_error *err)
{
    jpeg_mem_src(cinfo, data, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);

    ctx->cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        ctx->channels = 1;
        break;
    case JCS_YCbCr:
        cinfo->out_color_space = opts->jpeg_luma_only ? JCS_GRAYSCALE : JCS_RGB;
        ctx->channels = opts->jpeg_luma_only ? 1 : 3;
        break;
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        ctx->channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        ctx->channels = 3;
        ctx->cmyk = 1;
        break;
    default:
        return ip_error_set(err, IP_EUNSUP, "unsupported JPEG color space with %d components",
                            cinfo->num_components);
    }
    ctx->gray = 0;
    if (opts->gray != 0 && opts->gray != IP_GRAY_601 && opts->gray != IP_GRAY_709)
        return ip_error_set(err, IP_EINVAL, "invalid gray weights %d", opts->gray);
    if (opts->gray && ctx->channels == 3) {
        ctx->gray = opts->gray;
        ctx->channels = 1;
    }
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_calc_output_dimensions(cinfo);
    return 0;
}

/* A colour decode made gray asks libjpeg for up to this many bytes of RGB
 * rows at a time, then makes them gray. With one row per libjpeg call and
 * per kernel call, 320x240 JPEGs decoded slower than with the gray left to
 * the filter stage, and the kernel's samples were three times its share
 * of instructions (BENCHMARKS.md, eleventh session). */
#define GRAY_BATCH_BYTES 24576u
#define GRAY_BATCH_MAX 64u

/* libjpeg-turbo's SIMD colour conversion writes an output row that starts
 * on a 16- or 32-byte boundary with non-temporal stores, which bypass the
 * cache: the gray kernel then read each row of a batch back from memory
 * (16% of the samples on 320x240 JPEGs, 5% with the rows off the boundary;
 * BENCHMARKS.md, twelfth session). So the rows of ctx->row are padded to
 * whole 32 bytes and all start this far past a 32-byte boundary. */
#define ROW_SKEW 8u

/* Decodes rows after setup: the first `skip` output rows are read and
 * dropped, the next dst->height go to dst (whose width and channels match
 * the output), then decoding stops, through the end of the data when
 * `finish`. Called after setjmp. */
static int decode_rows(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx, uint32_t skip,
                       const struct ip_image *dst, int finish, struct ip_error *err)
{
    uint32_t channels = dst->channels, end = skip + dst->height, batch = 1;
    int cmyk = ctx->cmyk, gray = ctx->gray;
    size_t width = cinfo->output_width, pitch = 0;
    uint8_t *rgb = NULL;   /* gray: the RGB row made gray */
    uint8_t *rows0 = NULL; /* the first of the batch's rows in ctx->row, pitch bytes apart */

    if (gray && !cmyk && width * 3 <= GRAY_BATCH_BYTES / 2) {
        batch = GRAY_BATCH_BYTES / (uint32_t)(width * 3);
        batch = batch > GRAY_BATCH_MAX ? GRAY_BATCH_MAX : batch;
    }
    if (cmyk || gray || skip) {
        /* CMYK and gray of CMYK need a second row for the RGB. */
        pitch = (width * (cmyk ? 4 : 3) + 31) & ~(size_t)31;
        ctx->row = malloc(pitch * batch + (cmyk && gray ? width * 3 : 0) + 31 + ROW_SKEW);
        if (!ctx->row)
            return ip_error_set(err, IP_ENOMEM, "out of memory for a JPEG row");
        rows0 = (uint8_t *)(((uintptr_t)ctx->row + 31) & ~(uintptr_t)31) + ROW_SKEW;
        rgb = cmyk ? rows0 + pitch : rows0;
    }
    if (cinfo->buffered_image)
        jpeg_start_output(cinfo, cinfo->input_scan_number);   /* decode_prog: the one output pass */
    else
        jpeg_start_decompress(cinfo);
    if ((uint32_t)cinfo->output_components != (cmyk ? 4u : gray ? 3u : channels) ||
        cinfo->output_width != dst->width || cinfo->output_height < end)
        return ip_error_set(err, IP_ECORRUPT, "unexpected JPEG output layout");

    while (cinfo->output_scanline < end) {
        uint32_t y = cinfo->output_scanline, n = end - y < batch ? end - y : batch;
        uint8_t *out = y < skip ? NULL : dst->pixels + (size_t)(y - skip) * dst->stride;
        JSAMPROW rows[GRAY_BATCH_MAX];

        /* One row, straight into dst when it needs no conversion; or a batch
         * of RGB rows to make gray. */
        rows[0] = cmyk || gray || !out ? rows0 : out;
        for (uint32_t i = 1; i < n; i++)
            rows[i] = rows0 + (size_t)i * pitch;
        for (uint32_t got = 0; got < n;) {
            JDIMENSION k = jpeg_read_scanlines(cinfo, rows + got, n - got);

            if (k == 0)
                return ip_error_set(err, IP_ECORRUPT, "JPEG decoder stopped at row %u", y + got);
            got += k;
        }
        for (uint32_t i = 0; i < n; i++, y++) {
            out = y < skip ? NULL : dst->pixels + (size_t)(y - skip) * dst->stride;
            if (!out)
                continue;
            if (cmyk)
                cmyk_to_rgb(rows[i], gray ? rgb : out, dst->width, cinfo->saw_Adobe_marker);
            if (gray)   /* the rows are still in cache: the gray filter's own kernel */
                ip__gray_row(cmyk ? rgb : rows[i], out, dst->width, 3, (enum ip_gray_weights)gray);
        }
    }
    if (finish) {
        if (cinfo->buffered_image)
            jpeg_finish_output(cinfo);
        jpeg_finish_decompress(cinfo);
    }
    return 0;
}

/* ---- progressive JPEGs: codec_jpeg_prog.c reads the scans ---- */

/* Result of a fast-path attempt that declined or failed: decode again the
 * ordinary way, which gives libjpeg's own result and messages. */
#define PROG_RETRY 1

/* Out of a libjpeg callback: run_once turns any longjmp while ctx->prog
 * is open into PROG_RETRY. */
static void prog_fail(j_common_ptr cinfo)
{
    longjmp(((struct jpeg_ctx *)cinfo->err)->jmp, 1);
}

/* Blocks per row of a component's coefficient array in libjpeg (jdcoefct.c). */
static JDIMENSION array_cols(const jpeg_component_info *ci)
{
    JDIMENSION h = (JDIMENSION)ci->h_samp_factor;

    return (ci->width_in_blocks + h - 1) / h * h;
}

/* libjpeg's coefficient controller asks for one whole-image array per
 * component; it gets a token instead, and never the memory. */
static jvirt_barray_ptr request_barray_cb(j_common_ptr cinfo, int pool_id, boolean pre_zero,
                                          JDIMENSION blocksperrow, JDIMENSION numrows, JDIMENSION maxaccess)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;

    (void)pool_id;
    (void)pre_zero;
    (void)numrows;
    (void)maxaccess;
    if (ctx->ntokens >= 4 || blocksperrow != array_cols(&((j_decompress_ptr)cinfo)->comp_info[ctx->ntokens]))
        prog_fail(cinfo);
    return (jvirt_barray_ptr)(void *)&ctx->tokens[ctx->ntokens++];
}

/* Rows of a token array: the decoder's row buffers. While libjpeg reads the
 * first scan they are scratch; in the output pass each new iMCU row is
 * decoded from every scan when libjpeg first asks for it. */
static JBLOCKARRAY access_barray_cb(j_common_ptr cinfo, jvirt_barray_ptr ptr, JDIMENSION start_row,
                                    JDIMENSION num_rows, boolean writable)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    int c, v;

    for (c = 0; c < ctx->ntokens && ptr != (jvirt_barray_ptr)(void *)&ctx->tokens[c]; c++)
        ;
    if (c == ctx->ntokens)
        return ctx->access_barray(cinfo, ptr, start_row, num_rows, writable);
    v = dinfo->comp_info[c].v_samp_factor;
    if (start_row % (JDIMENSION)v || num_rows > (JDIMENSION)v)
        prog_fail(cinfo);
    if (ctx->prog_output && ip__jpeg_prog_row(ctx->prog, start_row / (JDIMENSION)v))
        prog_fail(cinfo);
    return ip__jpeg_prog_rows(ctx->prog, c);
}

/* The source manager's refill after the cut: EOI, as if the file ended
 * there (jpeg_mem_src's own refill would warn of truncation). */
static boolean fill_eoi_cb(j_decompress_ptr cinfo)
{
    static const JOCTET eoi[2] = {0xFF, JPEG_EOI};

    cinfo->src->next_input_byte = eoi;
    cinfo->src->bytes_in_buffer = 2;
    return TRUE;
}

/* Whole-image decode of a progressive Huffman JPEG with codec_jpeg_prog.c
 * (see its design note). libjpeg runs in buffered-image mode, with its
 * input cut after the first scan and coefficient arrays that are
 * codec_jpeg_prog.c's buffers of one iMCU row: it reads the first scan
 * (into scratch) and meets EOI; then its output pass asks for the rows in
 * order, and each is decoded from all the scans just then. No coefficient
 * array for the whole image exists. Called after setjmp and decode_setup.
 * PROG_RETRY when the file must be decoded the ordinary way. */
/* The frame as codec_jpeg_prog.c needs it, after jpeg_read_header (and
 * jpeg_calc_output_dimensions): PROG_RETRY for more than 4 components. */
static int fill_frame(struct jpeg_decompress_struct *cinfo, struct ip__jpeg_prog_frame *f_out)
{
    struct ip__jpeg_prog_frame f;
    int c;

    if (cinfo->num_components > 4)
        return PROG_RETRY;
    memset(&f, 0, sizeof f);
    f.width = cinfo->image_width;
    f.height = cinfo->image_height;
    f.ncomp = cinfo->num_components;
    f.max_h = cinfo->max_h_samp_factor;
    f.max_v = cinfo->max_v_samp_factor;
    f.restart_interval = cinfo->restart_interval;
    for (c = 0; c < NUM_HUFF_TBLS; c++) {
        f.dc[c] = cinfo->dc_huff_tbl_ptrs[c];
        f.ac[c] = cinfo->ac_huff_tbl_ptrs[c];
    }
    for (c = 0; c < f.ncomp; c++) {
        const jpeg_component_info *ci = &cinfo->comp_info[c];

        f.comp[c].id = ci->component_id;
        f.comp[c].h = ci->h_samp_factor;
        f.comp[c].v = ci->v_samp_factor;
        f.comp[c].bw = ci->width_in_blocks;
        f.comp[c].bh = ci->height_in_blocks;
        f.comp[c].cols = array_cols(ci);
    }
    *f_out = f;
    return 0;
}

/* libjpeg in buffered-image mode with codec_jpeg_prog.c's row buffers for
 * coefficient arrays (ctx->prog is open): it reads its input (into
 * scratch) to EOI, then the output pass asks for the rows in order. */
static int prog_start(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx)
{
    JDIMENSION guard;
    int rc;

    ctx->access_barray = cinfo->mem->access_virt_barray;
    cinfo->mem->request_virt_barray = request_barray_cb;
    cinfo->mem->access_virt_barray = access_barray_cb;
    cinfo->buffered_image = TRUE;
    cinfo->do_block_smoothing = FALSE;
    jpeg_start_decompress(cinfo);
    if (ctx->ntokens != cinfo->num_components)
        return PROG_RETRY;
    /* One call per iMCU row of the first scan, then EOI. */
    for (guard = 0; (rc = jpeg_consume_input(cinfo)) != JPEG_REACHED_EOI; guard++)
        if (rc == JPEG_SUSPENDED || guard > cinfo->total_iMCU_rows + 4)
            return PROG_RETRY;
    ctx->prog_output = 1;
    return 0;
}

static int decode_prog(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx, const uint8_t *data,
                       size_t len, const struct ip_decode_opts *opts, struct ip_error *err)
{
    struct ip__jpeg_prog_frame f;
    size_t scan = (size_t)(cinfo->src->next_input_byte - data);
    int rc;

    if (fill_frame(cinfo, &f) || ip__jpeg_prog_open(&f, data, len, scan, &ctx->prog))
        return PROG_RETRY;   /* before the pixels: a file declined here costs no allocation */
    rc = ip__pixels_alloc(opts, &ctx->img, cinfo->output_width, cinfo->output_height, ctx->channels, err);
    if (rc)
        return rc;   /* limits or memory: the ordinary path would fail the same way */
    cinfo->src->bytes_in_buffer = ip__jpeg_prog_first_end(ctx->prog) - scan;
    cinfo->src->fill_input_buffer = fill_eoi_cb;
    rc = prog_start(cinfo, ctx);
    return rc ? rc : decode_rows(cinfo, ctx, 0, &ctx->img, 1, err);
}

/* A strip of a sequential JPEG without restart markers
 * (codec_jpeg_seq.c). The data libjpeg reads is the file's headers with
 * the strip's height, then EOI where the scan would be: its input pass
 * reads no coefficients (it warns of the missing data, ignored here), and
 * its output pass gets the strip's rows from codec_jpeg_prog.c, decoded
 * from the file where the strip's MCUs start. */
/* The frame of a sequential Huffman 8-bit JPEG (codec_jpeg_seq.c's kind),
 * or PROG_RETRY. */
static int seq_frame(struct jpeg_decompress_struct *cinfo, struct ip__jpeg_prog_frame *f)
{
    if (cinfo->progressive_mode || cinfo->arith_code || cinfo->data_precision != 8)
        return PROG_RETRY;
    return fill_frame(cinfo, f);
}

struct seq_strip {
    const struct ip__jpeg_seq *seq;
    struct ip__jpeg_seq_at from;
    uint64_t skip;   /* MCUs from `from` to the strip's first */
    int last;        /* the strip ends the image */
};

static int decode_seq(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx, const struct seq_strip *st,
                      uint32_t skip, const struct ip_image *dst, struct ip_error *err)
{
    struct ip__jpeg_prog_frame f;
    unsigned needed = 0;
    int rc;

    if (seq_frame(cinfo, &f) || ip__jpeg_prog_open_seq(&f, st->seq, &st->from, st->skip, st->last, &ctx->prog))
        return PROG_RETRY;
    ctx->seq_input = 1;
    rc = prog_start(cinfo, ctx);
    ctx->seq_input = 0;
    if (rc)
        return rc;
    for (int c = 0; c < cinfo->num_components; c++)
        needed |= (unsigned)(cinfo->comp_info[c].component_needed ? 1 : 0) << c;
    ip__jpeg_prog_seq_needed(ctx->prog, needed);
    return decode_rows(cinfo, ctx, skip, dst, 0, err);
}

/* What one decompressor run does: with shape, read the header only; with
 * dst, decode output rows [skip, skip + dst->height) into dst (a strip,
 * reading to the end of the data when finish); with neither, the whole
 * image into ctx->img (pixels from opts' allocator). */
struct job {
    struct ip_image *shape;
    const struct ip_image *dst;
    uint32_t skip;
    int finish;
    int prog;   /* whole decode: progressive Huffman files try decode_prog */
    const struct ip__strip_runner *runner;   /* whole decode: NULL, or whose stop flag to obey */
    const struct seq_strip *seq;             /* with dst: a strip of a sequential JPEG (decode_seq) */
    struct ip__jpeg_seq **seq_out;           /* header only: open codec_jpeg_seq.c on the file */
};

/* Everything between creating and destroying the decompressor; called after
 * setjmp, so libjpeg errors longjmp out of it. */
static int decode_body(struct jpeg_decompress_struct *cinfo, struct jpeg_ctx *ctx,
                       const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                       const struct job *job, struct ip_error *err)
{
    int rc = decode_setup(cinfo, ctx, data, len, opts, err);

    if (rc)
        return rc;
    if (job->seq_out) {
        struct ip__jpeg_prog_frame f;

        if (!ip__jpeg_prog_enabled() || seq_frame(cinfo, &f))
            return PROG_RETRY;
        return ip__jpeg_seq_open(&f, data, len, (size_t)(cinfo->src->next_input_byte - data), job->seq_out);
    }
    if (job->seq)
        return decode_seq(cinfo, ctx, job->seq, job->skip, job->dst, err);
    if (job->shape) {
        memset(job->shape, 0, sizeof *job->shape);
        job->shape->width = cinfo->output_width;
        job->shape->height = cinfo->output_height;
        job->shape->channels = ctx->cmyk ? 0 : ctx->channels;   /* CMYK: not for strips */
        return 0;
    }
    if (job->dst)
        return decode_rows(cinfo, ctx, job->skip, job->dst, job->finish, err);
    if (job->prog && cinfo->progressive_mode && !cinfo->arith_code && cinfo->data_precision == 8)
        return decode_prog(cinfo, ctx, data, len, opts, err);
    rc = ip__pixels_alloc(opts, &ctx->img, cinfo->output_width, cinfo->output_height, ctx->channels, err);
    if (!rc)
        rc = decode_rows(cinfo, ctx, 0, &ctx->img, 1, err);
    return rc;
}

/* Runs one job from jpeg_create_decompress to jpeg_destroy_decompress, with
 * libjpeg's errors turned into ours. Only a whole-image decode tolerates
 * truncation (under opts->allow_truncated); a strip or header read never
 * does. On success of a whole decode, *out gets the image. */
static int run_once(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, const struct job *job,
                    struct ip_image *out, struct ip_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    int whole = !job->shape && !job->dst, rc;

    if (len > (unsigned long)-1)
        return ip_error_set(err, IP_ETOOBIG, "JPEG data too large");
    memset(&ctx, 0, sizeof ctx);
    ctx.allow_truncated = whole && opts->allow_truncated;
    init_error_mgr(&ctx);
    cinfo.err = &ctx.pub;

    if (setjmp(ctx.jmp)) {
        rc = ctx.code ? ctx.code : IP_ECORRUPT;
        if (ctx.stopped)
            rc = ip_error_set(err, IP_EINTR, "interrupted");
        else if (ctx.prog)
            rc = PROG_RETRY;   /* the ordinary decode gives the error, if any */
        else if (rc == IP_EUNSUP && cinfo.data_precision != 8)
            ip_error_set(err, rc, "unsupported %d-bit JPEG", cinfo.data_precision);
        else if (rc == IP_ETRUNC)
            ip_error_set(err, rc, "truncated JPEG data");
        else
            ip_error_set(err, rc, "JPEG: %s", ctx.msg);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    if (whole && job->runner && job->runner->stop) {
        ctx.runner = job->runner;
        ctx.progress.progress_monitor = progress_cb;
        cinfo.progress = &ctx.progress;
    }
    rc = decode_body(&cinfo, &ctx, data, len, opts, job, err);
    if (rc == 0 && ctx.truncated)
        ip_error_set(err, 0, "truncated JPEG data: decoded with the missing part filled in");

done:
    jpeg_destroy_decompress(&cinfo);
    free(ctx.row);
    ip__jpeg_prog_close(ctx.prog);
    if (rc) {
        ip__pixels_free(opts, &ctx.img);
        return rc;
    }
    if (whole)
        *out = ctx.img;
    return 0;
}

/* A whole decode of a progressive file tries the fast path first, and
 * decodes again the ordinary way when it declines or fails. */
static int run_job(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, const struct job *job,
                   struct ip_image *out, struct ip_error *err)
{
    struct job j = *job;
    struct ip_error saved = {0};
    int rc;

    j.prog = !job->shape && !job->dst;
    if (j.prog && err)
        saved = *err;
    rc = run_once(data, len, opts, &j, out, err);
    if (rc == PROG_RETRY && job->seq)
        return ip_error_set(err, IP_ECORRUPT, "JPEG strip not decoded by the sequential fast path");
    if (rc != PROG_RETRY || job->seq_out)
        return rc;
    if (err)
        *err = saved;
    j.prog = 0;
    return run_once(data, len, opts, &j, out, err);
}

int ip__jpeg_shape(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, struct ip_image *shape,
                   struct ip_error *err)
{
    struct job job = {shape, NULL, 0, 0, 0, NULL, NULL, NULL};

    return run_job(data, len, opts, &job, NULL, err);
}

int ip__jpeg_decode_rows(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, uint32_t skip,
                         const struct ip_image *dst, int finish, struct ip_error *err)
{
    struct job job = {NULL, dst, skip, finish, 0, NULL, NULL, NULL};

    return run_job(data, len, opts, &job, NULL, err);
}

int ip__jpeg_seq_new(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, struct ip__jpeg_seq **out)
{
    struct ip_image shape;
    struct job job = {&shape, NULL, 0, 0, 0, NULL, NULL, out};
    struct ip_error err;

    *out = NULL;
    ip_error_clear(&err);
    return run_job(data, len, opts, &job, NULL, &err) || !*out ? 1 : 0;
}

int ip__jpeg_decode_seq_rows(const uint8_t *data, size_t len, const struct ip_decode_opts *opts, uint32_t skip,
                             const struct ip_image *dst, const struct ip__jpeg_seq *seq,
                             const struct ip__jpeg_seq_at *from, uint64_t skip_mcus, int last, struct ip_error *err)
{
    struct seq_strip st = {seq, *from, skip_mcus, last};
    struct job job = {NULL, dst, skip, 0, 0, NULL, &st, NULL};

    return run_job(data, len, opts, &job, NULL, err);
}

int ip__jpeg_decode(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
                    const struct ip__strip_runner *runner, struct ip_image *out, struct ip_error *err)
{
    struct job job = {NULL, NULL, 0, 0, 0, runner, NULL, NULL};

    return run_job(data, len, opts, &job, out, err);
}

/* Destination manager appending to an ip_buf. */
struct buf_dest {
    struct jpeg_destination_mgr pub;   /* libjpeg's part; must come first */
    struct ip_buf *out;
};

#define DEST_CHUNK 65536

static void dest_point(j_compress_ptr cinfo)
{
    struct buf_dest *dest = (struct buf_dest *)cinfo->dest;

    dest->pub.next_output_byte = dest->out->data + dest->out->len;
    dest->pub.free_in_buffer = dest->out->cap - dest->out->len;
}

static void dest_init(j_compress_ptr cinfo)
{
    struct buf_dest *dest = (struct buf_dest *)cinfo->dest;

    if (ip__buf_reserve(dest->out, DEST_CHUNK, NULL) != 0)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    dest_point(cinfo);
}

/* libjpeg calls this with the whole free space filled. */
static boolean dest_empty(j_compress_ptr cinfo)
{
    struct buf_dest *dest = (struct buf_dest *)cinfo->dest;

    dest->out->len = dest->out->cap;
    if (ip__buf_reserve(dest->out, dest->out->cap, NULL) != 0)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
    dest_point(cinfo);
    return TRUE;
}

static void dest_term(j_compress_ptr cinfo)
{
    struct buf_dest *dest = (struct buf_dest *)cinfo->dest;

    dest->out->len = (size_t)(dest->pub.next_output_byte - dest->out->data);
}

/* Gray (1 or 2 channels): libjpeg's raw-data input, 8 rows per call,
 * which skips its byte-by-byte colour-conversion copy and the
 * preprocessor's. The rows are given exactly as that path makes them:
 * padded on the right to a whole block by repeating the last pixel, and
 * the last block row filled with copies of the image's last row. A row
 * needs a copy only for that padding or to drop alpha; otherwise libjpeg
 * reads the image's own rows. Same bytes as jpeg_write_scanlines (tested
 * against libjpeg's scanline path). */
static int encode_gray_raw(struct jpeg_compress_struct *cinfo, struct jpeg_ctx *ctx, const struct ip_image *img,
                           struct ip_error *err)
{
    size_t width = img->width, padded = (width + DCTSIZE - 1) / DCTSIZE * DCTSIZE;
    int direct = img->channels == 1 && padded == width;
    JSAMPROW rows[DCTSIZE];
    JSAMPARRAY planes[1] = {rows};
    uint32_t y, x;

    if (!direct) {
        ctx->row = malloc(padded * DCTSIZE);
        if (!ctx->row)
            return ip_error_set(err, IP_ENOMEM, "out of memory for JPEG rows");
    }
    cinfo->raw_data_in = TRUE;
    jpeg_start_compress(cinfo, TRUE);
    for (y = 0; y < img->height; y += DCTSIZE) {
        for (int i = 0; i < DCTSIZE; i++) {
            uint32_t sy = y + (uint32_t)i < img->height ? y + (uint32_t)i : img->height - 1;
            const uint8_t *src = img->pixels + (size_t)sy * img->stride;
            uint8_t *dst;

            if (direct) {
                rows[i] = (JSAMPROW)(uintptr_t)src;   /* libjpeg only reads input rows */
                continue;
            }
            dst = ctx->row + (size_t)i * padded;
            if (img->channels == 1) {
                memcpy(dst, src, width);
            } else {
                for (x = 0; x < width; x++)
                    dst[x] = src[2 * x];
            }
            memset(dst + width, dst[width - 1], padded - width);
            rows[i] = dst;
        }
        if (jpeg_write_raw_data(cinfo, planes, DCTSIZE) != DCTSIZE)
            return ip_error_set(err, IP_EINVAL, "JPEG encoder took fewer rows than given");
    }
    jpeg_finish_compress(cinfo);
    return 0;
}

static int encode_body(struct jpeg_compress_struct *cinfo, struct jpeg_ctx *ctx,
                       const struct ip_image *img, int quality, struct ip_error *err)
{
    uint32_t y, x, c = img->channels;
    int gray = c <= 2;

    cinfo->image_width = img->width;
    cinfo->image_height = img->height;
    cinfo->input_components = gray ? 1 : 3;
    cinfo->in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->optimize_coding = FALSE;
    if (!gray) {
        /* 4:2:0 */
        cinfo->comp_info[0].h_samp_factor = 2;
        cinfo->comp_info[0].v_samp_factor = 2;
        cinfo->comp_info[1].h_samp_factor = cinfo->comp_info[1].v_samp_factor = 1;
        cinfo->comp_info[2].h_samp_factor = cinfo->comp_info[2].v_samp_factor = 1;
    }
    if (gray)
        return encode_gray_raw(cinfo, ctx, img, err);
    if (c == 4) {
        ctx->row = malloc((size_t)img->width * 3);
        if (!ctx->row)
            return ip_error_set(err, IP_ENOMEM, "out of memory for a JPEG row");
    }
    jpeg_start_compress(cinfo, TRUE);
    for (y = 0; y < img->height; y++) {
        const uint8_t *src = img->pixels + (size_t)y * img->stride;
        JSAMPROW row;

        if (c == 4) {
            for (x = 0; x < img->width; x++)
                memcpy(ctx->row + 3 * x, src + 4 * x, 3);
            row = ctx->row;
        } else {
            row = (JSAMPROW)(uintptr_t)src;   /* libjpeg only reads input rows */
        }
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return 0;
}

int ip__jpeg_encode(const struct ip_image *img, int quality, struct ip_buf *out, struct ip_error *err)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_ctx ctx;
    struct buf_dest dest;
    size_t start_len = out->len;
    int rc;

    memset(&ctx, 0, sizeof ctx);
    init_error_mgr(&ctx);
    cinfo.err = &ctx.pub;
    memset(&dest, 0, sizeof dest);
    dest.out = out;
    dest.pub.init_destination = dest_init;
    dest.pub.empty_output_buffer = dest_empty;
    dest.pub.term_destination = dest_term;

    if (setjmp(ctx.jmp)) {
        rc = ip_error_set(err, ctx.code ? ctx.code : IP_EINVAL, "JPEG encoder: %s", ctx.msg);
        out->len = start_len;
        goto done;
    }
    jpeg_create_compress(&cinfo);
    cinfo.dest = &dest.pub;
    rc = encode_body(&cinfo, &ctx, img, quality, err);
    if (rc)
        out->len = start_len;

done:
    jpeg_destroy_compress(&cinfo);
    free(ctx.row);
    return rc;
}
