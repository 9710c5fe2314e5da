/* TLS for tls+tcp:// addresses (nng's mbedTLS engine). Plain tcp://, ipc:// and abstract://
 * URLs pass through untouched, so callers apply these to every dialer and listener. */
#ifndef TERNI_TLS_H
#define TERNI_TLS_H

#include <stddef.h>

#include <nng/nng.h>

/* For a tls+tcp:// dialer: verify the server against the CA certificates in ca_file (NULL:
 * $TERN_TLS_CA) and the URL's host name. Errors: TERN_EINVAL when no CA is configured (the
 * message says how to set one), TERN_EIO when the file cannot be used. */
int terni_tls_dialer(nng_dialer d, const char *url, const char *ca_file, char *err, size_t errlen);

/* For a tls+tcp:// listener: present the certificate and private key in cert_file (one PEM
 * file; NULL: $TERN_TLS_CERT). Errors as above. */
int terni_tls_listener(nng_listener l, const char *url, const char *cert_file, char *err,
                       size_t errlen);

#endif
