/* Shared helpers for file modules. */
#ifndef AICP_FILEUTIL_H
#define AICP_FILEUTIL_H
#endif
