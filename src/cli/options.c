/* imgpar's options: the help text and the parser.
 *
 * DESIGN: getopt_long over one table; filter options append to the chain in
 * the order given; every value is range-checked here so the library only
 * sees valid settings. Usage errors exit 2 with one line and a hint. */
#include <getopt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "imgpar/version.h"

/* The help text, in sections (each under the 4095 characters C requires compilers to support). */
static const char *const usage_text[] = {
    "Usage: imgpar [OPTIONS] INPUT... OUTDIR\n"
    "       imgpar [OPTIONS] --files-from FILE OUTDIR\n"
    "Reads images (files, or the image files of a directory, sorted), filters them,\n"
    "and writes each result to OUTDIR/<name> (created if missing). The format is\n"
    "chosen by magic bytes, never by the file name; in a directory, a file named like\n"
    "an image that is not one fails, other non-images are skipped.\n"
    "\n",
    "Inputs and outputs:\n"
    "  -r, --recursive     walk directory INPUTs and mirror their trees under OUTDIR;\n"
    "                      unreadable subdirectories are reported and skipped (exit 1)\n"
    "                        imgpar -r photos/ out/\n"
    "  --follow-symlinks   with -r, also enter symlinked directories (loops are detected\n"
    "                      and not followed); a directory given as INPUT is always entered\n"
    "                        imgpar -r --follow-symlinks photos/ out/\n"
    "  --files-from FILE   read input paths from FILE ('-': stdin), one per line, streamed\n"
    "                      in constant memory; outputs mirror each path's directory\n"
    "                        find in -name '*.jpg' -print0 | imgpar -0 --files-from - out/\n"
    "  -0, --null          the --files-from list is NUL-separated\n"
    "                        imgpar -0 --files-from list0 out/\n"
    "  --out-pattern PAT   output name under OUTDIR from {dir} (the input's directory\n"
    "                      relative to its INPUT), {stem} (name without extension),\n"
    "                      {ext} (png or jpg, the output format), {n} (0-based input index);\n"
    "                      {{ and }} are braces; '..' or an absolute PAT is refused\n"
    "                        imgpar -r --out-pattern '{dir}/{stem}_gray.{ext}' in/ out/\n"
    "  --skip-existing     skip inputs whose output exists and is newer than the input\n"
    "                      (resumes an interrupted batch)\n"
    "                        imgpar --skip-existing -r in/ out/\n"
    "  --dry-run           print 'process|skip<TAB>INPUT<TAB>OUTPUT' per input on stdout\n"
    "                      and do nothing else (not even create OUTDIR)\n"
    "                        imgpar -r --dry-run photos/ out/\n"
    "  --shard K/N         only the inputs whose FNV-1a 64 hash of their path relative to\n"
    "                      their INPUT is K modulo N (0 <= K < N): N runs split a batch\n"
    "                        imgpar --shard 0/4 -r in/ out/\n"
    "  --in-order          process INPUTs in the order given (default: largest file\n"
    "                      first, so that one big image does not finish last;\n"
    "                      --files-from is always read in list order)\n"
    "                        imgpar --in-order a.png b.png c.png out/\n"
    "\n",
    "Filters, applied in the order given (default: --gray --blur 2):\n"
    "  --gray[=601|709]    luma, Rec.601 weights (default) or Rec.709; alpha is kept\n"
    "                        imgpar --gray=709 in.png out/\n"
    "  --blur SIGMA        Gaussian blur, radius ceil(3*SIGMA), 0 < SIGMA <= 100\n"
    "                        imgpar --blur 1.5 photos/ out/\n"
    "  --box RADIUS        box blur over (2*RADIUS+1)^2 pixels, 1..300\n"
    "                        imgpar --gray --blur 2 --box 1 in.jpg out/\n"
    "  --no-filter         decode and encode only (a baseline for benchmarks)\n"
    "                        imgpar --no-filter in/ out/\n"
    "  Edges mirror without repeating the edge pixel; images with alpha are blurred\n"
    "  premultiplied, so transparent pixels do not bleed dark halos.\n"
    "\n",
    "Codecs:\n"
    "  --format png|jpg    output format (default: JPEG stays JPEG, all else PNG)\n"
    "                        imgpar --format png in.jpg out/   (alpha is dropped for JPEG)\n"
    "  --quality Q         JPEG quality 1..100 (default 90), 4:2:0 for colour\n"
    "                        imgpar --quality 80 photos/ out/\n"
    "  --png-level L       PNG compression level 0..9 (default 6)\n"
    "                        imgpar --png-level 9 in/ out/\n"
    "  --decoder=native|stb  decode PNG/JPEG with libpng/libjpeg-turbo (default) or stb_image\n"
    "                        imgpar --decoder=stb in.png out/\n"
    "  --allow-truncated   accept truncated images with a warning instead of failing\n"
    "                        imgpar --allow-truncated cut.jpg out/\n"
    "  --jpeg-luma         when the chain starts with --gray (Rec.601), decode colour\n"
    "                      JPEGs straight to their luma (Y) channel: ~1.5x faster\n"
    "                      decoding, but not the reference: strongly saturated colours\n"
    "                      can differ by a few levels from gray computed from RGB\n"
    "                        imgpar --jpeg-luma photos/ out/"
    "\n",
    "Limits (checked before any allocation):\n"
    "  --max-pixels N      largest width*height (default 268435456 = 2^28)\n"
    "                        imgpar --max-pixels 50000000 in/ out/\n"
    "  --max-dim N         largest width or height (default 65535)\n"
    "                        imgpar --max-dim 20000 in/ out/\n"
    "  --max-file-size S   largest input file (default 1G; K, M, G suffixes)\n"
    "                        imgpar --max-file-size 200M in/ out/\n"
    "  --mem S             byte budget for decoded pixels in flight (default: a quarter\n"
    "                      of physical memory, at most 2G)\n"
    "                        imgpar --mem 512M huge/ out/\n"
    "\n",
    "Execution (every strategy writes exactly the same bytes):\n"
    "  -j, --jobs N        cores imgpar may keep busy (default: online CPUs)\n"
    "                        imgpar -j4 in/ out/\n"
    "  --serial            filter in one thread: the reference\n"
    "                        imgpar --serial in/ out/\n"
    "  --threads           filter on a pool of N threads (default; fastest measured here)\n"
    "                        imgpar -j8 --threads in/ out/\n"
    "  --procs             filter on N forked worker processes sharing pixels through\n"
    "                      POSIX shared memory; a crashed worker is replaced and its\n"
    "                      image retried once\n"
    "                        imgpar -j8 --procs in/*.png out/\n"
    "  --split image|strips|auto\n"
    "                      one image per worker, or each image cut into horizontal strips\n"
    "                      spread over all workers; auto (default) uses strips when images\n"
    "                      are fewer than workers or larger than their share of --mem\n"
    "                        imgpar -j16 --split strips huge.png out/\n"
    "  --io-threads N      reader/decoder threads (default: N = -j); with at least -j\n"
    "                      of them, each also filters (or has a --procs worker filter),\n"
    "                      encodes and writes every image it reads that is not cut\n"
    "                      into strips, with no hand-off to other threads\n"
    "                        imgpar -j8 --io-threads 2 in/ out/\n"
    "  --writers N         encoder/writer threads for the images handed on: cut into\n"
    "                      strips, under --serial, or with fewer --io-threads than -j\n"
    "                      (default: N = -j)\n"
    "                        imgpar -j8 --writers 4 in/ out/\n"
    "  --queue N           images in flight at most (default: 2*j+2)\n"
    "                        imgpar -j8 --queue 4 huge/ out/\n"
    "  Threads hold a core only while they decode, filter or encode, so whatever the\n"
    "  thread counts at most -j cores are busy at once.\n"
    "  --fsync             fsync each output before renaming it into place\n"
    "                        imgpar --fsync in/ /mnt/nfs/out/\n"
    "\n",
    "Reporting:\n"
    "  --report FILE       JSON Lines, one object per input, written as results come\n"
    "                      ('-': stdout): path, status (ok|failed|skipped), error, output,\n"
    "                      format, width, height, channels, bytes in/out, stage seconds\n"
    "                        imgpar --report run.jsonl -r in/ out/\n"
    "  --stats             print wall time, images/s, MP/s, busy time per stage, peak\n"
    "                      memory, huge images decoded by strips and images kept on\n"
    "                      their reader thread at the end (stderr)\n"
    "                        imgpar --stats in/ out/\n"
    "  -v, --verbose       a line per file written or skipped\n"
    "                        imgpar -v in/ out/\n"
    "  -q, --quiet         only errors (no progress line, no summary)\n"
    "                        imgpar -q in/ out/\n"
    "  -h, --help          this text (imgpar bench --help: the benchmark's options)\n"
    "                        imgpar --help | less\n"
    "  --version           version of imgpar and of libimgpar\n"
    "                        imgpar --version\n"
    "  On a terminal, stderr shows a progress line (done/total, MP/s, failures, ETA)\n"
    "  and a summary at the end; nothing of it when stderr is not a terminal.\n"
    "\n",
    "Outputs are written to a temporary file in OUTDIR and renamed into place when\n"
    "complete, so an interrupted run never leaves a partial file. Two inputs that would\n"
    "write the same output, or an output that is an input, are refused before any work;\n"
    "with --files-from, an input whose output this run already wrote is refused when\n"
    "its turn comes (see 'man imgpar').\n"
    "\n",
    "Exit status: 0 all files succeeded or were skipped, 1 some files failed (one line\n"
    "each on stderr: 'imgpar: PATH: reason'), 2 usage error, 3 could not start,\n"
    "130 interrupted.\n",
};

