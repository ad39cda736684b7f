/* Strip-parallel JPEG encoding for huge images.
 *
 * DESIGN: a JPEG with a restart interval of one strip (a whole number of
 * MCU rows) is a sequence of independent entropy-coded segments: at each
 * restart the encoder pads to a byte, writes RSTn and resets the DC
 * predictors. Encoding each strip as a JPEG of its own, with the same
 * settings (same quantisation and standard Huffman tables, no optimisation),
 * gives exactly those segments. So strips can be encoded by any threads in
 * any order (ip__jpeg_encode on a view of the rows) and joined: the first
 * strip's headers with the full height patched into SOF and a DRI marker
 * added, then segment 0, RST0, segment 1, RST1, ... and EOI. Strip rows are
 * a multiple of the MCU height, fixed by the image alone (never by -j), and
 * bounded so that the restart interval fits in 16 bits. Images with fewer
 * than IP_PNG_STRIP_MIN bytes of pixels are encoded whole. */
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"

#define STRIP_TARGET (4u << 20)

static uint32_t mcu_rows(const struct ip_image *img)
{
    return img->channels <= 2 ? 8 : 16;   /* gray, or 4:2:0 colour */
}

static uint32_t mcus_per_row(const struct ip_image *img)
{
    uint32_t w = img->channels <= 2 ? 8 : 16;
    return (img->width + w - 1) / w;
}

uint32_t ip__jpeg_strip_rows(const struct ip_image *img)
{
    size_t target = ip__png_strip_min / 4 < STRIP_TARGET ? ip__png_strip_min / 4 : STRIP_TARGET;
    size_t row = (size_t)img->width * img->channels;
    uint32_t m = mcu_rows(img);
    size_t units = (target / (row ? row : 1)) / m;   /* MCU rows per strip */
    size_t max_units = 65535u / mcus_per_row(img);   /* DRI is 16 bits */

    if (units > max_units)
        units = max_units;
    if (units < 1)
        units = 1;
    return (uint32_t)(units * m);
}

uint32_t ip__jpeg_strip_count(const struct ip_image *img)
{
    size_t bytes;

    if (mcus_per_row(img) > 65535u ||
        ip_mul_size((size_t)img->width * img->channels, img->height, &bytes) != 0 ||
        bytes < IP_PNG_STRIP_MIN)
        return 0;
    return (img->height + ip__jpeg_strip_rows(img) - 1) / ip__jpeg_strip_rows(img);
}

int ip__jpeg_strip_encode(const struct ip_image *img, int quality, uint32_t k, struct ip_buf *out,
                          struct ip_error *err)
{
    uint32_t rows = ip__jpeg_strip_rows(img), y0 = k * rows;
    struct ip_image view = *img;

    if (y0 >= img->height)
        return ip_error_set(err, IP_EINVAL, "JPEG strip %u out of range", k);
    view.pixels = img->pixels + (size_t)y0 * img->stride;
    view.height = img->height - y0 < rows ? img->height - y0 : rows;
    out->len = 0;
    return ip__jpeg_encode(&view, quality, out, err);
}

/* Offset of the first byte after the SOS header, and of SOF's height field. */
static int find_markers(const uint8_t *d, size_t n, size_t *scan, size_t *sof_height)
{
    size_t i = 2;

    *sof_height = 0;
    while (i + 4 <= n) {
        uint8_t m;
        size_t len;

        if (d[i] != 0xFF)
            return -1;
        m = d[i + 1];
        len = ((size_t)d[i + 2] << 8) | d[i + 3];
        if (m >= 0xC0 && m <= 0xC2 && i + 7 <= n)
            *sof_height = i + 5;
        if (m == 0xDA) {
            *scan = i + 2 + len;
            return *scan <= n && *sof_height ? 0 : -1;
        }
        i += 2 + len;
    }
    return -1;
}

int ip__jpeg_strips_join(const struct ip_image *img, const struct ip_buf *strips, uint32_t n,
                         struct ip_buf *out, struct ip_error *err)
{
    size_t scan, sofh, scan_k, sofh_k, start = out->len;
    uint32_t interval = ip__jpeg_strip_rows(img) / mcu_rows(img) * mcus_per_row(img);
    uint8_t dri[6] = {0xFF, 0xDD, 0, 4, (uint8_t)(interval >> 8), (uint8_t)interval};
    int rc = 0;

    if (find_markers(strips[0].data, strips[0].len, &scan, &sofh) != 0)
        return ip_error_set(err, IP_EINVAL, "JPEG strip without a scan");
    /* Headers up to the SOS marker, then DRI, then SOS. */
    size_t sos = scan;
    {
        size_t i = 2;
        while (i + 4 <= strips[0].len && strips[0].data[i + 1] != 0xDA)
            i += 2 + (((size_t)strips[0].data[i + 2] << 8) | strips[0].data[i + 3]);
        sos = i;
    }
    rc = ip__buf_append(out, strips[0].data, sos, err);
    if (!rc) {
        out->data[start + sofh] = (uint8_t)(img->height >> 8);
        out->data[start + sofh + 1] = (uint8_t)img->height;
        rc = ip__buf_append(out, dri, sizeof dri, err);
    }
    if (!rc)
        rc = ip__buf_append(out, strips[0].data + sos, scan - sos, err);
    for (uint32_t k = 0; k < n && !rc; k++) {
        const struct ip_buf *s = &strips[k];
        uint8_t rst[2] = {0xFF, (uint8_t)(0xD0 + (k & 7))};

        if (find_markers(s->data, s->len, &scan_k, &sofh_k) != 0 || s->len < scan_k + 2 ||
            s->data[s->len - 2] != 0xFF || s->data[s->len - 1] != 0xD9) {
            rc = ip_error_set(err, IP_EINVAL, "JPEG strip %u is malformed", k);
            break;
        }
        rc = ip__buf_append(out, s->data + scan_k, s->len - 2 - scan_k, err);
        if (!rc && k + 1 < n)
            rc = ip__buf_append(out, rst, 2, err);
    }
    if (!rc)
        rc = ip__buf_append(out, (const uint8_t[]){0xFF, 0xD9}, 2, err);
    if (rc)
        out->len = start;
    return rc;
}

int ip__jpeg_write(const struct ip_image *img, int quality, struct ip_buf *out, struct ip_error *err)
{
    uint32_t n = ip__jpeg_strip_count(img);
    struct ip_buf *strips;
    int rc = 0;

    if (n <= 1)
        return ip__jpeg_encode(img, quality, out, err);
    strips = calloc(n, sizeof *strips);
    if (!strips)
        return ip_error_set(err, IP_ENOMEM, "out of memory for JPEG strips");
    for (uint32_t k = 0; k < n && !rc; k++)
        rc = ip__jpeg_strip_encode(img, quality, k, &strips[k], err);
    if (!rc)
        rc = ip__jpeg_strips_join(img, strips, n, out, err);
    for (uint32_t k = 0; k < n; k++)
        ip_buf_free(&strips[k]);
    free(strips);
    return rc;
}
