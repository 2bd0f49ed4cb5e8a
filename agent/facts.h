/* facts (in progress). */
#ifndef AICP_FACTS_H
#define AICP_FACTS_H
#endif