enum {
    OPT_GRAY = 256, OPT_BLUR, OPT_BOX, OPT_NO_FILTER, OPT_FORMAT, OPT_QUALITY, OPT_PNG_LEVEL,
    OPT_DECODER, OPT_ALLOW_TRUNC, OPT_JPEG_LUMA, OPT_MAX_PIXELS, OPT_MAX_DIM, OPT_MAX_FILE, OPT_MEM, OPT_SERIAL,
    OPT_THREADS, OPT_PROCS, OPT_SPLIT, OPT_IO_THREADS, OPT_WRITERS, OPT_QUEUE, OPT_FSYNC, OPT_STATS,
    OPT_VERSION, OPT_FOLLOW, OPT_FILES_FROM, OPT_OUT_PATTERN, OPT_SKIP_EXISTING, OPT_DRY_RUN, OPT_IN_ORDER,
    OPT_SHARD, OPT_REPORT,
};

static const struct option long_opts[] = {
    {"gray", optional_argument, NULL, OPT_GRAY},
    {"grey", optional_argument, NULL, OPT_GRAY},
    {"blur", required_argument, NULL, OPT_BLUR},
    {"box", required_argument, NULL, OPT_BOX},
    {"no-filter", no_argument, NULL, OPT_NO_FILTER},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"quality", required_argument, NULL, OPT_QUALITY},
    {"png-level", required_argument, NULL, OPT_PNG_LEVEL},
    {"decoder", required_argument, NULL, OPT_DECODER},
    {"allow-truncated", no_argument, NULL, OPT_ALLOW_TRUNC},
    {"jpeg-luma", no_argument, NULL, OPT_JPEG_LUMA},
    {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
    {"max-dim", required_argument, NULL, OPT_MAX_DIM},
    {"max-file-size", required_argument, NULL, OPT_MAX_FILE},
    {"mem", required_argument, NULL, OPT_MEM},
    {"jobs", required_argument, NULL, 'j'},
    {"serial", no_argument, NULL, OPT_SERIAL},
    {"threads", no_argument, NULL, OPT_THREADS},
    {"procs", no_argument, NULL, OPT_PROCS},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"io-threads", required_argument, NULL, OPT_IO_THREADS},
    {"writers", required_argument, NULL, OPT_WRITERS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"fsync", no_argument, NULL, OPT_FSYNC},
    {"stats", no_argument, NULL, OPT_STATS},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"recursive", no_argument, NULL, 'r'},
    {"follow-symlinks", no_argument, NULL, OPT_FOLLOW},
    {"files-from", required_argument, NULL, OPT_FILES_FROM},
    {"null", no_argument, NULL, '0'},
    {"out-pattern", required_argument, NULL, OPT_OUT_PATTERN},
    {"skip-existing", no_argument, NULL, OPT_SKIP_EXISTING},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"in-order", no_argument, NULL, OPT_IN_ORDER},
    {"shard", required_argument, NULL, OPT_SHARD},
    {"report", required_argument, NULL, OPT_REPORT},
    {NULL, 0, NULL, 0},
};


