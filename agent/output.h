/* output (in progress). */
#ifndef AICP_OUTPUT_H
#define AICP_OUTPUT_H
#endif
