/* From a member embedded in a record (an intrusive container's node: list.h, heap.h) back to
 * the record. */
#ifndef TERNI_CONTAINER_OF_H
#define TERNI_CONTAINER_OF_H

#include <stddef.h>

#define TERNI_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
