/* The library's version (see include/imgpar/version.h). */
#include "imgpar/version.h"

const char *ip_version(void)
{
    return IP_VERSION_STRING;
}

unsigned ip_version_number(void)
{
    return IP_VERSION_NUMBER;
}
