/* Decoding with stb_image: BMP, GIF (first frame), PNM, PSD, TGA, HDR
 * (tone-mapped by stb's HDR-to-LDR conversion), and PNG/JPEG when
 * IP_DECODER_STB is chosen.
 *
 * DESIGN
 * - stb_image is compiled into this file only (no stdio, no PIC support so
 *   that the TGA probe cannot mistake arbitrary data for a Softimage file).
 *   Its failure reason is thread-local, and unpremultiply / iPhone
 *   conversion are switched off per thread (the global setters would race),
 *   so any thread may decode concurrently.
 * - The header is read first (stbi_info_from_memory) and the dimensions
 *   checked against the limits before stb allocates any pixels. stb decodes
 *   into its own buffer with the file's own channel layout (req_comp 0, which
 *   keeps gray+tRNS PNGs as gray+alpha like libpng); the pixels are then
 *   copied into the caller's allocation and stb's buffer freed.
 * - 16-bit PNGs are decoded at 16 bits and reduced exactly like libpng's
 *   png_set_scale_16, so both PNG decoders give identical bytes.
 * - A JPEG whose last scan has no EOI after it is "truncated JPEG data"
 *   (IP_ETRUNC) unless allow_truncated; then, like libjpeg's memory source,
 *   an EOI is appended (to a copy) so that stb finishes the image, and
 *   err->msg holds a warning with code 0. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"

#define STBI_NO_STDIO
#define STBI_NO_PIC
#define STBI_MAX_DIMENSIONS 65535
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* stb_image 2.27 declares this but defines it under another name. */
STBIDEF void stbi_set_unpremultiply_on_load_thread(int flag_true_if_should_unpremultiply)
{
    stbi__unpremultiply_on_load_thread(flag_true_if_should_unpremultiply);
}

int ip__stb_probe(const uint8_t *data, size_t len)
{
    int w, h, comp;

    if (len > INT_MAX)
        return 0;
    return stbi_info_from_memory(data, (int)len, &w, &h, &comp) != 0;
}

static int stb_error(struct ip_error *err, const char *what)
{
    const char *reason = stbi_failure_reason();

    if (reason && strcmp(reason, "outofmem") == 0)
        return ip_error_set(err, IP_ENOMEM, "%s: out of memory", what);
    if (!reason || reason[0] == '\0')
        reason = "corrupt or truncated data";
    return ip_error_set(err, IP_ECORRUPT, "%s: %s", what, reason);
}

/* A complete JPEG ends its last scan (SOS, FF DA) with EOI (FF D9). Entropy
 * data never holds FF DA or FF D9, and markers inside APP segments (EXIF
 * thumbnails) come before the main image's scans, so an image with no EOI
 * after its last SOS was cut short. */
static int jpeg_has_eoi(const uint8_t *data, size_t len)
{
    size_t i, last_sos = 0, last_eoi = 0;
    int seen_eoi = 0;

    for (i = 0; i + 1 < len; i++) {
        if (data[i] != 0xff)
            continue;
        if (data[i + 1] == 0xda)
            last_sos = i;
        else if (data[i + 1] == 0xd9) {
            last_eoi = i;
            seen_eoi = 1;
        }
    }
    return seen_eoi && last_eoi > last_sos;
}

int ip__stb_decode(const uint8_t *data, size_t len, enum ip_format fmt,
                   const struct ip_decode_opts *opts, struct ip_image *out, struct ip_error *err)
{
    const char *what = "stb_image";
    stbi_uc *pixels = NULL;
    stbi_us *pixels16 = NULL;
    uint8_t *patched = NULL;   /* truncated JPEG with an EOI appended */
    int w, h, comp, n = 0, rc, sixteen, truncated = 0;
    size_t i, count;

    /* Per-thread settings: stored colours as they are, no iPhone BGR swap. */
    stbi_set_unpremultiply_on_load_thread(0);
    stbi_convert_iphone_png_to_rgb_thread(0);
    if (fmt == IP_FORMAT_PNG)
        what = "PNG (stb_image)";
    else if (fmt == IP_FORMAT_JPEG)
        what = "JPEG (stb_image)";
    if (len > INT_MAX)
        return ip_error_set(err, IP_ETOOBIG, "%s: input larger than %d bytes", what, INT_MAX);
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp))
        return stb_error(err, what);
    if (w <= 0 || h <= 0 || comp < 1 || comp > 4)
        return ip_error_set(err, IP_ECORRUPT, "%s: bad header (%dx%d, %d channels)", what, w, h,
                            comp);
    /* Gray+tRNS PNGs report 1 channel here and decode to 2: check for 4. */
    rc = ip_image_check((uint32_t)w, (uint32_t)h, 4, &opts->limits, NULL, err);
    if (rc)
        return rc;
    if (fmt == IP_FORMAT_JPEG && !jpeg_has_eoi(data, len)) {
        if (!opts->allow_truncated)
            return ip_error_set(err, IP_ETRUNC, "truncated JPEG data");
        /* stb_image fails at the end of data where libjpeg's source inserts
         * an EOI; do the same so that it finishes the image. */
        if (len > (size_t)INT_MAX - 2)
            return ip_error_set(err, IP_ETOOBIG, "%s: input too large", what);
        patched = malloc(len + 2);
        if (!patched)
            return ip_error_set(err, IP_ENOMEM, "%s: out of memory", what);
        memcpy(patched, data, len);
        patched[len] = 0xff;
        patched[len + 1] = 0xd9;
        data = patched;
        len += 2;
        truncated = 1;
    }

    sixteen = fmt == IP_FORMAT_PNG && stbi_is_16_bit_from_memory(data, (int)len);
    if (sixteen)
        pixels16 = stbi_load_16_from_memory(data, (int)len, &w, &h, &n, 0);
    else
        pixels = stbi_load_from_memory(data, (int)len, &w, &h, &n, 0);
    if (!pixels && !pixels16) {
        rc = stb_error(err, what);
        goto done;
    }
    if (n < 1 || n > 4) {
        rc = ip_error_set(err, IP_EUNSUP, "%s: unsupported %d-channel image", what, n);
        goto done;
    }
    rc = ip__pixels_alloc(opts, out, (uint32_t)w, (uint32_t)h, (uint32_t)n, err);
    if (rc)
        goto done;
    count = out->stride * out->height;
    if (sixteen) {
        for (i = 0; i < count; i++)
            out->pixels[i] = ip__scale_16_to_8(pixels16[i]);
    } else {
        memcpy(out->pixels, pixels, count);
    }
    if (truncated)
        ip_error_set(err, 0, "truncated JPEG data: decoded with the missing part filled in");

done:
    stbi_image_free(pixels);
    stbi_image_free(pixels16);
    free(patched);
    return rc;
}
