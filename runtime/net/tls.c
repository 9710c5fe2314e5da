/* TLS configuration for dialers and listeners (see tls.h). */
#include "tls.h"

#include "wire.h"

#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_tls(const char *url)
{
    return url && !strncmp(url, "tls+tcp://", 10);
}

int terni_tls_dialer(nng_dialer d, const char *url, const char *ca_file, char *err, size_t errlen)
{
    if (!is_tls(url))
        return TERN_OK;
    if (!ca_file || !*ca_file)
        ca_file = getenv("TERN_TLS_CA");
    if (!ca_file || !*ca_file) {
        snprintf(err, errlen,
                 "%s needs the CA certificate that signed the server's certificate: set "
                 "TERN_TLS_CA=<file.pem> (or the tls_ca_file option)",
                 url);
        return TERN_EINVAL;
    }
    /* host of tls+tcp://host:port, for certificate name checking */
    char host[256];
    const char *h = url + 10, *end = strrchr(h, ':');
    size_t n = end && end > h ? (size_t)(end - h) : strlen(h);
    if (n >= sizeof(host))
        n = sizeof(host) - 1;
    memcpy(host, h, n);
    host[n] = '\0';
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv == 0 && (rv = nng_tls_config_ca_file(cfg, ca_file)) != 0) {
        snprintf(err, errlen, "cannot use CA file %s: %s", ca_file, nng_strerror(rv));
    } else {
        if (rv == 0)
            rv = nng_tls_config_server_name(cfg, host);
        if (rv == 0)
            rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
        if (rv == 0)
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        if (rv != 0)
            snprintf(err, errlen, "cannot configure TLS for %s: %s", url, nng_strerror(rv));
    }
    if (cfg)
        nng_tls_config_free(cfg);
    return rv == 0 ? TERN_OK : TERN_EIO;
}

int terni_tls_listener(nng_listener l, const char *url, const char *cert_file, char *err,
                       size_t errlen)
{
    if (!is_tls(url))
        return TERN_OK;
    if (!cert_file || !*cert_file)
        cert_file = getenv("TERN_TLS_CERT");
    if (!cert_file || !*cert_file) {
        snprintf(err, errlen,
                 "%s needs a certificate: pass --tls-cert <cert-and-key.pem> or set "
                 "TERN_TLS_CERT",
                 url);
        return TERN_EINVAL;
    }
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
    if (rv == 0 && (rv = nng_tls_config_cert_key_file(cfg, cert_file, NULL)) != 0)
        snprintf(err, errlen, "cannot use certificate file %s (certificate and key in one PEM): %s",
                 cert_file, nng_strerror(rv));
    else if (rv == 0 && (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg)) != 0)
        snprintf(err, errlen, "cannot configure TLS for %s: %s", url, nng_strerror(rv));
    if (cfg)
        nng_tls_config_free(cfg);
    return rv == 0 ? TERN_OK : TERN_EIO;
}
