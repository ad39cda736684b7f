/* Test helper: encodes a binary PPM (P6) with libjpeg directly, with the
 * layout a test asks for, so the strip decoder meets files that imgpar's
 * own encoder never writes.
 *
 * usage: jpeg_make IN.ppm OUT.jpg SAMPLING RESTART [progressive]
 *   SAMPLING  444, 422, 420, 440 (luma h x v factors 1x1, 2x1, 2x2, 1x2) or gray
 *   RESTART   rN: a restart interval of N MCU rows; mN: of N MCUs; 0: none */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static unsigned char *read_ppm(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    unsigned char *px;
    int maxval;

    if (!f || fscanf(f, "P6 %d %d %d", w, h, &maxval) != 3 || maxval != 255 || fgetc(f) == EOF) {
        fprintf(stderr, "jpeg_make: cannot read %s\n", path);
        exit(2);
    }
    px = malloc((size_t)*w * *h * 3);
    if (!px || fread(px, 3, (size_t)*w * *h, f) != (size_t)*w * *h) {
        fprintf(stderr, "jpeg_make: short %s\n", path);
        exit(2);
    }
    fclose(f);
    return px;
}

int main(int argc, char **argv)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    int w, h, gray, hs = 1, vs = 1;
    unsigned char *px;
    FILE *out;

    if (argc < 5) {
        fprintf(stderr, "usage: jpeg_make IN.ppm OUT.jpg 444|422|420|440|gray rN|mN|0 [progressive]\n");
        return 2;
    }
    px = read_ppm(argv[1], &w, &h);
    gray = strcmp(argv[3], "gray") == 0;
    if (strcmp(argv[3], "422") == 0)
        hs = 2;
    else if (strcmp(argv[3], "420") == 0)
        hs = vs = 2;
    else if (strcmp(argv[3], "440") == 0)
        vs = 2;
    out = fopen(argv[2], "wb");
    if (!out)
        return 2;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, out);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (gray)
        jpeg_set_colorspace(&c, JCS_GRAYSCALE);
    else {
        c.comp_info[0].h_samp_factor = hs;
        c.comp_info[0].v_samp_factor = vs;
    }
    if (argv[4][0] == 'r')
        c.restart_in_rows = atoi(argv[4] + 1);
    else if (argv[4][0] == 'm')
        c.restart_interval = (unsigned)atoi(argv[4] + 1);
    if (argc > 5 && strcmp(argv[5], "progressive") == 0)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * w * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(out);
    free(px);
    return 0;
}
