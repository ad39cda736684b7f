/* Interface between codec_jpeg.c and codec_jpeg_prog.c, the fast entropy
 * decoder for progressive Huffman JPEGs. Include after <jpeglib.h>. */
#ifndef IMGPAR_CODEC_JPEG_PROG_H
#define IMGPAR_CODEC_JPEG_PROG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One frame component, with libjpeg's block counts. */
struct ip__jpeg_prog_comp {
    int id;            /* component identifier from SOF */
    int h, v;          /* sampling factors */
    uint32_t bw, bh;   /* blocks coded in a scan of this component alone
                        * (libjpeg's width_in_blocks, height_in_blocks) */
    uint32_t cols;     /* blocks per row of libjpeg's array (bw rounded up to h) */
};

/* The frame, and the decoder state libjpeg had when it stopped after the
 * first scan's header: the tables defined so far and the restart interval. */
struct ip__jpeg_prog_frame {
    uint32_t width, height;
    int ncomp, max_h, max_v;
    struct ip__jpeg_prog_comp comp[4];
    unsigned restart_interval;
    const JHUFF_TBL *dc[NUM_HUFF_TBLS], *ac[NUM_HUFF_TBLS];   /* NULL: not defined */
};

struct ip__jpeg_prog;

/* Reads the structure of the file from the first scan (whose entropy data
 * starts at data + scan) to EOI: every scan header, table and restart
 * interval, and where each scan's data is, with every check that does not
 * need the data decoded. 0 and *out (close it), 1 to decline (the file
 * must be decoded by libjpeg alone), or IP_ENOMEM. data must outlive it. */
int ip__jpeg_prog_open(const struct ip__jpeg_prog_frame *f, const uint8_t *data, size_t len, size_t scan,
                       struct ip__jpeg_prog **out);
/* Offset of the marker after the first scan's data. */
size_t ip__jpeg_prog_first_end(const struct ip__jpeg_prog *p);
/* Makes the row buffers hold iMCU row `row`'s finished coefficients: v
 * block rows of cols blocks per component (ip__jpeg_prog_rows). Rows come
 * in order: the row decoded last is already there; the next one is
 * decoded from every scan. 0, or 1 for any other row and where libjpeg
 * would do anything but decode cleanly (the caller must then decode the
 * file with libjpeg alone). */
int ip__jpeg_prog_row(struct ip__jpeg_prog *p, uint32_t row);
JBLOCKARRAY ip__jpeg_prog_rows(struct ip__jpeg_prog *p, int comp);
void ip__jpeg_prog_close(struct ip__jpeg_prog *p);

/* 0 makes ip__jpeg_prog_open decline everything, 1 is normal, 2 uses the
 * portable block decoders where the CPU has BMI2 (tests; IMGPAR_JPEG_FAST=0
 * in the environment starts it at 0). */
void ip__jpeg_prog_set_enabled(int enabled);
/* A sequential strip's decoder keeps the coefficients of the components
 * in mask only (bit c: libjpeg's component_needed), which are all that
 * libjpeg's output pass reads; the others are decoded and dropped. */
void ip__jpeg_prog_seq_needed(struct ip__jpeg_prog *p, unsigned mask);
/* 0 when IMGPAR_JPEG_FAST=0 (or a test) turned the fast decoders off. */
int ip__jpeg_prog_enabled(void);
/* Images whose every row ip__jpeg_prog_row has decoded, since start (tests). */
unsigned long ip__jpeg_prog_images(void);

/* ---- sequential scans without restart markers (codec_jpeg_seq.c) ---- */

/* Where an MCU of the scan starts, and the decoder's state there. */
struct ip__jpeg_seq_at {
    uint64_t pos;     /* bit offset in the file: 8 * byte + bit, MSB first */
    int64_t mcu;      /* MCUs of the scan before it */
    uint32_t dc[4];   /* DC predictions per scan component (libjpeg's last_dc_val) */
};

struct ip__jpeg_seq;

/* A sequential Huffman JPEG whose one scan (of every component, entropy
 * data from data + scan) runs to EOI with no marker inside: 0 and *out,
 * 1 to decline, or IP_ENOMEM. Then chunks: ip__jpeg_seq_find(s, 0, k) for
 * every chunk k, then ip__jpeg_seq_find(s, 1, k) for every k (within a
 * phase, any threads in any order), then ip__jpeg_seq_finish: 0 when
 * ip__jpeg_seq_locate can place every MCU, 1 when the file must be decoded
 * whole (also when *stop, if given, is set while it decodes on one
 * thread). data must outlive it. */
int ip__jpeg_seq_open(const struct ip__jpeg_prog_frame *f, const uint8_t *data, size_t len, size_t scan,
                      struct ip__jpeg_seq **out);
uint32_t ip__jpeg_seq_chunks(const struct ip__jpeg_seq *s);
int ip__jpeg_seq_find(struct ip__jpeg_seq *s, int phase, uint32_t k);
int ip__jpeg_seq_finish(struct ip__jpeg_seq *s, const atomic_int *stop);
/* The known state nearest before MCU `mcu` (at->mcu <= mcu). */
void ip__jpeg_seq_locate(const struct ip__jpeg_seq *s, int64_t mcu, struct ip__jpeg_seq_at *at);
/* MCUs per row (interleaved scan) or blocks per row (one component). */
uint32_t ip__jpeg_seq_mcus_per_row(const struct ip__jpeg_seq *s);
void ip__jpeg_seq_close(struct ip__jpeg_seq *s);
/* Bytes per chunk (tests lower it to make many chunks of small files). */
extern size_t ip__jpeg_seq_chunk;

/* A row decoder for a strip of that scan: f is the strip's frame (its
 * height), the rows' data start at `from` after `skip` more MCUs; `last`:
 * the strip ends the image, so its data must end exactly at EOI. Rows as
 * ip__jpeg_prog_row gives them; 0, 1 to decline, or IP_ENOMEM. */
int ip__jpeg_prog_open_seq(const struct ip__jpeg_prog_frame *f, const struct ip__jpeg_seq *s,
                           const struct ip__jpeg_seq_at *from, uint64_t skip, int last, struct ip__jpeg_prog **out);

#endif
