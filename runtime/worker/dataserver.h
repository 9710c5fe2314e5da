/* The data server (dataserver.c): answers get/put/unpin from peers and clients on a rep
 * socket, behind the cluster token gate (auth.h).
 *
 * A get from a process on this host (its "host" identity equals ours, shm.h) gets each large
 * array as a memfd descriptor instead of its bytes. Large results are allocated in memfds from
 * the start (bigbuf.c, turned on by the lifecycle unless TERN_NO_SHM), so the array's own
 * buffer is lent: the reader maps it, and until it unpins the key (or its connection closes)
 * the value is pinned here, so that the buffer is neither freed nor reused under the mapping
 * even if the key is dropped. A pin that goes with its connection forsakes the buffer (never
 * written or reused again, bigbuf.h): the reader may still map it. Other arrays go as a sealed
 * copy. The descriptor is kept with the stored value (closed when the key is dropped).
 *
 * Contract: requests are handled on nng's callback threads (DATA_RECEIVERS at a time). The
 * store and the pins are read and changed under core->lock. The lifecycle (worker.c) calls
 * terni_dataserver_init, then terni_dataserver_listen before any other thread starts (it sets
 * core->address), and terni_dataserver_close last; the fuzzing worker only init, request and
 * close. */
#ifndef TERNI_WORKER_DATASERVER_H
#define TERNI_WORKER_DATASERVER_H

#include <nng/nng.h>
#include <stdbool.h>

#include "sdk/src/transport/auth.h"
#include "runtime/worker/core.h"

#define TERNI_DATA_RECEIVERS 4

typedef struct terni_data_ctx {
    struct terni_dataserver *ds;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
} terni_data_ctx;

typedef struct terni_dataserver {
    terni_wcore *core;
    terni_gate *gate; /* cluster token check per connection */
    bool listening;   /* the socket was opened */
    nng_socket sock;
    terni_data_ctx data[TERNI_DATA_RECEIVERS];
    struct terni_pin *pins; /* under core->lock; unordered, few at a time */
    size_t npins, cappins;
} terni_dataserver;

/* The gate for token (NULL or len 0: none required). TERN_OK or TERN_ENOMEM. */
int terni_dataserver_init(terni_dataserver *ds, terni_wcore *core, const terni_token *token);

/* Listens on core->opts->listen (TLS from sec) and sets core->address to the address peers
 * reach it at (the port picked for tcp://...:0). Returns TERN_OK, or an error with err filled
 * in. */
int terni_dataserver_listen(terni_dataserver *ds, const terni_sec *sec, char *err, size_t errlen);

/* One data-plane request (consumed): the cluster token gate, then get/put/unpin. Returns the
 * encoded reply, or NULL when none can be made. */
nng_msg *terni_dataserver_request(terni_dataserver *ds, nng_msg *in);

/* Closes the socket and frees the gate and pins. If nng's close did not finish
 * (terni_close_bounded), its reaper may still run the data aios' callbacks and the gate's pipe
 * callback: both are left, the process is exiting. */
void terni_dataserver_close(terni_dataserver *ds);

#endif
