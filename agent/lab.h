/* lab (in progress). */
#ifndef AICP_LAB_H
#define AICP_LAB_H
#endif
