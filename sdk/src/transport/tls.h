/* TLS for tls+tcp:// addresses (nng's mbedTLS engine). Plain tcp://, ipc:// and abstract://
 * URLs pass through untouched, so callers apply these to every dialer and listener. */
#ifndef TERNI_TLS_H
#define TERNI_TLS_H

#include <stddef.h>

#include <nng/nng.h>

#include "sdk/src/transport/auth.h"

/* For a tls+tcp:// dialer: verify the server against the CA certificates in sec->tls_ca
 * (NULL: $TERN_TLS_CA) and the URL's host name; when sec->tls_cert is set (or
 * $TERN_TLS_CERT), present it as our client certificate (for servers that require one).
 * Errors: TERN_EINVAL when no CA is configured (the message says how to set one), TERN_EIO
 * when a file cannot be used. sec may be NULL. */
int terni_tls_dialer(nng_dialer d, const char *url, const terni_sec *sec, char *err, size_t errlen);

/* For a tls+tcp:// listener: present the certificate in sec->tls_cert (NULL:
 * $TERN_TLS_CERT) with the key in sec->tls_key (NULL: $TERN_TLS_KEY, else the certificate
 * file holds it too). With sec->tls_verify_clients, clients must present a certificate
 * signed by sec->tls_ca (mutual TLS). Errors as above. */
int terni_tls_listener(nng_listener l, const char *url, const terni_sec *sec, char *err,
                       size_t errlen);

#endif
