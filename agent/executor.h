/* executor (in progress). */
#ifndef AICP_EXECUTOR_H
#define AICP_EXECUTOR_H
#endif
