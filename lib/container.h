/*
 * container.h: container_of(), the owner of an embedded member (a libev
 * watcher, a list link, a job) from a pointer to that member, as the Linux
 * kernel and libev's documentation do it.  No other definitions belong here.
 */
#ifndef POSTERN_CONTAINER_H
#define POSTERN_CONTAINER_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
