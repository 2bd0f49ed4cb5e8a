/* ssh (in progress). */
#ifndef AICP_SSH_H
#define AICP_SSH_H
#endif
