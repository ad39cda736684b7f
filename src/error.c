/* Error codes to messages; struct ip_error helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "imgpar/error.h"

const char *ip_strerror(int code)
{
    switch (code) {
    case IP_OK: return "success";
    case IP_EINVAL: return "invalid argument";
    case IP_ENOMEM: return "out of memory";
    case IP_EIO: return "input/output error";
    case IP_EFORMAT: return "unknown image format";
    case IP_ECORRUPT: return "corrupt image data";
    case IP_ETRUNC: return "truncated image data";
    case IP_ETOOBIG: return "image exceeds a limit";
    case IP_EUNSUP: return "unsupported image";
    case IP_EEXIST: return "output would overwrite an existing file";
    case IP_EINTR: return "interrupted";
    case IP_EWORKER: return "worker process failed";
    case IP_ENOSPC: return "no space left";
    default: return "unknown error";
    }
}

int ip_error_set(struct ip_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ip_error_clear(struct ip_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
