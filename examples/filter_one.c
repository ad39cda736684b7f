/* Load one image, filter it, save it: the public libimgpar API in one page.
 *
 *   cc filter_one.c $(pkg-config --cflags --libs imgpar) -o filter_one
 *   ./filter_one in.png out.png
 *
 * Reads IN, converts it to grayscale and applies a Gaussian blur of sigma 2
 * (the imgpar default chain), and writes OUT as PNG (or JPEG when OUT ends
 * in .jpg). Exits 1 with the library's reason on failure. */
#include <stdio.h>
#include <string.h>

#include <imgpar/codec.h>
#include <imgpar/filter.h>
#include <imgpar/image.h>
#include <imgpar/version.h>

int main(int argc, char **argv)
{
    struct ip_buf file = {0}, encoded = {0};
    struct ip_decode_opts dopts;
    struct ip_encode_opts eopts;
    struct ip_image src = {0}, dst = {0};
    struct ip_chain chain;
    struct ip_error err = {0};
    enum ip_format in_fmt, out_fmt;
    size_t len;
    FILE *f;
    int rc = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s IN OUT   (libimgpar %s)\n", argv[0], ip_version());
        return 2;
    }
    len = strlen(argv[2]);
    out_fmt = len > 4 && !strcmp(argv[2] + len - 4, ".jpg") ? IP_FORMAT_JPEG : IP_FORMAT_PNG;

    ip_decode_opts_default(&dopts);
    ip_encode_opts_default(&eopts);
    if (ip_file_read(argv[1], dopts.limits.max_file_size, &file, &err) ||
        ip_decode(file.data, file.len, &dopts, &src, &in_fmt, &err))
        goto out;

    ip_chain_default(&chain);   /* gray (Rec.601), then Gaussian sigma 2 */
    if (ip_image_alloc(&dst, src.width, src.height, ip_chain_out_channels(&chain, src.channels),
                       &dopts.limits, &err) ||
        ip_chain_run(&chain, &src, &dst, NULL))
        goto out;

    if (ip_encode(&dst, out_fmt, &eopts, &encoded, &err))
        goto out;
    f = fopen(argv[2], "wb");
    if (!f || fwrite(encoded.data, 1, encoded.len, f) != encoded.len || fclose(f) != 0) {
        perror(argv[2]);
        goto out;
    }
    printf("%s (%s, %ux%u, %u channels) -> %s (%zu bytes)\n", argv[1], ip_format_name(in_fmt),
           src.width, src.height, src.channels, argv[2], encoded.len);
    rc = 0;
out:
    if (rc && err.code)
        fprintf(stderr, "%s: %s\n", argv[1], err.msg[0] ? err.msg : ip_strerror(err.code));
    ip_buf_free(&encoded);
    ip_image_free(&dst);
    ip_image_free(&src);
    ip_buf_free(&file);
    return rc;
}
