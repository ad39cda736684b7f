/* The libimgpar version.
 *
 * IP_VERSION_* describe the headers a program was compiled against;
 * ip_version() and ip_version_number() the library it runs with. The
 * build checks that IP_VERSION_STRING matches meson's project version. */
#ifndef IMGPAR_VERSION_H
#define IMGPAR_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define IP_VERSION_MAJOR 0
#define IP_VERSION_MINOR 1
#define IP_VERSION_PATCH 0
#define IP_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define IP_VERSION_NUMBER (IP_VERSION_MAJOR * 10000 + IP_VERSION_MINOR * 100 + IP_VERSION_PATCH)

/* "MAJOR.MINOR.PATCH" of the library linked in (static storage). */
const char *ip_version(void);
/* IP_VERSION_NUMBER of the library linked in. */
unsigned ip_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
