/* Test helper: runs filter chains on raw images read from stdin.
 *
 * usage: filter_tool [simd_level]   (2 AVX2 if available, 1 SSE2, 0 portable C)
 * stdin: jobs, each a text line "W H C spec..." followed by W*H*C raw bytes;
 *        a spec is gray601, gray709, gauss:SIGMA or box:RADIUS, applied in order.
 * stdout: for each job, the W*H*out_channels output bytes.
 * Exits 1 with a message on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpar/filter.h"
#include "imgpar/image.h"
#include "filter_internal.h"

static int add_spec(struct ip_chain *chain, const char *spec)
{
    if (strcmp(spec, "gray601") == 0)
        return ip_chain_add_gray(chain, IP_GRAY_601);
    if (strcmp(spec, "gray709") == 0)
        return ip_chain_add_gray(chain, IP_GRAY_709);
    if (strncmp(spec, "gauss:", 6) == 0)
        return ip_chain_add_gauss(chain, strtod(spec + 6, NULL));
    if (strncmp(spec, "box:", 4) == 0)
        return ip_chain_add_box(chain, atoi(spec + 4));
    return IP_EINVAL;
}

int main(int argc, char **argv)
{
    char line[4096];
    struct ip_scratch *scratch = ip_scratch_new();
    int jobs = 0;

    if (argc > 1)
        ip__simd_limit(atoi(argv[1]));
    if (!scratch)
        return 1;
    while (fgets(line, sizeof line, stdin)) {
        struct ip_chain chain;
        struct ip_image src, dst;
        unsigned w, h, c;
        int used = 0, rc;
        char *p;

        if (sscanf(line, "%u %u %u%n", &w, &h, &c, &used) != 3) {
            fprintf(stderr, "filter_tool: bad header %s", line);
            return 1;
        }
        ip_chain_init(&chain);
        for (p = strtok(line + used, " \n"); p; p = strtok(NULL, " \n")) {
            if (add_spec(&chain, p) != 0) {
                fprintf(stderr, "filter_tool: bad spec %s\n", p);
                return 1;
            }
        }
        if (ip_image_alloc(&src, w, h, c, NULL, NULL) != 0
            || ip_image_alloc(&dst, w, h, ip_chain_out_channels(&chain, c), NULL, NULL) != 0) {
            fprintf(stderr, "filter_tool: cannot allocate %ux%ux%u\n", w, h, c);
            return 1;
        }
        if (fread(src.pixels, 1, (size_t)w * h * c, stdin) != (size_t)w * h * c) {
            fprintf(stderr, "filter_tool: short image data in job %d\n", jobs);
            return 1;
        }
        if ((rc = ip_chain_run(&chain, &src, &dst, scratch)) != 0) {
            fprintf(stderr, "filter_tool: job %d: %s\n", jobs, ip_strerror(rc));
            return 1;
        }
        fwrite(dst.pixels, 1, (size_t)w * h * dst.channels, stdout);
        ip_image_free(&src);
        ip_image_free(&dst);
        jobs++;
    }
    ip_scratch_free(scratch);
    return fflush(stdout) == 0 ? 0 : 1;
}