/* The command whose --help a usage error points to. */
static const char *usage_command = "imgpar";

void cli_set_usage_command(const char *command)
{
    usage_command = command;
}

static void __attribute__((noreturn)) try_help(void)
{
    fprintf(stderr, "Try '%s --help' for more information.\n", usage_command);
    exit(EXIT_USAGE);
}

void cli_die_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("imgpar: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    try_help();
}

long cli_parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        cli_die_usage("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    return v;
}

uint64_t cli_parse_size(const char *opt, const char *s)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    errno = 0;
    if (*s == '-')
        cli_die_usage("%s: '%s' is not a size", opt, s);
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        cli_die_usage("%s: '%s' is not a size", opt, s);
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    case 't': case 'T': mult = 1ull << 40; end++; break;
    default: cli_die_usage("%s: '%s' is not a size (use K, M, G or T)", opt, s);
    }
    if ((*end == 'i' && end[1] == 'B' && !end[2]) || (*end == 'B' && !end[1]))
        end += strlen(end);
    if (*end || v == 0 || v > UINT64_MAX / mult)
        cli_die_usage("%s: '%s' is not a size", opt, s);
    return v * mult;
}

static void add_filter(struct ip_chain *chain, int rc, const char *what)
{
    if (rc == IP_EINVAL && chain->count >= IP_CHAIN_MAX)
        cli_die_usage("too many filters (at most %d)", IP_CHAIN_MAX);
    if (rc)
        cli_die_usage("%s", what);
}

