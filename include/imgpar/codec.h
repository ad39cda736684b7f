/* Decoding and encoding images held in memory.
 *
 * The format of an input is chosen by its magic bytes, never by its name.
 * PNG goes through libpng, JPEG through libjpeg-turbo, everything else
 * stb_image knows (BMP, GIF first frame, PNM, PSD, TGA, HDR tone-mapped)
 * through stb_image. */
#ifndef IMGPAR_CODEC_H
#define IMGPAR_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "imgpar/error.h"
#include "imgpar/image.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ip_format {
    IP_FORMAT_UNKNOWN = 0,
    IP_FORMAT_PNG,
    IP_FORMAT_JPEG,
    IP_FORMAT_BMP,
    IP_FORMAT_GIF,
    IP_FORMAT_PNM,
    IP_FORMAT_PSD,
    IP_FORMAT_TGA,
    IP_FORMAT_HDR,
};

enum ip_decoder {
    IP_DECODER_NATIVE = 0,   /* libpng for PNG, libjpeg-turbo for JPEG */
    IP_DECODER_STB,          /* stb_image for PNG and JPEG too */
};

/* Custom pixel allocation, used to decode straight into a pipeline slot.
 * alloc receives the decoded shape (width, height, channels, stride) in
 * *shape and returns the buffer in *pixels (at least stride*height bytes),
 * or a negative IP_E* code with a reason in err. free undoes one alloc.
 * The stride asked for may exceed width*channels: the decoder then uses
 * the buffer as working memory too, and the decoded image, which starts at
 * *pixels, has the stride width*channels. */
struct ip_allocator {
    int (*alloc)(void *ctx, const struct ip_image *shape, uint8_t **pixels, struct ip_error *err);
    void (*free)(void *ctx, uint8_t *pixels);
    void *ctx;
};

struct ip_decode_opts {
    struct ip_limits limits;
    enum ip_decoder decoder;
    int allow_truncated;     /* nonzero: truncated JPEG/PNG decoded with a warning instead of failing */
    int jpeg_luma_only;      /* nonzero: decode a YCbCr/gray JPEG to its Y channel (1 channel) */
    int gray;                /* 0, or IP_GRAY_601 / IP_GRAY_709 (imgpar/filter.h): decode a
                              * colour JPEG (not one jpeg_luma_only makes Y) to 1 channel, the
                              * gray filter applied to its RGB, byte for byte, without the RGB
                              * image (other formats ignore it; other values: IP_EINVAL) */
    const struct ip_allocator *allocator; /* NULL: malloc; free with ip_image_free */
};

struct ip_encode_opts {
    int png_level;           /* 0..9, default 6 */
    int jpeg_quality;        /* 1..100, default 90 */
};

/* A growable byte buffer; the holder frees data with ip_buf_free. */
struct ip_buf {
    uint8_t *data;
    size_t len, cap;
};

void ip_decode_opts_default(struct ip_decode_opts *opts);
void ip_encode_opts_default(struct ip_encode_opts *opts);

/* Format by magic bytes; IP_FORMAT_UNKNOWN if none matches. */
enum ip_format ip_format_detect(const uint8_t *data, size_t len);

/* "png", "jpeg", "bmp", ...; "unknown". */
const char *ip_format_name(enum ip_format fmt);

/* File extension (without dot) imgpar writes for an output format. */
const char *ip_format_ext(enum ip_format fmt);

/* Decodes data[0..len) into *out (8-bit, 1-4 channels, tight stride).
 * Palette and tRNS are expanded (gray+tRNS -> gray+alpha, palette -> RGB or
 * RGBA), 16-bit samples reduced to 8 with rounding, interlacing undone,
 * CMYK/YCCK JPEGs converted to RGB. Dimensions are checked against
 * opts->limits before any pixel allocation. On failure nothing stays
 * allocated and err holds a specific reason ("truncated PNG data"). */
int ip_decode(const uint8_t *data, size_t len, const struct ip_decode_opts *opts,
              struct ip_image *out, enum ip_format *format, struct ip_error *err);

/* Encodes img as PNG or JPEG into *out (appending to an empty buffer).
 * JPEG drops an alpha channel (JPEG has none) and uses 4:2:0 for colour. */
int ip_encode(const struct ip_image *img, enum ip_format fmt, const struct ip_encode_opts *opts,
              struct ip_buf *out, struct ip_error *err);

void ip_buf_free(struct ip_buf *buf);

/* Reads a whole file into *out (4 MiB per read call), refusing files larger
 * than max_size and anything that is not a regular file. */
int ip_file_read(const char *path, uint64_t max_size, struct ip_buf *out, struct ip_error *err);

#ifdef __cplusplus
}
#endif
#endif
