/* `imgpar bench`: being written (issue "imgpar bench"). */
#include <stdio.h>

#include "cli.h"

int cli_bench_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("imgpar: bench is not available in this build\n", stderr);
    return EXIT_USAGE;
}
