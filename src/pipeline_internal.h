/* State shared by pipeline.c, loader.c and writer.c. */
#ifndef IMGPAR_PIPELINE_INTERNAL_H
#define IMGPAR_PIPELINE_INTERNAL_H

#include "codec_internal.h"
#include "imgpar/pipeline.h"
#include "internal.h"

/* Each loader holds the file it decodes, and each loader and writer keeps
 * an output buffer for its next image. When, all together, they could hold
 * more than this (threads x this buffer's size), a buffer's pages go back
 * to the kernel as soon as they are read (codec_png_fast.c) or written:
 * at -j16 on 4 MB PNGs they were 60 MiB beyond the pixels in flight.
 * Below it they are kept: always given back, faulting them in again cost
 * 2.5% of a PNG batch's time at -j1 and 7.5% at -j2. */
#define IP__HELD_MAX ((size_t)16 << 20)

/* One input on its way through the pipeline. Owned by whichever stage
 * holds it; the writer (or the stage that fails it) reports and frees it. */
struct ip__item {
    uint64_t index;
    char *in_path, *out_path;           /* owned copies */
    enum ip_format out_format;          /* requested; UNKNOWN = by input */
    enum ip_format in_format;
    struct ip_image src, dst;           /* pixels in the arena */
    uint32_t in_channels;               /* the input's (src has 1 when the decoder made the gray) */
    void *block;                        /* arena block holding src and dst */
    uint32_t bands_left;                /* filter bands not yet completed */
    uint32_t attempts;                  /* most attempts any band needed */
    uint32_t test_flags;                /* IP_JOB_TEST_* for this file */
    int holds_slot;                     /* took an in-flight slot (released when finished) */
    uint64_t bytes_in, bytes_out;
    uint64_t stage_ns[IP_STAGE_COUNT];
    struct ip_error err;                /* first failure */
    struct ip__item *live_prev, *live_next; /* registry of unfinished items */
};

struct ip_pipeline {
    struct ip_pipeline_config cfg;      /* resolved */
    struct ip__arena *arena;
    const struct ip_exec_ops *ops;
    struct ip_exec *ex;
    int workers;
    int ran;                            /* ip_pipeline_run was called */

    struct ip__queue load_q;            /* loaders -> dispatcher */
    struct ip__queue write_q;           /* completer -> writers */
    struct ip__sem inflight;            /* --queue: images between read and report */
    struct ip__sem cpu;                 /* -j: cores kept busy at once */

    pthread_mutex_t src_lock;           /* guards source, next_index, source_done, loaders_left */
    struct ip_source *source;
    uint64_t next_index;
    int source_done;
    int loaders_left;
    int source_error;                   /* a negative code from source->next */

    pthread_mutex_t result_lock;        /* serialises on_result and the counters below */
    struct ip_stats stats;

    struct ip__item *live;              /* unfinished items (under result_lock) */
    atomic_int cancelled;
    _Atomic uint64_t busy_ns[IP_STAGE_COUNT];
    _Atomic uint64_t jobs_submitted;
    _Atomic uint64_t strip_decodes;
    _Atomic uint64_t whole_on_loader;

    char *test_stall, *test_crash;      /* basenames from IMGPAR_TEST_STALL / _CRASH */
    char *test_stall_pidfile;
};

/* loader.c */
void *ip__loader_main(void *arg);
/* writer.c */
void *ip__writer_main(void *arg);
/* Encodes and writes a filtered item (or reports its failure), then finishes it. */
void ip__writer_finish(struct ip_pipeline *p, struct ip__item *item, struct ip_buf *enc);
/* pipeline.c: when a decoded item may stay with its loader, filters it for
 * the calling thread (on it under --threads; a worker process under --procs,
 * while the caller waits) and returns 1 (item->err says how it went, and the
 * caller goes on to ip__writer_finish); else returns 0: hand it on. */
int ip__filter_inline(struct ip_pipeline *p, struct ip__item *item, struct ip_scratch **scratch);
/* Writes data to out_path through a temporary in the same directory and a
 * rename, so the final name only ever holds a complete file. */
int ip__write_file_atomic(const char *out_path, const uint8_t *data, size_t len, int do_fsync,
                          const atomic_int *cancelled, struct ip_error *err);
/* pipeline.c: registers a new item as live. */
void ip__item_register(struct ip_pipeline *p, struct ip__item *item);
/* pipeline.c: reports the item's outcome (status from item->err) and frees it. */
void ip__item_finish(struct ip_pipeline *p, struct ip__item *item, enum ip_result_status status);
void ip__stage_add(struct ip_pipeline *p, struct ip__item *item, enum ip_stage stage, uint64_t ns);

/* team.c: works strips 0..n-1 of one image with fn(ctx, k, err) on up to
 * -j threads (the caller, which holds a CPU token, and helpers that each take
 * one per strip). Returns 0 once every strip is done, else the first
 * failure (in *err). The helpers' time on strips is added to item's stage
 * (the caller counts its own). */
int ip__team_run(struct ip_pipeline *p, struct ip__item *item, enum ip_stage stage, uint32_t n,
                 ip__strip_fn fn, void *ctx, struct ip_error *err);

#endif
