/*
 * lifecycle.h: where the process is in its life, readable from any thread:
 * running, or draining (SIGTERM: listeners closed, sessions being ended
 * politely before exit).  Written only by main's thread.
 */
#ifndef POSTERN_LIFECYCLE_H
#define POSTERN_LIFECYCLE_H

#include <stdbool.h>

/* The process stopped accepting and is ending its sessions. */
void lifecycle_set_draining(void);
bool lifecycle_draining(void);

#endif
