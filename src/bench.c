/* Benchmark driver: being written (issue "imgpar bench"). */
#include "imgpar/error.h"

int ip__bench_placeholder(void);
int ip__bench_placeholder(void) { return 0; }
