/* tern — error codes shared by every public call.
 *
 * Every public function that can fail returns an int: TERN_OK (0) on success or one of the
 * codes below. Codes are never renumbered or reused (see docs/architecture.md, "ABI"). New
 * codes are only appended. tern_strerror() gives a one-line English description; calls that
 * can say more (the decoder, the plugin loader) also fill a caller-supplied message buffer.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#include <tern/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tern_err {
    TERN_OK = 0,            /* success */
    TERN_EINVAL = 1,        /* an argument is invalid (NULL handle, bad option, bad input) */
    TERN_ENOMEM = 2,        /* out of memory */
    TERN_ETYPE = 3,         /* a value has a different type than the call needs */
    TERN_ERANGE = 4,        /* an index or number is out of range */
    TERN_ENOTFOUND = 5,     /* no such key, symbol, task or file */
    TERN_EMALFORMED = 6,    /* input is not well-formed CBOR or not a tern value */
    TERN_ETRUNCATED = 7,    /* input ends before the value does */
    TERN_ETOODEEP = 8,      /* input or value nests deeper than the limit */
    TERN_ETOOBIG = 9,       /* input or value is larger than the limit */
    TERN_EUNSUPPORTED = 10, /* valid CBOR that tern does not accept (tag, indefinite length) */
    TERN_ESHARED = 11,      /* the value is shared (more than one reference) and cannot change */
    TERN_ESHAPE = 12,       /* array shapes do not fit the operation */
    TERN_EIO = 13,          /* a file or system call failed; the message says which */
    TERN_ENOTPLUGIN = 14,   /* the file is not a shared object or not a tern plugin */
    TERN_EABI = 15,         /* the plugin was built for another plugin ABI version */
    TERN_EDLOPEN = 16,      /* dlopen() refused the plugin; the message carries dlerror() */
    TERN_ENOTTASK = 17,     /* the symbol exists but the plugin does not declare it as a task */
    TERN_ETASK = 18,        /* a task failed; the future's error has the task's message */
    TERN_ETIMEDOUT = 19,    /* a wait ran out of time */
    TERN_ECLOSED = 20,      /* the client, connection or object was closed */
    TERN_ECONNREFUSED = 21, /* nothing listens at the address, or the peer refused us */
    TERN_EPROTO = 22,       /* the peer broke the protocol or speaks another wire version */
    TERN_ECANCELED = 23,    /* the operation or task was cancelled */
    TERN_ELOST = 24,        /* data was lost with a worker and cannot be recomputed */
    TERN_EAUTH = 25,        /* authentication failed */
    TERN_EBUSY = 26,        /* the resource is in use; try again */
    TERN_ENOWORKERS = 27,   /* no worker can run the task */
    TERN_EKILLED = 28,      /* the task killed every worker that ran it (--allowed-failures) */
} tern_err;

/* Number of codes; tern_strerror() answers for 0 <= code < TERN_ERR_COUNT. */
#define TERN_ERR_COUNT 29

/* A static, NUL-terminated description of `code`. Never NULL: an unknown code gives
 * "unknown tern error code". Thread-safe; does not allocate. */
TERN_API const char *tern_strerror(int code);

/* The symbolic name of `code` ("TERN_EINVAL"), or "TERN_E?" for an unknown code. */
TERN_API const char *tern_strerror_name(int code);

#ifdef __cplusplus
}
#endif
#endif
