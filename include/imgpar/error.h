/* Error codes and per-file error detail.
 *
 * Library functions return 0 or a negative IP_E* code. Detail for one file
 * (the codec's own message, the limit that was hit) travels in a
 * struct ip_error that the caller owns; the path is the caller's to add. */
#ifndef IMGPAR_ERROR_H
#define IMGPAR_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    IP_OK = 0,
    IP_EINVAL = -1,    /* bad argument or option value */
    IP_ENOMEM = -2,    /* allocation failed */
    IP_EIO = -3,       /* read or write failed (errno-based message in detail) */
    IP_EFORMAT = -4,   /* not an image format imgpar knows */
    IP_ECORRUPT = -5,  /* corrupt image data */
    IP_ETRUNC = -6,    /* truncated image data */
    IP_ETOOBIG = -7,   /* exceeds a limit (--max-pixels, --max-dim, --mem, ...) */
    IP_EUNSUP = -8,    /* valid but unsupported (e.g. 12-bit JPEG) */
    IP_EEXIST = -9,    /* output exists / would overwrite an input */
    IP_EINTR = -10,    /* interrupted by a signal */
    IP_EWORKER = -11,  /* a worker process died */
    IP_ENOSPC = -12,   /* no space left (disk or shared memory) */
};

#define IP_ERROR_MSG_MAX 256

struct ip_error {
    int code;                      /* IP_E* code, 0 when no error */
    char msg[IP_ERROR_MSG_MAX];    /* specific reason, e.g. "truncated PNG data" */
};

/* Static, generic message for a code ("corrupt image data"). */
const char *ip_strerror(int code);

/* Records code and a printf-style reason in err (if err is not NULL);
 * returns code so that callers can `return ip_error_set(...)`. */
int ip_error_set(struct ip_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to "no error". */
void ip_error_clear(struct ip_error *err);

#ifdef __cplusplus
}
#endif
#endif