/* --shard K/N */
static void parse_shard(const char *arg, struct cli_options *o)
{
    const char *s = arg;
    char *end;
    unsigned long long k, n;

    errno = 0;
    k = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-' || *end != '/')
        cli_die_usage("--shard: '%s' is not K/N", arg);
    s = end + 1;
    n = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-' || *end)
        cli_die_usage("--shard: '%s' is not K/N", arg);
    if (n == 0 || k >= n)
        cli_die_usage("--shard: need 0 <= K < N (got %llu/%llu)", k, n);
    o->shard_k = k;
    o->shard_n = n;
}

void cli_oom(void)
{
    fputs("imgpar: out of memory\n", stderr);
    exit(EXIT_NO_START);
}

void cli_parse(int argc, char **argv, int with_outdir, struct cli_options *o)
{
    struct ip_chain chain;
    int opt, any_chain = 0;

    memset(o, 0, sizeof *o);
    ip_pipeline_config_default(&o->cfg);
    ip_chain_init(&chain);
    while ((opt = getopt_long(argc, argv, "j:vqhr0", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_GRAY: {
            enum ip_gray_weights w = IP_GRAY_601;
            if (optarg && !strcmp(optarg, "709"))
                w = IP_GRAY_709;
            else if (optarg && strcmp(optarg, "601"))
                cli_die_usage("--gray: '%s' is not 601 or 709", optarg);
            add_filter(&chain, ip_chain_add_gray(&chain, w), "--gray: cannot add filter");
            any_chain = 1;
            break;
        }
        case OPT_BLUR: {
            char *end;
            double sigma = strtod(optarg, &end);
            if (end == optarg || *end || !(sigma > 0 && sigma <= 100))
                cli_die_usage("--blur: '%s' is not a sigma in (0, 100]", optarg);
            add_filter(&chain, ip_chain_add_gauss(&chain, sigma), "--blur: bad sigma");
            any_chain = 1;
            break;
        }
        case OPT_BOX:
            add_filter(&chain,
                       ip_chain_add_box(&chain, (int)cli_parse_int("--box", optarg, 1, IP_BLUR_MAX_RADIUS)),
                       "--box: bad radius");
            any_chain = 1;
            break;
        case OPT_NO_FILTER: o->cfg.no_filter = 1; break;
        case OPT_FORMAT:
            if (!strcasecmp(optarg, "png"))
                o->forced_format = IP_FORMAT_PNG;
            else if (!strcasecmp(optarg, "jpg") || !strcasecmp(optarg, "jpeg"))
                o->forced_format = IP_FORMAT_JPEG;
            else
                cli_die_usage("--format: '%s' is not png or jpg", optarg);
            break;
        case OPT_QUALITY: o->cfg.encode.jpeg_quality = (int)cli_parse_int("--quality", optarg, 1, 100); break;
        case OPT_PNG_LEVEL: o->cfg.encode.png_level = (int)cli_parse_int("--png-level", optarg, 0, 9); break;
        case OPT_DECODER:
            if (!strcmp(optarg, "stb"))
                o->cfg.decode.decoder = IP_DECODER_STB;
            else if (!strcmp(optarg, "native"))
                o->cfg.decode.decoder = IP_DECODER_NATIVE;
            else
                cli_die_usage("--decoder: '%s' is not native or stb", optarg);
            break;
        case OPT_ALLOW_TRUNC: o->cfg.decode.allow_truncated = 1; break;
        case OPT_JPEG_LUMA: o->cfg.decode.jpeg_luma_only = 1; break;
        case OPT_MAX_PIXELS: o->cfg.decode.limits.max_pixels = cli_parse_size("--max-pixels", optarg); break;
        case OPT_MAX_DIM:
            o->cfg.decode.limits.max_dim = (uint32_t)cli_parse_int("--max-dim", optarg, 1, 0x7fffffff);
            break;
        case OPT_MAX_FILE: o->cfg.decode.limits.max_file_size = cli_parse_size("--max-file-size", optarg); break;
        case OPT_MEM: o->cfg.mem = cli_parse_size("--mem", optarg); break;
        case 'j': o->cfg.jobs = (int)cli_parse_int("-j", optarg, 1, 1024); break;
        case OPT_SERIAL: o->cfg.exec = IP_EXEC_SERIAL; break;
        case OPT_THREADS: o->cfg.exec = IP_EXEC_THREADS; break;
        case OPT_PROCS: o->cfg.exec = IP_EXEC_PROCS; break;
        case OPT_SPLIT:
            if (!strcmp(optarg, "image"))
                o->cfg.split = IP_SPLIT_IMAGE;
            else if (!strcmp(optarg, "strips"))
                o->cfg.split = IP_SPLIT_STRIPS;
            else if (!strcmp(optarg, "auto"))
                o->cfg.split = IP_SPLIT_AUTO;
            else
                cli_die_usage("--split: '%s' is not image, strips or auto", optarg);
            break;
        case OPT_IO_THREADS: o->cfg.io_threads = (int)cli_parse_int("--io-threads", optarg, 1, 1024); break;
        case OPT_WRITERS: o->cfg.writers = (int)cli_parse_int("--writers", optarg, 1, 1024); break;
        case OPT_QUEUE: o->cfg.queue = (int)cli_parse_int("--queue", optarg, 1, 1 << 20); break;
        case OPT_FSYNC: o->cfg.fsync = 1; break;
        case OPT_STATS: o->show_stats = 1; break;
        case 'v': o->verbose = 1; o->quiet = 0; break;
        case 'q': o->quiet = 1; o->verbose = 0; break;
        case 'h':
            for (size_t i = 0; i < sizeof usage_text / sizeof *usage_text; i++)
                fputs(usage_text[i], stdout);
            exit(0);
        case OPT_VERSION:
            printf("imgpar %s (libimgpar %s)\n", IMGPAR_VERSION, ip_version());
            exit(0);
        case 'r': o->recursive = 1; break;
        case OPT_FOLLOW: o->follow_symlinks = 1; break;
        case OPT_FILES_FROM: o->files_from = optarg; break;
        case '0': o->null_sep = 1; break;
        case OPT_OUT_PATTERN: {
            const char *why = cli_pattern_check(optarg);
            if (why)
                cli_die_usage("--out-pattern '%s': %s", optarg, why);
            o->out_pattern = optarg;
            break;
        }
        case OPT_SKIP_EXISTING: o->skip_existing = 1; break;
        case OPT_DRY_RUN: o->dry_run = 1; break;
        case OPT_IN_ORDER: o->in_order = 1; break;
        case OPT_SHARD: parse_shard(optarg, o); break;
        case OPT_REPORT: o->report_path = optarg; break;
        default:
            try_help();
        }
    }
    if (any_chain && o->cfg.no_filter)
        cli_die_usage("--no-filter cannot be combined with filter options");
    if (any_chain)
        o->cfg.chain = chain;
    if (o->null_sep && !o->files_from)
        cli_die_usage("-0/--null only applies to --files-from");
    o->inputs = argv + optind;
    o->n_inputs = argc - optind;
    if (!with_outdir)
        return;
    if (o->files_from) {
        if (argc - optind != 1)
            cli_die_usage("with --files-from, give only OUTDIR (the inputs come from the list)");
    } else if (argc - optind < 2) {
        cli_die_usage("need at least one INPUT and an OUTDIR");
    }
    o->n_inputs--;
    o->outdir = argv[argc - 1];
    if (!*o->outdir)
        cli_die_usage("OUTDIR is empty");
}
