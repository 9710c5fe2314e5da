/* Same-host transfer of large arrays through sealed memfds: the data server answers a `get`
 * from a peer on its own host with a descriptor of a memfd holding the array's bytes instead
 * of the bytes, and the receiver maps that memfd read-only through /proc/<pid>/fd/<fd>.
 * shm.c has the design notes; docs/protocol.md (get) the fields; docs/performance.md
 * (Transfer) the measurements. Internal to the runtime and libtern's client. */
#ifndef TERNI_SHM_H
#define TERNI_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/value.h>

/* Arrays of at least this many bytes of data go through a memfd; smaller ones as bytes.
 * Measured (docs/performance.md, Transfer): at 256 KiB the first move of a key (memfd made on
 * the way) costs the same as through the socket and later ones less; from 512 KiB up both are
 * faster (8 MiB: 3.5 ms first, 0.9 ms later, against 6 ms). Below, the memfd's copy and
 * descriptor do not pay. */
#define TERNI_SHM_MIN_BYTES ((size_t)256 << 10)
/* A descriptor for more bytes than this is refused (a sanity bound on peer input). */
#define TERNI_SHM_MAX_BYTES ((size_t)1 << 40)

/* This host's identity as sent in a `get` ("host"): /proc/sys/kernel/random/boot_id and the
 * pid namespace (readlink /proc/self/ns/pid), so that two processes with the same identity
 * see each other under the same /proc/<pid>. NULL when the shortcut is off ($TERN_NO_SHM set
 * to anything but "" or "0") or the identity cannot be read. Thread-safe. */
const char *terni_shm_host(void);

/* True if v is an array with at least TERNI_SHM_MIN_BYTES of data. */
bool terni_shm_eligible(const tern_value *v);

/* A memfd holding the bytes of an array (server side). */
typedef struct terni_shm_file {
    int fd; /* -1: none */
    uint64_t ino, dev;
    size_t len;
    bool lent; /* the array's own buffer, lent (terni_bigbuf_lend); else a sealed copy */
} terni_shm_file;

/* A memfd holding v's array data: the array's own buffer if it is a memfd-backed one, lent
 * (terni_bigbuf_lend: sealed against shrinking and growing only, f->lent; the caller must
 * keep v alive and unchanged while a receiver may read it; the file may be longer than
 * f->len), else a new memfd named "tern:<name>" (MFD_CLOEXEC | MFD_ALLOW_SEALING) that the data
 * is written into, sealed against writes, shrinking, growing and further seals. On failure
 * (not an array, fd limit, out of memory) returns TERN_EINVAL / TERN_EIO / TERN_ENOMEM and
 * f->fd is -1. */
int terni_shm_export(const tern_value *v, const char *name, terni_shm_file *f);
/* Closes f->fd if open and sets it to -1. */
void terni_shm_file_close(terni_shm_file *f);

/* The sender, when the reader of v's lent buffer can no longer unpin it (its connection
 * closed): the buffer is forsaken (terni_bigbuf_forsake), never written or reused again, so a
 * mapping the reader still holds keeps its bytes. Anything but an array's own buffer: nothing. */
void terni_shm_forsake(const tern_value *v);

/* The descriptor sent for v (an array) whose bytes are in f:
 * {"pid", "fd", "ino", "dev", "len": int, "type": "f64" | "i64", "shape": [int], "lent"?:
 * true}. NULL if out of memory. */
tern_value *terni_shm_descriptor(const terni_shm_file *f, const tern_value *v);

/* Receiver: opens /proc/<pid>/fd/<fd> without following it into anything but a regular file
 * of inode (dev, ino) that is at least len bytes long and sealed against writes and
 * shrinking, and maps its first len bytes read-only and private (*addr; munmap(*addr, len)).
 * The fd is closed again; the mapping stays valid when the sender closes its fd or exits.
 * Errors (never a crash, whatever the numbers): TERN_EINVAL (out of range), TERN_ENOTFOUND
 * (no such process or fd, or another file there now), TERN_EIO (permission denied, not
 * sealed, too short, mmap failed). */
int terni_shm_map(int64_t pid, int64_t fd, uint64_t ino, uint64_t dev, size_t len, void **addr,
                  char *err, size_t errlen);

/* Receiver: who to tell when a lent array is no longer mapped here. shm.c calls hold(arg) once
 * for each lent array it maps, and unpin(arg, key) once when that array's last reference has
 * gone and its mapping is unmapped (on whichever thread dropped the reference); unpin must
 * then tell the sender to let go of key, and drop the hold. */
typedef struct terni_shm_unpinner {
    void (*hold)(void *arg);
    void (*unpin)(void *arg, const char *key);
    void *arg;
} terni_shm_unpinner;

/* Receiver: validates a descriptor of key (untrusted peer input: every field's type and range,
 * the shape against TERN_MAX_DIMS, len = product of shape x 8) and maps it (terni_shm_map) into
 * a new array value whose data is borrowed from the mapping, unmapped when the last reference
 * goes. A lent descriptor (*lent set true) need only be sealed against shrinking: the sender
 * keeps the buffer unchanged while it holds our pin, and forsakes it (never writes it again)
 * if our connection closes first; once unmapped, u->unpin is called for key. Errors as
 * terni_shm_map, TERN_EINVAL for a malformed descriptor (or a lent one without u),
 * TERN_ENOMEM. */
int terni_shm_import(const tern_value *desc, const char *key, const terni_shm_unpinner *u,
                     tern_value **out, bool *lent, char *err, size_t errlen);

/* Receiver, for a `get` reply: *merged gets a new map with the entries of values (may be
 * NULL) plus each key of shm (a map key -> descriptor, may be NULL) that imports (lent ones
 * with u, as terni_shm_import); *retry gets a list of the keys whose descriptors did not
 * import (to be asked for again as bytes), or NULL if there are none. TERN_EPROTO if shm is
 * present but not a map, TERN_ENOMEM. */
int terni_shm_resolve(const tern_value *values, const tern_value *shm, const terni_shm_unpinner *u,
                      tern_value **merged, tern_value **retry);

#endif
